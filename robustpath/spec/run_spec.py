"""RunSpec: everything that defines an evaluation run, as a frozen dataclass that checks its own values."""
from __future__ import annotations

import math

from dataclasses import asdict, dataclass
from pathlib import Path

from robustpath.errors import UsageError

# The closed choices of a run's options (the command line's choices come from here).
STAGES = ("default", "pre", "post", "both")
DEVICES = ("auto", "cpu", "cuda")
GALLERIES = ("clean", "corrupted")
BAD_IMAGE_POLICIES = ("skip", "fail")
EMBEDDING_DTYPES = ("float32", "float16")
PREDICTION_MODES = ("all", "changed", "none")  # --predictions: rows of predictions.csv
OUTPUT_FORMATS = ("csv", "markdown", "html", "json", "parquet")
CARD_POOLING = "card"  # the model card's embedding (an alias's recipe), else the model's own pooled output
POOLINGS = (CARD_POOLING, "cls", "mean", "cls+mean")
DEFAULT_BATCH_SIZE = 64
DEFAULT_PRESET = "pathology"
DEFAULT_DATA = "demo-ihc"
BOOTSTRAP_RESAMPLES = 1000  # default resamples of the test images (robustpath.tasks.metrics)
MIN_BOOTSTRAP_RESAMPLES = 40  # below this 2 / (B + 1) ≥ 0.05: no drop could be significant


def check_bootstrap(value) -> int:
    """``--bootstrap`` must be a whole number of at least MIN_BOOTSTRAP_RESAMPLES (40)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_BOOTSTRAP_RESAMPLES:
        raise UsageError(
            f"--bootstrap must be a whole number of at least {MIN_BOOTSTRAP_RESAMPLES} resamples "
            f"(below that no drop can reach p < 0.05), got {value!r}; use 10000 for publication"
        )
    return value


MAX_SEED = 2**32 - 1  # numpy, scikit-learn and torch generators all take seeds below 2**32
_SWITCHES = ("trust_remote_code", "overwrite", "no_cache", "compile", "save_embeddings", "deterministic",
             "compress_exports")
# whole-number fields: (lowest value, highest value or None, the command-line option)
_WHOLE_NUMBERS = {"batch_size": (1, None, "--batch-size"), "num_workers": (0, None, "--workers"),
                  "seed": (0, MAX_SEED, "--seed"), "repeats": (1, None, "--repeats")}
_CHOICES = {"stage": (STAGES, "--stage"), "on_bad_image": (BAD_IMAGE_POLICIES, "--on-bad-image"),
            "gallery": (GALLERIES, "--gallery"), "embeddings_dtype": (EMBEDDING_DTYPES, "--embeddings-dtype"),
            "predictions": (PREDICTION_MODES, "--predictions")}


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunSpec:
    """A resolved evaluation request.

    ``corruptions``/``severities`` empty mean "all in the preset".  ``stage``
    "default" runs every corruption before the model's resize ("pre") and
    Gaussian blur also after it ("post"); "pre", "post" and "both" apply to
    every selected corruption.  Zero-shot runs only for models with a text
    encoder; for image-only models it is skipped with a note.
    ``samples_per_class`` adds linear probes trained on seeded class-balanced
    subsamples (each size ``repeats`` times) to the probe on all training images;
    ``gallery`` "corrupted" corrupts the retrieval gallery like the queries.
    ``save_embeddings`` writes OUT/embeddings/ (clean, every variant, class texts)
    in ``embeddings_dtype`` "float32" or "float16" (robustpath.embedding.saved).
    ``predictions`` "all" / "changed" / "none": the rows of predictions.csv (and
    whether it and misclassified.csv are written); ``compress_exports`` gzips both
    (robustpath.output.prediction_files).
    ``deterministic`` runs with deterministic torch algorithms, fp32 and no compile.
    ``bootstrap`` is the number of seeded resamples of the test images behind every
    interval and drop p-value (the same resamples for clean and every variant);
    it changes results, so it enters the run id (when it is not the default).
    ``mpp`` (microns per pixel of the native images; else a manifest's ``mpp`` column)
    restates spatial severities in micrometres in run.json and the reports.
    """

    model: str
    data: str = DEFAULT_DATA
    tasks: tuple[str, ...] = ("linear_probe", "retrieval", "zeroshot", "embedding_drift", "identity", "detectability")
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    stage: str = "default"
    preset: str | tuple[str, ...] = DEFAULT_PRESET
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
    num_workers: int = 0
    seed: int = 0
    test_fraction: float = 0.3
    out: Path | None = None
    prompts: Path | None = None
    templates: str | None = None
    pooling: str | None = None
    trust_remote_code: bool = False
    on_bad_image: str = "skip"
    samples_per_class: tuple[int, ...] = ()
    repeats: int = 3
    gallery: str = "clean"
    overwrite: bool = False
    no_cache: bool = False
    cache_dir: Path | None = None
    compile: bool = False
    save_embeddings: bool = False
    embeddings_dtype: str = "float32"
    deterministic: bool = False
    bootstrap: int = BOOTSTRAP_RESAMPLES
    predictions: str = "all"
    compress_exports: bool = False
    mpp: float | None = None

    def __post_init__(self) -> None:
        """Refuse values of the wrong type or out of range (from a config file, a run.json or the API)
        before anything is loaded or written: one UsageError naming the field and its option."""
        _check_numbers(self)
        _normalise_preset(self)
        _check_names(self)
        check_bootstrap(self.bootstrap)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out) if self.out is not None else None
        data["prompts"] = str(self.prompts) if self.prompts is not None else None
        data["tasks"], data["corruptions"], data["severities"] = (
            list(self.tasks), list(self.corruptions), list(self.severities)
        )
        data["samples_per_class"] = list(self.samples_per_class)
        if isinstance(self.preset, tuple):
            data["preset"] = list(self.preset)
        data["cache_dir"] = str(self.cache_dir) if self.cache_dir is not None else None
        return data


def _check_numbers(spec: RunSpec) -> None:
    for name, (low, high, option) in _WHOLE_NUMBERS.items():
        value = getattr(spec, name)
        if not _is_whole(value) or value < low or (high is not None and value > high):
            allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise UsageError(f"{name} ({option}) must be a whole number {allowed}, got {value!r}")
    mpp = spec.mpp
    if mpp is not None and not _is_number_between(mpp, 0, math.inf):
        raise UsageError(f"mpp (--mpp) must be a positive number of microns per pixel, got {mpp!r}")
    fraction = spec.test_fraction
    if not _is_number_between(fraction, 0, 1):
        raise UsageError(f"test_fraction must be a number between 0 and 1 (exclusive), got {fraction!r}")
    for name in ("severities", "samples_per_class"):
        values = getattr(spec, name)
        if not isinstance(values, tuple) or not all(_is_whole(v) for v in values):
            raise UsageError(f"{name} must be a list of whole numbers, got {values!r}")


def _is_number_between(value, low: float, high: float) -> bool:
    """A real number (not a bool) strictly between ``low`` and ``high``."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and low < value < high


def _check_names(spec: RunSpec) -> None:
    for name, (choices, option) in _CHOICES.items():
        if getattr(spec, name) not in choices:
            raise UsageError(f"{name} ({option}) must be one of {', '.join(choices)}, got {getattr(spec, name)!r}")
    for name in _SWITCHES:
        if not isinstance(getattr(spec, name), bool):
            raise UsageError(f"{name} must be true or false, got {getattr(spec, name)!r}")
    for name in ("model", "data"):
        if not isinstance(getattr(spec, name), str) or not getattr(spec, name).strip():
            raise UsageError(f"{name} must be a non-empty string, got {getattr(spec, name)!r}")
    presets = (spec.preset,) if isinstance(spec.preset, str) else spec.preset
    if not isinstance(presets, tuple) or not all(isinstance(name, str) and name.strip() for name in presets):
        raise UsageError(f"preset (--preset) must be a preset name or file, or a list of them, got {spec.preset!r}")


def _normalise_preset(spec: RunSpec) -> None:
    """Several presets are a tuple (one sweep over all of them); one preset given in a list is its name alone,
    so a run of one preset records and identifies itself the same however it was given."""
    value = spec.preset
    if isinstance(value, (list, tuple)):
        value = tuple(value)
        if not value:
            raise UsageError("preset (--preset) is an empty list; give at least one preset name or file")
        object.__setattr__(spec, "preset", value[0] if len(value) == 1 else value)
