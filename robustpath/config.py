"""RunSpec: everything that defines an evaluation run, as a frozen dataclass."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

# The closed choices of a run's options (the command line's choices come from here).
STAGES = ("default", "pre", "post", "both")
DEVICES = ("auto", "cpu", "cuda")
GALLERIES = ("clean", "corrupted")
BAD_IMAGE_POLICIES = ("skip", "fail")
EMBEDDING_DTYPES = ("float32", "float16")
OUTPUT_FORMATS = ("csv", "markdown", "json", "parquet")
POOLINGS = ("cls", "mean", "cls+mean")
DEFAULT_BATCH_SIZE = 64
DEFAULT_PRESET = "pathology"
DEFAULT_DATA = "demo-ihc"


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
    in ``embeddings_dtype`` "float32" or "float16" (robustpath.embedding_files).
    ``deterministic`` runs with deterministic torch algorithms, fp32 and no compile.
    """

    model: str
    data: str = DEFAULT_DATA
    tasks: tuple[str, ...] = ("linear_probe", "retrieval", "zeroshot", "embedding_drift")
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    stage: str = "default"
    preset: str = DEFAULT_PRESET
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

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out) if self.out is not None else None
        data["prompts"] = str(self.prompts) if self.prompts is not None else None
        data["tasks"], data["corruptions"], data["severities"] = (
            list(self.tasks), list(self.corruptions), list(self.severities)
        )
        data["samples_per_class"] = list(self.samples_per_class)
        data["cache_dir"] = str(self.cache_dir) if self.cache_dir is not None else None
        return data
