"""report.md and the files beside it say what a first-time reader needs, in words a reader can use.

Split counts, readable table parameters, drops that never read as zero, native-pixel
footnotes from the run's own sizes, notes and preset tables attributed to their runs,
no header-only tables, every written file counted, and a blur-stage plot with bands.
"""
import re

import pytest
from report_fixtures import golden_table, run_record

from robustpath.output.report import plots
from robustpath.output.report.grid import GridCell, cell_text
from robustpath.output.report.markdown import render_report
from robustpath.output.report.writer import write_report_folder, written_summary

COUNTS = {"train": {"a": 40, "b": 30, "c": 10}, "test": {"a": 17, "b": 13, "c": 5}}
MARKUP = {"strokes": 2, "width": 0.03, "alpha": 0.6}


def _record(model, run_id, native=40, input_size=40, crop="none", resize_size=None, notes=(), markup=True):
    record = run_record(model, run_id)
    record["dataset"]["counts"] = COUNTS
    record["dataset"]["native_size"] = [native, native]
    record["model"]["preprocessing"] = {"input_size": [input_size, input_size], "crop": crop, "resize_size": resize_size}
    blur_post = {"corruption": "gaussian_blur", "severity": 2, "stage": "post", "parameter": 1.5, "unit": "sigma",
                 "native_equivalent": {"value": 1.5 * native / (resize_size or input_size), "unit": "sigma"}}
    record["preset"]["variants"] = [blur_post] + ([{"corruption": "markup", "severity": 2, "stage": "pre",
                                                   "parameter": MARKUP, "unit": "strokes"}] if markup else [])
    record["notes"] = list(record["notes"]) + list(notes)
    return record


def _report(records):
    table = golden_table()
    table = table[table.run_id.isin([r["run_id"] for r in records])]
    return render_report(table, records)


def test_the_report_states_the_training_and_test_counts():
    single = _report([_record("alpha", "run-a")])
    assert "80 (a 40, b 30, c 10) training and 35 (a 17, b 13, c 5) test images" in single
    merged = _report([_record("alpha", "run-a"), _record("beta", "run-b")])
    header = next(line for line in merged.splitlines() if line.startswith("| run |"))
    assert "train / test images" in header
    assert "| run-a | alpha | toy | 80 / 35 |" in merged


def test_table_parameters_print_as_words_not_a_python_dict():
    report = _report([_record("alpha", "run-a")])
    row = next(line for line in report.splitlines() if line.startswith("| markup | pre | 2 |"))
    assert "strokes 2, width 0.03, alpha 0.6" in row and "{" not in row and "'" not in row


@pytest.mark.parametrize("drop", [-0.041, -0.00021, -0.000021, -3e-9, 0.00031])
def test_a_drop_never_reads_as_zero(drop):
    text = cell_text(GridCell(1.0 + drop, drop, 0.0, 1.0, significant=True))
    value, shown = (float(x) for x in re.fullmatch(r"(\S+) \((\S+)\*\)", text).groups())
    assert shown != 0 and shown == pytest.approx(drop, rel=0.05), text
    assert value == pytest.approx(1.0 + drop, abs=abs(drop) * 0.05 + 5e-7), text


def test_the_native_pixel_footnote_uses_the_runs_own_sizes():
    resized = _report([_record("alpha", "run-a", native=40, input_size=32, crop="center", resize_size=36)])
    footnote = next(line for line in resized.splitlines() if line.startswith("*In native pixels*"))
    assert "from 40 px to 36 px" in footnote and f"{1.5 * 40 / 36:.3g}" in footnote and "224" not in footnote
    native = _report([_record("alpha", "run-a")])
    footnote = next(line for line in native.splitlines() if line.startswith("*In native pixels*"))
    assert "native 40 px" in footnote and "224" not in footnote


def test_a_merged_report_attributes_notes_and_preset_tables_to_runs():
    records = [_record("alpha", "run-a", notes=["Only alpha was small."]), _record("beta", "run-b", markup=False),
               _record("gamma", "run-c", markup=False)]
    report = _report(records)
    shared = "> The linear probe is trained on clean training embeddings and scored on corrupted test embeddings."
    assert report.count(shared) == 1 and f"{shared} —" not in report  # every run has it
    assert "> Only alpha was small. — `run-a` (alpha on toy)" in report
    presets = [line for line in report.splitlines() if line.startswith("Preset `pathology`")]
    assert presets == ["Preset `pathology` — `run-a` (alpha on toy):",
                       "Preset `pathology` — `run-b` (beta on toy), `run-c` (gamma on toy):"]


def test_empty_tables_are_not_written_and_stale_ones_are_removed(tmp_path):
    import pandas as pd

    records = [_record("alpha", "run-a"), _record("beta", "run-b")]
    table = golden_table()
    probe = table[(table.task == "linear_probe") & (table.samples_per_class == 0)]
    with_sweep = pd.concat([table, *[probe.assign(samples_per_class=16, repeat=r) for r in (0, 1)]], ignore_index=True)
    out = tmp_path / "report"
    write_report_folder(out, with_sweep, records=records, formats=["csv", "markdown"])
    assert (out / "robustness_data_scale.csv").exists()  # an earlier report of this folder had a data-scale sweep
    paths, _ = write_report_folder(out, table, records=records, formats=["csv", "markdown"])
    for path in out.glob("*.csv"):
        assert len(path.read_text().splitlines()) > 1, path.name  # no header-only table
    assert not (out / "robustness_data_scale.csv").exists()
    assert not (out / "robustness_data_scale_overview.csv").exists()
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    summary = written_summary(paths, out)
    assert summary.startswith(f"{len(files)} files: ")
    assert f"plots/ ({len(list((out / 'plots').iterdir()))} files)" in summary


def test_the_blur_stage_plot_has_bands_and_an_unmagnified_axis(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(figure) or path)
    table = golden_table()
    plots.plot_blur_stages(table, {"run-a": "alpha", "run-b": "beta"}, "toy", tmp_path / "blur.png")
    (axis,) = [a for a in drawn[0].axes if a.get_visible() and a.lines]
    low, high = axis.get_ylim()
    assert low <= 0.0 and high >= 1.0  # golden values lie between 0.35 and 0.95
    assert len(axis.collections) == 4  # a 95% band for each of 2 runs × 2 stages
    assert axis.get_ylabel() == "accuracy" and "0 = clean" in axis.get_xlabel()
