"""Look at corruptions: gallery PNGs of a few images, and corrupted copies of a dataset.

Corruptions are applied exactly as ``robustpath eval`` applies them: the same preset
values, the same per-sample generators (run seed, sample id, corruption, severity),
stage "pre" on the native image before any resize, stage "post" after resizing to
``size`` (shorter side to ``size``, centre crop, bicubic with antialiasing: the
CLIP-style geometry of :mod:`robustpath.models.preprocess`). The library never
prints; it returns the paths it wrote.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from robustpath.data.images import IMAGE_EXTENSIONS
from robustpath.errors import UsageError
from robustpath.util.progress import ProgressReporter, SilentProgress
from robustpath import variants
from robustpath.variants import Variant

CELL_INCHES = 1.6
DPI = 120
PNG_COMPRESSION = 3


@dataclass(frozen=True)
class ImageSource:
    """Images to corrupt: ``read(i)`` gives image i as (H, W, 3) uint8 RGB at ``native_size``.

    ``export_paths`` are the relative PNG paths of an export (the dataset's folder
    layout, or ``<class>/<name>.png`` for in-memory and out-of-tree images).
    """

    name: str
    sample_ids: tuple[str, ...]
    labels: tuple[str | None, ...]
    splits: tuple[str | None, ...]
    export_paths: tuple[str, ...]
    native_size: tuple[int, int]
    read: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.sample_ids)


def load_image_source(spec: str, *, seed: int = 0) -> ImageSource:
    """An image file (png, jpg, tif, bmp), 'demo-ihc', an image folder or a CSV manifest."""
    from robustpath.data import load_dataset
    from robustpath.data.images import IMAGE_EXTENSIONS, read_image_file

    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        image = read_image_file(path)
        return ImageSource(
            name=path.name, sample_ids=(path.name,), labels=(None,), splits=(None,),
            export_paths=(f"{_safe_stem(path.stem)}.png",), native_size=tuple(image.shape[:2]),
            read=lambda index: image,
        )
    dataset = load_dataset(spec, seed=seed)
    labels = tuple(dataset.classes[k] for k in dataset.labels.tolist())
    return ImageSource(
        name=dataset.name, sample_ids=tuple(dataset.sample_ids), labels=labels,
        splits=tuple(str(s) for s in dataset.splits.tolist()),
        export_paths=_export_paths(dataset.sample_ids, labels, dataset.paths),
        native_size=tuple(dataset.native_size), read=dataset.read_image,
    )


def _safe_stem(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".") or "image"


def _export_paths(sample_ids: Sequence[str], labels: Sequence[str], paths: Sequence[str | None]) -> tuple[str, ...]:
    """Relative PNG paths that keep the folder layout; in-memory or out-of-tree images go to <class>/."""
    chosen: list[str] = []
    taken: set[str] = set()
    for sample_id, label, path in zip(sample_ids, labels, paths):
        parts = Path(sample_id).parts
        if path is None or Path(sample_id).is_absolute() or ".." in parts:
            parts = (_safe_stem(label), Path(sample_id).name)
        relative = Path(*parts[:-1], _safe_stem(Path(parts[-1]).stem)).as_posix()
        candidate, copy = f"{relative}.png", 1
        while candidate in taken:  # e.g. a.jpg and a.png in one folder
            copy += 1
            candidate = f"{relative}-{copy}.png"
        taken.add(candidate)
        chosen.append(candidate)
    return tuple(chosen)


def pick_gallery_images(source: ImageSource, count: int) -> list[int]:
    """Up to ``count`` image indices, one class after another, most common class first."""
    if count < 1:
        raise UsageError(f"--images must be at least 1, got {count}")
    return pick_one_per_class(source.labels, count)


def pick_one_per_class(labels: Sequence, count: int) -> list[int]:
    """Up to ``count`` positions in ``labels``: the first of each class in turn, most common class first."""
    by_label: dict[str | None, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    # the most common class first (it is usually tissue, not background), then the others in turn
    ordered = sorted(by_label.items(), key=lambda item: (-len(item[1]), str(item[0])))
    queues = [list(reversed(indices)) for _, indices in ordered]
    picked: list[int] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop())
    return picked


def check_geometry(variants: Sequence[Variant], size: int | None) -> None:
    """Stage post needs the size the images are resized to first."""
    if size is not None and size < 1:
        raise UsageError(f"--size must be at least 1, got {size}")
    if size is None and any(v.stage == "post" for v in variants):
        raise UsageError("--stage post needs --size N: the side the images are resized to before the corruption (e.g. 224)")


def resize_images(images, size: int):
    """(B, 3, H, W) float in [0, 1] -> (B, 3, size, size): shorter side to ``size``, centre crop, bicubic."""
    from robustpath.models.base import Preprocessing
    from robustpath.models.preprocess import resize_to_input

    return resize_to_input(images, Preprocessing(input_size=(size, size), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))


def apply_variant(images, variant: Variant, preset, *, sample_ids: Sequence[str], seed: int, size: int | None,
                  preprocessing=None):
    """Corrupt (B, 3, H, W) float images in [0, 1] as the evaluation does (robustpath.variants.apply_variant);
    resized to ``size`` when given, or with a model's geometry (``preprocessing``, a
    robustpath.models.base.Preprocessing) as the sweep does."""
    import corruptions

    bound = corruptions.get_corruption(variant.corruption, preset)
    return variants.apply_variant(images, variant, bound, seed=seed, sample_ids=list(sample_ids),
                                  resize=_resizer(size, preprocessing))


def _resizer(size: int | None, preprocessing):
    """The resize of a gallery: the model's geometry, a square ``size``, or none."""
    if preprocessing is not None:
        from robustpath.models.preprocess import resize_to_input

        return lambda x: resize_to_input(x.contiguous(), preprocessing)
    if size is not None:
        return lambda x: resize_images(x, size)
    return None


def format_parameter(value) -> str:
    """A preset value for people: 0.5 -> '0.5'; {'strokes': 3.0, 'width': 0.04} -> 'strokes 3, width 0.04'."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {float(number):g}" for key, number in value.items())
    return f"{float(value):g}"


def _label(parameter: str, value) -> str:
    """'sigma 2' for one number, 'strokes 3, width 0.04, alpha 0.7' for a table."""
    return format_parameter(value) if isinstance(value, Mapping) else f"{parameter} {format_parameter(value)}"


def _to_uint8(images) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 (rounded)."""
    return (images.clamp(0.0, 1.0) * 255.0).round().to("cpu").byte().permute(0, 2, 3, 1).numpy()


def _to_float(arrays: Sequence[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


def write_galleries(
    source: ImageSource,
    preset,
    variants: Sequence[Variant],
    out: Path,
    *,
    indices: Sequence[int],
    size: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """One PNG per image in ``indices``: rows (corruption, stage), columns clean + severities, labelled."""
    from robustpath.util.atomic import write_bytes_atomic

    check_geometry(variants, size)
    written = []
    rows = _gallery_rows(variants)
    for index in indices:
        sample_id = source.sample_ids[index]
        image = _to_float([source.read(index)])
        clean = _to_uint8(resize_images(image, size) if size is not None else image)[0]
        cells = {
            variant: _to_uint8(apply_variant(image, variant, preset, sample_ids=[sample_id], seed=seed, size=size))[0]
            for variant in variants
        }
        title = f"{sample_id} · preset {preset.name} · seed {seed}" + (f" · resized to {size} px" if size else "")
        png = _render_gallery(title, clean, rows, cells, preset)
        name = "gallery.png" if len(indices) == 1 else gallery_file_name(sample_id, {p.name for p in written})
        written.append(write_bytes_atomic(Path(out) / name, png))
    return written


def gallery_file_name(sample_id: str, taken: set[str]) -> str:
    """'gallery-<sample id>.png' without the image's own suffix ('brown/cell0.png' → gallery-brown-cell0.png),
    numbered when two samples would share a name (cell0.png and cell0.tif)."""
    stem = PurePosixPath(sample_id)
    stem = stem.with_suffix("") if stem.suffix.lower() in IMAGE_EXTENSIONS else stem
    base = f"gallery-{_safe_stem(str(stem).replace('/', '-'))}"
    name, number = f"{base}.png", 2
    while name in taken:
        name, number = f"{base}-{number}.png", number + 1
    return name


def _gallery_rows(variants: Sequence[Variant]) -> list[tuple[str, str, list[Variant]]]:
    rows: dict[tuple[str, str], list[Variant]] = {}
    for variant in variants:
        rows.setdefault((variant.corruption, variant.stage), []).append(variant)
    return [(name, stage, sorted(row, key=lambda v: v.severity)) for (name, stage), row in rows.items()]


def _render_gallery(title: str, clean: np.ndarray, rows, cells: Mapping[Variant, np.ndarray], preset) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    import corruptions

    columns = 1 + max(len(row) for _, _, row in rows)
    figure = Figure(figsize=(CELL_INCHES * columns + 1.2, CELL_INCHES * len(rows) + 0.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), columns, squeeze=False)
    figure.suptitle(title, fontsize=9)
    for r, (name, stage, row) in enumerate(rows):
        entry = preset.entry(name)
        parameter = corruptions.get_operation(entry.operation).parameter
        panels = [("clean", clean)] + [
            (f"{v.severity}: {_label(parameter, entry.values[v.severity - 1])}", cells[v]) for v in row
        ]
        for c in range(columns):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(panels):
                axis.set_axis_off()
                continue
            label, picture = panels[c]
            axis.imshow(picture, interpolation="nearest")
            axis.set_title(label if len(label) <= 24 else label.replace(", ", ",\n"), fontsize=7)
        axes[r][0].set_ylabel(f"{name}\n({stage})", fontsize=8, rotation=0, ha="right", va="center")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: one folder per variant, ``images`` PNG files in all, and export.json."""

    folders: tuple[Path, ...]
    images: int
    record: Path


def export_corrupted(
    source: ImageSource,
    preset,
    variants: Sequence[Variant],
    out: Path,
    *,
    size: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: ProgressReporter | None = None,
) -> ExportResult:
    """Write every image of ``source`` under every variant to OUT/<corruption>/<severity>/<stage>/.

    Each folder keeps the dataset's layout (PNG files) and gets a manifest.csv
    (path,label,split) when the images have labels; OUT/export.json records the
    preset values, units, native-pixel equivalents, seed and size.
    """
    from corruptions import native_equivalent

    from robustpath.util.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic

    check_geometry(variants, size)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    progress = progress or SilentProgress()
    out = Path(out)
    folders = {v: out / v.corruption / str(v.severity) / v.stage for v in variants}
    progress.start("export", f"Writing {len(variants)} corrupted copies of {source.name}", len(source) * len(variants))
    for first in range(0, len(source), batch_size):
        indices = range(first, min(first + batch_size, len(source)))
        images = _to_float([source.read(i) for i in indices])
        ids = [source.sample_ids[i] for i in indices]
        for variant in variants:
            corrupted = _to_uint8(apply_variant(images, variant, preset, sample_ids=ids, seed=seed, size=size))
            for index, picture in zip(indices, corrupted):
                write_bytes_atomic(folders[variant] / source.export_paths[index], _png_bytes(picture))
            progress.advance("export", len(indices))
    progress.finish("export")
    if any(label is not None for label in source.labels):
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["path", "label", "split"])
        writer.writerows(zip(source.export_paths, source.labels, source.splits))
        for folder in folders.values():
            write_text_atomic(folder / "manifest.csv", table.getvalue())
    native = min(source.native_size)
    record = {
        "source": source.name,
        "images": len(source),
        "seed": seed,
        "size": size,
        "preset": {"name": preset.name, "path": str(preset.path)},
        "variants": [
            {
                "corruption": v.corruption, "severity": v.severity, "stage": v.stage,
                "folder": folders[v].relative_to(out).as_posix(),
                "parameter": _plain(preset.entry(v.corruption).values[v.severity - 1]),
                "unit": preset.entry(v.corruption).unit,
                "native_equivalent": native_equivalent(
                    preset.entry(v.corruption), v.severity, stage=v.stage, native_size=native, resized_size=size or native
                ),
            }
            for v in variants
        ],
    }
    path = write_json_atomic(out / "export.json", record)
    return ExportResult(folders=tuple(folders.values()), images=len(source) * len(variants), record=path)


def _plain(value):
    return dict(value) if isinstance(value, Mapping) else value

