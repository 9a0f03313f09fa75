"""The contents of report.html, gathered from the results table, the summaries, run.json and the run folders.

:func:`page_context` returns everything the template (templates/report.html.j2) shows:
the run header, notes, summary and ranking tables, SVG charts, the failure and corruption
galleries, corruption parameters, the result grids, the full results table and the
definitions, plus the page's images (a pool of data URIs, each stored once).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from markupsafe import Markup, escape

from robustpath.output.layout import RESULTS_FILE
from robustpath.output.report.html.charts import blur_stage_groups, degradation_groups
from robustpath.output.report.html.gallery_view import corruption_gallery_view, failure_galleries
from robustpath.output.report.html.tables import (
    Cell, Table, frame_table, grid_tables, retention_table, runs_table, summary_tables,
)
from robustpath.output.report.html.label_free import harm_charts, label_free_tables
from robustpath.output.report.html.thumbnails import ImagePool
from robustpath.output.report.markdown import microns_text
from robustpath.results.table import SCHEMA_VERSION

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from robustpath.results.robustness import RobustnessSummary
    from robustpath.preview.run_gallery import RunGallery


def page_context(
    table: "pd.DataFrame", records: Sequence[Mapping], summary: "RobustnessSummary", *,
    folders: Mapping[str, Path], gallery: "RunGallery | Path | None", max_images: int,
) -> dict:
    """What the template needs (see module docstring); ``folders``: run id → its run folder."""
    from robustpath import __version__
    from robustpath.output.report.formats import with_schema_version
    from robustpath.results.robustness import series_labels
    from robustpath.tasks.retrieval import VOTE_K

    labels = series_labels(table)
    several = len(records) > 1
    pool = ImagePool()
    tables = summary_tables(summary, several) + label_free_tables(table, summary, labels)
    context = {
        "title": _title(table, records), "several": several, "records": records,
        "robustpath_version": __version__, "schema_version": SCHEMA_VERSION,
        "runs_table": runs_table(records) if several else None,
        "facts": [] if several else run_facts(records[0]),
        "notes": list(dict.fromkeys(note for record in records for note in record.get("notes", []))),
        "summary_tables": tables, "retention": retention_table(summary, labels),
        "baseline_note": f"mCE against the baseline {summary.baseline}." if summary.baseline
        else "mCE needs a baseline model: robustpath report RUN_DIR... --baseline MODEL.",
        "degradation": degradation_groups(table, labels), "harm_charts": harm_charts(summary, labels), "blur": blur_stage_groups(summary.blur_stages, labels),
        "failures": failure_galleries(records, folders, labels, pool, max_images) if max_images > 0 else [],
        "max_images": max_images, "vote_k": VOTE_K,
        "corruption_gallery": corruption_gallery_view(records, gallery, pool),
        "parameters": parameter_tables(records), "grids": grid_tables(table, several),
        "results": frame_table(with_schema_version(table), None, id="results", caption="All results",
                               source=RESULTS_FILE),
        "definitions": definitions(),
    }
    context["toc"] = _toc(context)
    context["image_count"] = len(pool.uris)
    context["images_json"] = Markup(json.dumps(pool.uris, separators=(",", ":")).replace("<", "\\u003c"))
    return context


def _title(table: "pd.DataFrame", records: Sequence[Mapping]) -> str:
    if len(records) == 1:
        return f"robustpath report — {records[0]['model']['name']} on {records[0]['dataset']['name']}"
    models = ", ".join(sorted(set(table.model)))
    return f"robustpath comparison — {models} on {', '.join(sorted(set(table.dataset)))}"


def run_facts(record: Mapping) -> list[tuple[str, str]]:
    """(name, value) lines of a single run's header: model, data with counts, preset, device, run id."""
    model, dataset = record.get("model", {}), record.get("dataset", {})
    counts = dataset.get("counts") or {}
    size = dataset.get("native_size") or []
    data = dataset.get("name", "?")
    if size:
        data += f" · native size {size[1]}×{size[0]} px"
    facts = [("model", model.get("name", "?") + (f" (source {model['source']})" if model.get("source") else "")),
             ("data", data)]
    for split in ("train", "test"):
        per_class = counts.get(split) or {}
        if per_class:
            parts = ", ".join(f"{name} {count}" for name, count in per_class.items())
            facts.append((f"{split} images", f"{sum(per_class.values())} ({parts})"))
    preprocessing = model.get("preprocessing") or {}
    if preprocessing.get("input_size"):
        height, width = preprocessing["input_size"]
        facts.append(("model input", f"{width}×{height} px ({preprocessing.get('resize_mode', '?')}, "
                                     f"crop {preprocessing.get('crop', '?')})"))
    spec = record.get("spec") or {}
    facts += [("preset", str((record.get("preset") or {}).get("name", "?"))),
              ("device", f"{record.get('device', '?')}" + (f" · {record['precision']}" if record.get("precision") else "")),
              ("seed", str(spec.get("seed", "?"))), ("run id", str(record.get("run_id", "?"))),
              ("started", str(record.get("started", "?")))]
    return facts


def parameter_tables(records: Sequence[Mapping]) -> list[Table]:
    """One table per distinct preset of the runs: corruption, stage, severity, parameter, unit, native pixels."""
    from robustpath.preview.gallery import format_parameter

    tables, seen = [], set()
    for record in records:
        preset = record.get("preset") or {}
        variants = preset.get("variants") or []
        key = (preset.get("name"), json.dumps(variants, sort_keys=True, default=str))
        if not variants or key in seen:
            continue
        seen.add(key)
        microns = any((v.get("native_equivalent") or {}).get("microns") for v in variants)
        table = Table(f"parameters-{len(tables)}", f"Preset {preset.get('name', '?')}",
                      [("corruption", False), ("stage", False), ("severity", True), ("parameter", False), ("unit", False),
                       ("in native pixels", True)] + ([("in µm", True)] if microns else []))
        for v in variants:
            native = v.get("native_equivalent")
            table.rows.append([Cell(v["corruption"]), Cell(v["stage"]), Cell(str(v["severity"])),
                               Cell(_parameter_text(format_parameter, v.get("parameter"))), Cell(str(v.get("unit", ""))),
                               Cell(f"{native['value']:.3g}" if native else "")]
                              + ([Cell(microns_text(native))] if microns else []))
        tables.append(table)
    return tables


def _parameter_text(format_parameter, value) -> str:
    try:
        return format_parameter(value)
    except (TypeError, ValueError):
        return str(value)


def definitions() -> list[Markup]:
    """The definitions of report.md as list items (**bold** and `code` kept)."""
    from robustpath.output.report.markdown import definitions_text

    items: list[str] = []
    for line in definitions_text().splitlines():
        if line.startswith("- "):
            items.append(line[2:])
        elif items:
            items[-1] += " " + line.strip()
    return [_inline_markdown(item) for item in items]


def _inline_markdown(text: str) -> Markup:
    html = str(escape(text))
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", html))


def _toc(context: Mapping) -> list[tuple[str, str]]:
    entries = [("runs", "Runs" if context["several"] else "Run"), ("summary", "Summary")]
    if context["degradation"]:
        entries.append(("curves", "Curves"))
    entries.append(("failures", "Failures"))
    if context["corruption_gallery"]:
        entries.append(("gallery", "Corruption gallery"))
    if context["parameters"]:
        entries.append(("corruptions", "Corruptions"))
    return entries + [("results", "Results"), ("definitions", "Definitions")]
