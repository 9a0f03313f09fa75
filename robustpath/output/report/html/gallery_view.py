"""The galleries of report.html: failures per task × corruption × severity, and the corruption gallery.

The failure gallery of a run shows, per cell, the test images robustpath.output.report.html.failures
chooses (flipped ones from misclassified.csv, then a few that stayed right): the clean image
and the same image as the sweep corrupted it, side by side, with the true, clean and
corrupted labels, and for retrieval the nearest training images whose vote made the
prediction.  Images come from robustpath.output.report.html.thumbnails; an image that cannot be
read is replaced by a labelled placeholder and the page says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from robustpath.output.report.html.failures import Case, Cell, load_run_failures
from robustpath.output.report.html.thumbnails import THUMB_SIDE, ImagePool, RunImages
from robustpath.variants import Variant

if TYPE_CHECKING:  # pragma: no cover
    from robustpath.preview.run_gallery import RunGallery

STRIP_SIDE = 3 * THUMB_SIDE + 8  # a corruption-gallery cell: three images side by side


@dataclass(frozen=True)
class Thumb:
    """An image of the page: pool key (None when unavailable) and alt text."""

    key: str | None
    alt: str


@dataclass
class CaseView:
    kind: str  # "flipped" or "right"
    case: Case
    clean: Thumb
    corrupted: Thumb
    neighbours: list[tuple[Thumb, str, bool]] = field(default_factory=list)  # (image, label, label == true label)


@dataclass
class CellView:
    cell: Cell
    cases: list[CaseView]


@dataclass
class ConditionView:
    label: str
    cells: list[CellView]

    @property
    def flips(self) -> str:
        return " · ".join(f"{c.cell.flipped}" for c in self.cells)


@dataclass
class RunFailureView:
    run_id: str
    title: str
    tasks: list[tuple[str, list[ConditionView]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


@dataclass
class CorruptionGalleryView:
    """Rows (label, a strip per column or None) with column titles, or one PNG (``picture``)."""

    caption: str
    columns: tuple[str, ...] = ()
    rows: list[tuple[str, list[Thumb | None]]] = field(default_factory=list)
    picture: Thumb | None = None


def failure_galleries(records: Sequence[Mapping], folders: Mapping[str, Path], labels: Mapping[str, str],
                      pool: ImagePool, max_images: int) -> list[RunFailureView]:
    """One view per run (in ``records`` order); a run without a folder gets a view that says so."""
    from robustpath.tasks.retrieval import VOTE_K

    views = []
    for record in records:
        run_id = record["run_id"]
        view = RunFailureView(run_id, f"{labels.get(run_id, record['model']['name'])} on {record['dataset']['name']}")
        views.append(view)
        folder = folders.get(run_id)
        if folder is None:
            view.problem = "no run folder with per-sample files (predictions.csv, misclassified.csv) was given for this run"
            continue
        vote_k = int(((record.get("tasks") or {}).get("retrieval") or {}).get("majority_vote_k", VOTE_K))
        failures = load_run_failures(folder, max_images, vote_k)
        if failures.problem is not None:
            view.problem = failures.problem
            continue
        images = RunImages(record, folder, failures.paths)
        _fill(view, failures.cells, images, pool, corrupted_gallery=(record.get("spec") or {}).get("gallery") == "corrupted")
    return views


def _fill(view: RunFailureView, cells: list[Cell], images: RunImages, pool: ImagePool, corrupted_gallery: bool) -> None:
    from robustpath.results.robustness import condition_label

    wanted: dict[Variant, set[str]] = {}
    for cell in cells:
        for case in (*cell.shown_flipped, *cell.shown_right):
            wanted.setdefault(cell.variant, set()).add(case.sample_id)
            if corrupted_gallery:
                wanted[cell.variant].update(sample_id for sample_id, _ in case.neighbours)
    corrupted = {variant: images.corrupted(sorted(ids), variant) for variant, ids in wanted.items()}
    missing = {"images": 0}

    def thumb(image, alt: str) -> Thumb:
        if image is None:
            missing["images"] += 1
            return Thumb(None, alt)
        return Thumb(pool.add(image), alt)

    tasks: dict[str, dict[str, ConditionView]] = {}
    for cell in cells:
        variant = cell.variant
        label = condition_label(variant.corruption, variant.stage)
        condition = tasks.setdefault(cell.task, {}).setdefault(label, ConditionView(label, []))
        where = f"{variant.corruption} severity {variant.severity} ({variant.stage})"
        cases = []
        for kind, shown in (("flipped", cell.shown_flipped), ("right", cell.shown_right)):
            for case in shown:
                views = CaseView(
                    kind, case,
                    thumb(images.clean(case.sample_id), f"{case.sample_id} clean, true {case.true_label}"),
                    thumb(corrupted[variant].get(case.sample_id), f"{case.sample_id} under {where}"),
                )
                for rank, (neighbour, neighbour_label) in enumerate(case.neighbours, start=1):
                    image = corrupted[variant].get(neighbour) if corrupted_gallery else images.clean(neighbour)
                    alt = f"neighbour {rank}: {neighbour} ({neighbour_label})"
                    views.neighbours.append((thumb(image, alt), neighbour_label, neighbour_label == case.true_label))
                cases.append(views)
        condition.cells.append(CellView(cell, cases))
    view.tasks = [(task, list(conditions.values())) for task, conditions in tasks.items()]
    if images.problem is not None:
        view.notes.append(f"Images cannot be shown: {images.problem}.")
    elif images.corruption_problem is not None:
        view.notes.append(f"Corrupted images cannot be shown: {images.corruption_problem}.")
    elif missing["images"]:
        view.notes.append(f"{missing['images']} images could not be read from the run's data (moved, renamed or "
                          "another working folder); they are shown as placeholders.")


def corruption_gallery_view(records: Sequence[Mapping], gallery: "RunGallery | Path | None",
                            pool: ImagePool) -> CorruptionGalleryView | None:
    """The run's corruption gallery (strips of a RunGallery, or the PNG a merged report copies); None without one."""
    if gallery is None:
        return None
    record = next((r for r in records if r.get("gallery")), None)
    caption = "Columns: clean, then each severity."
    if record is not None:
        facts = record["gallery"]
        shown = ", ".join(f"{i} ({c})" for i, c in zip(facts["sample_ids"], facts["classes"]))
        origin = f" of run {record['run_id']} ({record['model']['name']} on {record['dataset']['name']})" if len(records) > 1 else ""
        caption = (f"Test images {shown}{origin}; each corruption applied at native size before the model's resize "
                   f"(stage pre) with seed {facts['seed']}, as in the sweep. {caption}")
    if isinstance(gallery, Path):
        try:
            data = gallery.read_bytes()
        except OSError:
            return None
        return CorruptionGalleryView(caption, picture=Thumb(pool.add_png(data), "corruption gallery: " + caption))
    view = CorruptionGalleryView(caption, columns=tuple(gallery.column_titles))
    for corruption, strips in gallery.rows.items():
        cells = [None if strip is None else Thumb(pool.add(strip, STRIP_SIDE),
                                                  f"{corruption}, {title}: {', '.join(gallery.sample_ids)}")
                 for strip, title in zip(strips, gallery.column_titles)]
        view.rows.append((corruption, cells))
    return view
