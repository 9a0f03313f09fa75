"""report.md: the results and the robustness summaries as markdown tables, with plots.

One run (``robustpath eval``) or several merged (``robustpath report``) share one
layout: header, ranking, worst conditions, blur before/after the resize, plots,
data scale, corruption parameters, the corruption gallery and the corruption × severity grids.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

from robustpath.preview.gallery import format_parameter
from robustpath.output.report.grid import MetricGrid, build_grids, cell_legend, cell_text, grid_title, mean_over_severities
from robustpath.output.report.label_free import markdown_sections as label_free_sections
from robustpath.results.table import SCHEMA_VERSION

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.results.robustness import RobustnessSummary

_DEFINITIONS = """\
- **retention**: corrupted value / clean value, averaged over severities.
- **normalised AUC**: area under the degradation curve (severity 0 = clean) after rescaling each value to
  (value − chance) / (clean − chance), divided by the highest severity: 1 = no loss, 0 = at chance throughout.
- **chance**: the metric's expected value without information about the image (run.json, `tasks` → `chance`):
  accuracy = share of the most frequent test class, balanced accuracy = 1/K, F1 = uniform guessing;
  retrieval = a uniformly random ranking of the gallery (top-k: 1 − C(G−R, k)/C(G, k) averaged over queries).
- **near chance**: when the clean value's 95% interval reaches chance, or the clean value lies less than 10% of
  the way from chance to the best attainable value (1; min(k, R)/R for recall@k), retention and normalised AUC are undefined (—, with the reason as a note) and the
  model is ranked after the others.
- **CE / mCE** (ImageNet-C): error E = 1 − value; CE = Σ_s E_s / Σ_s E_s(baseline) per corruption and stage,
  mCE = mean over them; relative mCE uses E_s − E_clean. Below 1 = more robust than the baseline.
- **significant** (`*`): the two-sided paired-bootstrap p-value of the drop (same resampled images, clean and
  corrupted), p = min(1, 2 · (1 + min(#{d ≤ 0}, #{d ≥ 0})) / (B + 1)) over the B replicate differences d, is below
  0.05 (`drop_p_value` in results.csv): the replicate count behind "the 95% interval of the drop excludes 0".
{tasks}
- The linear probe is trained on clean training embeddings and scored on corrupted test embeddings."""


def task_definitions(group_shift: bool = False) -> list[str]:
    """Every registered task's definition lines (robustpath.tasks.registry), in report order, each once."""
    from robustpath.tasks.registry import list_task_infos

    lines = [line for info in list_task_infos(group_shift=group_shift) for line in info.definitions]
    return list(dict.fromkeys(lines))


def definitions_text() -> str:
    """The report's definitions: the general ones, then each task's own lines from the task registry."""
    return _DEFINITIONS.replace("{tasks}", "\n".join(task_definitions()))


def number(value, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def _is_number(text: str) -> bool:
    try:
        float(text.replace("—", "nan").replace("*", "").split(" ")[0].strip("()"))
    except ValueError:
        return False
    return True


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A pipe table; columns whose cells all start with a number are right-aligned."""
    cells = [[number(v) if isinstance(v, float) else str(v) for v in row] for row in rows]
    columns = [[row[i] for row in cells if row[i]] for i in range(len(header))]
    align = ["---:" if column and all(map(_is_number, column)) else "---" for column in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in cells] + [""]


def _grid_markdown(grid: MetricGrid, with_model: bool = False) -> list[str]:
    clean = grid.clean
    header = ["corruption", *[f"sev {s}" for s in grid.severities], "mean"]
    rows = [
        [label, *[cell_text(cells[s]) if s in cells else "" for s in grid.severities], number(mean_over_severities(cells))]
        for label, cells in grid.rows.items()
    ]
    intro = f"Clean: **{clean.value:.3f}** (95% CI {clean.ci_low:.3f}–{clean.ci_high:.3f}). {cell_legend(grid.higher_is_better).capitalize()}."
    return [f"### {grid_title(grid, with_model)}", "", intro, ""] + markdown_table(header, rows)


def run_label(record: Mapping) -> str:
    """'`RUN_ID` (MODEL on DATASET)': which run a note or a table belongs to."""
    return f"`{record['run_id']}` ({record['model']['name']} on {record['dataset']['name']})"


def _count_text(counts: Mapping[str, int]) -> str:
    return f"{sum(counts.values())} ({', '.join(f'{name} {n}' for name, n in counts.items())})"


def _split_counts(record: Mapping) -> str | None:
    """'280 training (a 43, …) and 120 test images (…)', None for a run.json without counts."""
    counts = record.get("dataset", {}).get("counts") or {}
    if not counts.get("train") or not counts.get("test"):
        return None
    return f"{_count_text(counts['train'])} training and {_count_text(counts['test'])} test images"


def _train_test(record: Mapping) -> str:
    counts = record.get("dataset", {}).get("counts") or {}
    train, test = counts.get("train"), counts.get("test")
    return f"{sum(train.values())} / {sum(test.values())}" if train and test else "?"


def _attributed_notes(records: Sequence[Mapping]) -> list[str]:
    """Each distinct note once; a note that not every run has names the runs it belongs to."""
    runs_of: dict[str, list[Mapping]] = {}
    for record in records:
        for note in dict.fromkeys(record.get("notes", [])):
            runs_of.setdefault(note, []).append(record)
    lines = []
    for note, runs in runs_of.items():
        owners = "" if len(runs) == len(records) else f" — {', '.join(run_label(r) for r in runs)}"
        lines.append(f"> {note}{owners}")
    return lines


def _header(records: Sequence[Mapping], table: "pd.DataFrame") -> list[str]:
    if len(records) == 1:
        record = records[0]
        dataset = record["dataset"]
        size = dataset.get("native_size", ["?", "?"])
        counts = _split_counts(record)
        return [
            f"# robustpath report — {record['model']['name']} on {dataset['name']}", "",
            f"- run: `{record['run_id']}` ({record.get('started', '?')}), device `{record.get('device', '?')}`, "
            f"preset `{record.get('preset', {}).get('name', '?')}`, seed {record.get('spec', {}).get('seed', '?')}",
            f"- classes: {', '.join(dataset.get('classes', []))}; native size {size[0]}×{size[1]} px",
            *([f"- images: {counts}; the probe and the retrieval gallery use the training images, "
               "every metric is measured on the test images"] if counts else []),
            f"- results schema version {SCHEMA_VERSION}", "",
        ] + [f"> {note}" for note in record.get("notes", [])] + [""]
    models = sorted(set(table.model))
    datasets = sorted(set(table.dataset))
    lines = [f"# robustpath comparison — {', '.join(models)} on {', '.join(datasets)}", "",
             f"- results schema version {SCHEMA_VERSION}; {len(records)} runs", ""]
    rows = [[r["run_id"], r["model"]["name"], r["dataset"]["name"], _train_test(r), r.get("started", ""),
             r.get("preset", {}).get("name", ""), r.get("spec", {}).get("seed", "")] for r in records]
    lines += markdown_table(["run", "model", "dataset", "train / test images", "started", "preset", "seed"], rows)
    return lines + _attributed_notes(records) + [""]


def _images(plots: Mapping[str, list[str]] | None, section: str) -> list[str]:
    paths = (plots or {}).get(section, [])
    return [f"![{section}]({path})" for path in paths] + ([""] if paths else [])


def _without_resize(records: Sequence[Mapping]) -> list[Mapping]:
    """The runs whose model takes the images at their native size (no resize: pre = post)."""
    same = []
    for record in records:
        prep, native = record.get("model", {}).get("preprocessing"), record.get("dataset", {}).get("native_size")
        if prep and native and list(prep["input_size"]) == list(native) and prep.get("resize_size") in (None, max(native)):
            same.append(record)
    return same


def _blur_stage_section(summary: "RobustnessSummary", records: Sequence[Mapping], plots) -> list[str]:
    lines = ["## Gaussian blur before vs after the resize", "",
             "`pre`: blurred at native size, then resized to the model input; `post`: resized, then blurred "
             "(σ in pixels of the image it acts on).", ""]
    same = _without_resize(records)
    if same:
        which = "this run's model takes" if len(records) == 1 else f"the model of {', '.join(map(run_label, same))} takes"
        lines += [f"Here {which} the images at their native size: there is no resize, so `pre` and `post` are the "
                  "same images and the same numbers. The comparison shows a difference only for models that "
                  "resize the images (e.g. 224 px foundation models on small patches).", ""]
    rows = [[r.model, r.dataset, r.task, r.severity, number(r.pre_value), number(r.post_value),
             f"{r.post_minus_pre:+.3f}"] for r in summary.blur_stages.itertuples()]
    lines += markdown_table(["model", "dataset", "task", "severity", "pre", "post", "post − pre"], rows)
    return lines + _images(plots, "blur_stages")


def _summary_sections(summary: "RobustnessSummary", records: Sequence[Mapping], plots: Mapping[str, list[str]] | None) -> list[str]:
    several = summary.ranking.model.nunique() > 1
    baseline = (
        f"mCE against the baseline `{summary.baseline}`." if summary.baseline
        else "mCE needs a baseline model: `robustpath report RUN_DIR... --baseline MODEL`."
    )
    lines = [f"## Robustness {'ranking' if several else 'summary'}", "",
             f"Primary metric per task{'; ranked by mean normalised AUC' if several else ''}; {baseline}", ""]
    for (dataset, task), part in summary.ranking.groupby(["dataset", "task"], sort=False):
        lines += [f"### {dataset} · {task} · {part.metric.iloc[0]}", ""]
        noted = bool(part.summary_note.astype(bool).any())
        rows = [[r.rank, r.model, number(r.clean_value), number(r.chance), number(r.mean_retention),
                 number(r.mean_normalised_auc), number(r.mce), number(r.relative_mce), r.worst_condition,
                 *([r.summary_note] if noted else [])] for r in part.itertuples()]
        lines += markdown_table(["rank", "model", "clean", "chance", "mean retention", "normalised AUC", "mCE",
                                 "relative mCE", "worst condition", *(["note"] if noted else [])], rows)
    lines += [f"> {note}" for note in summary.notes] + ([""] if summary.notes else [])
    lines += _images(plots, "retention")
    lines += ["## Corruptions that hurt most", ""]
    rows = [[r.model, r.dataset, r.task, r.condition, number(r.clean_value), number(r.mean_value), f"{r.mean_drop:+.3f}",
             number(r.mean_retention)] for r in summary.worst.itertuples()]
    lines += markdown_table(["model", "dataset", "task", "condition", "clean", "mean", "mean drop", "retention"], rows)
    if (plots or {}).get("degradation"):
        lines += ["## Degradation curves", "", "Primary metric against severity (0 = clean); bands: 95% bootstrap intervals.", ""]
        lines += _images(plots, "degradation")
    if not summary.blur_stages.empty:
        lines += _blur_stage_section(summary, records, plots)
    return lines


def _data_scale_section(summary: "RobustnessSummary", plots: Mapping[str, list[str]] | None) -> list[str]:
    overview = summary.data_scale_overview
    overview = overview[overview.metric == "accuracy"]
    if overview.empty:
        return []
    lines = ["## Linear probe: data scale", "",
             "Probe accuracy by training images per class (0 = all), mean ± sd over repeats (seeded subsamples).", ""]
    rows = [[r.model, r.dataset, r.samples_per_class or "all", r.repeats,
             f"{number(r.clean_mean)} ± {number(r.clean_sd)}", f"{number(r.corrupted_mean)} ± {number(r.corrupted_sd)}"]
            for r in overview.itertuples()]
    lines += markdown_table(["model", "dataset", "per class", "repeats", "clean", "mean over corruptions"], rows)
    return lines + _images(plots, "data_scale")


def _corruption_parameters(records: Sequence[Mapping]) -> list[str]:
    """One parameter table per distinct table; in a merged report, headed by its preset and runs."""
    tables: dict[tuple, list[Mapping]] = {}
    for record in records:
        preset = record.get("preset", {})
        rows = tuple(
            (v["corruption"], v["stage"], v["severity"], format_parameter(v["parameter"]), v["unit"], _native(v))
            + ((microns_text(v.get("native_equivalent")),) if _has_microns(preset) else ())
            for v in preset.get("variants", [])
        )
        if rows:
            tables.setdefault((preset.get("name"), rows), []).append(record)
    if not tables:
        return []
    lines = ["## Corruptions", ""]
    for (name, rows), runs in tables.items():
        if len(records) > 1:
            lines += [f"Preset `{name}` — {'every run' if len(runs) == len(records) else ', '.join(map(run_label, runs))}:", ""]
        microns = ["in µm"] if rows and len(rows[0]) > 6 else []
        lines += markdown_table(["corruption", "stage", "severity", "parameter", "unit", "in native pixels"] + microns, rows)
    examples = dict.fromkeys(_native_example(record, named=len(records) > 1) for record in records)
    microns = any(_has_microns(record.get("preset", {})) for record in records)
    return lines + ["", "*In native pixels*: the parameter restated for the image before the model's resize (blank "
                    "for parameters without a size): " + "; ".join(examples) + "."
                    + (" *In µm*: a length in native pixels times the images' microns per pixel (a range when "
                       "their pixel sizes differ)." if microns else ""), ""]


def _has_microns(preset: Mapping) -> bool:
    return any((v.get("native_equivalent") or {}).get("microns") for v in preset.get("variants", []))


def microns_text(native: Mapping | None) -> str:
    """A length in micrometres for people: '0.5', or '0.25–0.5' when the images' pixel sizes differ; '' without one."""
    microns = (native or {}).get("microns")
    if not microns:
        return ""
    low, high = microns
    return f"{low:.3g}" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g}–{high:.3g}"


def _native(variant: Mapping) -> str:
    """The native-pixel equivalent of a variant's parameter, '' when it has none (or older run.json)."""
    native = variant.get("native_equivalent")
    return f"{native['value']:.3g}" if native else ""


def _native_example(record: Mapping, named: bool) -> str:
    """How this run's sizes turn a post-resize parameter into native pixels, in words."""
    native_size = record.get("dataset", {}).get("native_size")
    prep = record.get("model", {}).get("preprocessing")
    if not native_size or not prep:
        return "a value after the resize is scaled by native size / resized size"
    native = min(native_size)
    resized = (prep.get("resize_size") or max(prep["input_size"])) if prep.get("crop") == "center" else min(prep["input_size"])
    owner = f" ({run_label(record)})" if named else ""
    if resized == native:
        return f"the model takes the images at their native {native} px{owner}, so both stages act on native pixels"
    post = next((v for v in record.get("preset", {}).get("variants", [])
                 if v.get("stage") == "post" and v.get("native_equivalent") and v["parameter"]), None)
    if post is None:
        return f"a length of L pixels after the resize from {native} px to {resized} px{owner} is L × {native}/{resized} native pixels"
    return (f"{post['corruption']} {format_parameter(post['parameter'])} after the resize from {native} px to {resized} px"
            f"{owner} is {post['native_equivalent']['value']:.3g} in native pixels")


def _gallery_section(records: Sequence[Mapping], plots: Mapping[str, list[str]] | None) -> list[str]:
    """The corruption gallery (plots/corruption_gallery.png) with what it shows; [] without it."""
    if not (plots or {}).get("gallery"):
        return []
    record = next((r for r in records if r.get("gallery")), None)
    lines = ["## Corruption gallery", ""]
    if record is not None:
        facts = record["gallery"]
        shown = ", ".join(f"`{i}` ({c})" for i, c in zip(facts["sample_ids"], facts["classes"]))
        origin = f" of run `{record['run_id']}` ({record['model']['name']} on {record['dataset']['name']})" if len(records) > 1 else ""
        lines += [f"Test images {shown}{origin}; each corruption applied at native size before the model's resize "
                  f"(stage `pre`) with seed {facts['seed']}, as in the sweep. Columns: clean, then each severity.", ""]
    return lines + _images(plots, "gallery")


def render_report(
    table: "pd.DataFrame", records: Sequence[Mapping], summary: "RobustnessSummary | None" = None,
    plots: Mapping[str, list[str]] | None = None,
) -> str:
    """report.md for one run (all metrics in the grids) or several (primary metrics)."""
    if summary is None:
        from robustpath.results.robustness import summarise_results

        summary = summarise_results(table, list(records))
    single = len(records) == 1
    lines = _header(records, table)
    lines += _summary_sections(summary, records, plots) + _data_scale_section(summary, plots)
    from robustpath.output.report.group_sections import group_shift_markdown

    lines += group_shift_markdown(summary, plots)
    lines += label_free_sections(table, summary, plots, several=not single)
    lines += _corruption_parameters(records)
    lines += _gallery_section(records, plots)
    lines += ["## Results", ""]
    for grid in build_grids(table, metrics="all" if single else "primary"):
        lines += _grid_markdown(grid, with_model=not single)
    lines += ["## Definitions", "", definitions_text(), ""]
    return "\n".join(lines)


def render_markdown(table: "pd.DataFrame", record: dict, summary=None, plots=None) -> str:
    """A self-contained report.md for one run."""
    return render_report(table, [record], summary, plots)
