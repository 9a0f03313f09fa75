"""Images of a run for report.html: read again from the run's data, corrupted as the sweep did, as thumbnails.

Reading: the built-in demo set by sample id (checked against the content digest in
run.json); files by the path recorded for the sample (misclassified.csv,
embeddings/samples.csv) or else the run's data folder (or the manifest's folder) joined
with the sample id; each file decoded as the dataset loader decodes it (8-bit RGB,
resized to the run's native size).

Corrupting: :func:`robustpath.preview.gallery.apply_variant` with the run's preset (checked
against the values recorded in run.json), seed and the model's geometry from run.json:
the same per-sample generators as the sweep, at native size for stage ``pre``, after the
model's resize for stage ``post``.

Thumbnails: an image of at most THUMB_SIDE px is kept pixel for pixel (PNG; the page
scales it up without smoothing); a larger one is shrunk to THUMB_SIDE (antialiased) and
stored as JPEG.  :class:`ImagePool` stores each distinct thumbnail once.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from robustpath.errors import RobustPathError
from robustpath.output.layout import EMBEDDINGS_DIR, SAMPLES_FILE
from robustpath.variants import Variant

THUMB_SIDE = 96
JPEG_QUALITY = 88


def encode_thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> tuple[bytes, str, tuple[int, int]]:
    """(H, W, 3) uint8 → (file bytes, MIME type, (width, height)): a PNG of the pixels when the image fits
    ``side`` × ``side``, else shrunk to fit (antialiased) as a JPEG."""
    from PIL import Image

    from robustpath.preview.run_gallery import for_display

    buffer = io.BytesIO()
    if max(image.shape[:2]) <= side:
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), "image/png", (image.shape[1], image.shape[0])
    shrunk = for_display(image, side)
    Image.fromarray(shrunk).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), "image/jpeg", (shrunk.shape[1], shrunk.shape[0])


class ImagePool:
    """Distinct images of a page as data URIs under short keys (``i0``, ``i1``, …), each stored once."""

    def __init__(self) -> None:
        self._by_digest: dict[str, str] = {}
        self._by_pixels: dict[tuple, str] = {}
        self.uris: dict[str, str] = {}
        self.sizes: dict[str, tuple[int, int]] = {}

    def add(self, image: np.ndarray, side: int = THUMB_SIDE) -> str:
        """Store ``image`` ((H, W, 3) uint8) as a thumbnail that fits ``side`` × ``side`` → its key."""
        image = np.ascontiguousarray(image)
        pixels = (hashlib.sha256(image.tobytes()).digest(), image.shape, side)  # encoded once, however often shown
        if pixels not in self._by_pixels:
            self._by_pixels[pixels] = self._store(*encode_thumbnail(image, side))
        return self._by_pixels[pixels]

    def _store(self, data: bytes, mime: str, size: tuple[int, int]) -> str:
        digest = hashlib.sha256(data).hexdigest()
        key = self._by_digest.get(digest)
        if key is None:
            key = self._by_digest[digest] = f"i{len(self._by_digest)}"
            self.uris[key] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            self.sizes[key] = size
        return key

    def add_png(self, data: bytes) -> str:
        """Store a PNG file's bytes as they are → its key."""
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            size = image.size
        return self._store(data, "image/png", size)

    def total_bytes(self) -> int:
        return sum(len(uri) for uri in self.uris.values())


class RunImages:
    """Clean and corrupted images of one run's samples, read again from its data (see module docstring).

    ``problem``: why no image can be read (None when they can); ``corruption_problem``:
    why corrupted copies cannot be made (None when they can).  Images that cannot be read
    come back as None.
    """

    def __init__(self, record: Mapping, run_dir: Path | None, known_paths: Mapping[str, str]) -> None:
        self.record = record
        self.native_size = tuple(record.get("dataset", {}).get("native_size") or ())
        self.seed = int((record.get("spec") or {}).get("seed", 0))
        self._paths = dict(known_paths)
        self._cache: dict[str, np.ndarray | None] = {}
        self._demo = None
        self._root: Path | None = None
        self.problem = self._open_data(run_dir)
        self.preset, self.preprocessing, self.corruption_problem = self._open_corruptions()

    def _open_data(self, run_dir: Path | None) -> str | None:
        spec = self.record.get("spec") or {}
        data = spec.get("data")
        if len(self.native_size) != 2:
            return "run.json does not record the images' native size"
        if run_dir is not None:
            self._paths.update(_sample_paths(Path(run_dir)))
        if data == "demo-ihc":
            return self._open_demo()
        if isinstance(data, str):
            path = Path(data).expanduser()
            self._root = path.parent if path.suffix.lower() == ".csv" else path
        return None

    def _open_demo(self) -> str | None:
        from robustpath.embedding.cache import dataset_content_digest, sample_digests
        from robustpath.data import load_dataset

        demo = load_dataset("demo-ihc")
        recorded = self.record.get("dataset", {}).get("content_sha256")
        if recorded and dataset_content_digest(demo, sample_digests(demo)) != recorded:
            return "the built-in demo-ihc images differ from those of the run (content SHA-256)"
        self._demo = (demo, {sample_id: i for i, sample_id in enumerate(demo.sample_ids)})
        return None

    def _open_corruptions(self):
        import corruptions

        from robustpath.models.base import Preprocessing

        preset_facts = self.record.get("preset") or {}
        preset = None
        for name in (preset_facts.get("source"), preset_facts.get("name")):
            if not name:
                continue
            try:
                preset = corruptions.load_preset(str(name))
                break
            except corruptions.CorruptionError:
                continue
        if preset is None:
            return None, None, f"the preset '{preset_facts.get('name')}' of the run cannot be loaded"
        for facts in preset_facts.get("variants", []):
            entry = preset.corruptions.get(facts["corruption"])
            value = entry.values[facts["severity"] - 1] if entry is not None and facts["severity"] <= len(entry.values) else None
            if _plain(value) != _plain(facts.get("parameter")):
                return None, None, f"the preset '{preset.name}' no longer has the values the run used ({facts['corruption']})"
        facts = (self.record.get("model") or {}).get("preprocessing")
        preprocessing = None
        if facts:
            try:
                preprocessing = Preprocessing(
                    input_size=tuple(facts["input_size"]), mean=tuple(facts["mean"]), std=tuple(facts["std"]),
                    resize_mode=facts.get("resize_mode", "bicubic"), crop=facts.get("crop", "center"),
                    resize_size=facts.get("resize_size"),
                )
            except (KeyError, TypeError, ValueError):
                preprocessing = None
        return preset, preprocessing, None

    def clean(self, sample_id: str) -> np.ndarray | None:
        """(H, W, 3) uint8 at native size, or None when it cannot be read."""
        if sample_id not in self._cache:
            self._cache[sample_id] = self._read(sample_id)
        return self._cache[sample_id]

    def _read(self, sample_id: str) -> np.ndarray | None:
        if self.problem is not None:
            return None
        if self._demo is not None:
            dataset, index = self._demo
            return dataset.read_image(index[sample_id]) if sample_id in index else None
        from robustpath.data.images import read_image_file

        path = self._paths.get(sample_id)
        if not path and self._root is not None:
            path = str(Path(sample_id) if Path(sample_id).is_absolute() else self._root / sample_id)
        if not path:
            return None
        try:
            return read_image_file(Path(path), self.native_size)
        except (RobustPathError, OSError):
            return None

    def corrupted(self, sample_ids: Sequence[str], variant: Variant) -> dict[str, np.ndarray]:
        """The readable ones of ``sample_ids`` under ``variant``, as the sweep computed them → id → (h, w, 3) uint8."""
        if self.corruption_problem is not None or (variant.stage == "post" and self.preprocessing is None):
            return {}
        from robustpath.preview.gallery import _to_float, _to_uint8, apply_variant

        readable = [(sample_id, self.clean(sample_id)) for sample_id in dict.fromkeys(sample_ids)]
        readable = [(sample_id, image) for sample_id, image in readable if image is not None]
        if not readable:
            return {}
        ids = [sample_id for sample_id, _ in readable]
        images = _to_float([image for _, image in readable])
        geometry = self.preprocessing if variant.stage == "post" else None
        with _one_torch_thread():  # a handful of small images: thread start-up would cost more than the work
            corrupted = _to_uint8(apply_variant(images, variant, self.preset, sample_ids=ids, seed=self.seed, size=None,
                                                preprocessing=geometry))
        return dict(zip(ids, corrupted))


@contextmanager
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _plain(value):
    """A preset value as comparable JSON (tables as dicts, numbers as floats)."""
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    try:
        return float(value)
    except (TypeError, ValueError):
        return json.dumps(value, sort_keys=True, default=str)


def _sample_paths(run_dir: Path) -> dict[str, str]:
    """sample id → source path from OUT/embeddings/samples.csv, when the run saved its embeddings."""
    import csv

    samples = run_dir / EMBEDDINGS_DIR / SAMPLES_FILE
    if not samples.is_file():
        return {}
    try:
        with samples.open(newline="") as handle:
            return {row["sample_id"]: row["path"] for row in csv.DictReader(handle) if row.get("path")}
    except (OSError, KeyError, csv.Error):
        return {}
