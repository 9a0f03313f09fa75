"""`robustpath report` end to end on two hand-made run folders (golden numbers), and the renderers."""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import typer
from report_fixtures import GOLDEN, golden_table, run_record, write_run_dir
from typer.testing import CliRunner

from robustpath.cli.report import register

runner = CliRunner()


def _app():
    app = typer.Typer(add_completion=False)

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    return app


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return write_run_dir(root / "alpha", "alpha", "run-a"), write_run_dir(root / "beta", "beta", "run-b")


@pytest.fixture(scope="module")
def report(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    args = ["report", *map(str, two_runs), "--out", str(out), "--baseline", "alpha",
            "--format", "csv", "--format", "json", "--format", "markdown"]
    return runner.invoke(_app(), args), out


def test_golden_report_numbers(report):
    result, out = report
    assert result.exit_code == 0, result.output
    models = pd.read_csv(out / "robustness_models.csv").set_index(["model", "metric"])
    beta, alpha = GOLDEN["beta"], GOLDEN["alpha"]
    # CE per condition = Σ_s (1 − beta) / Σ_s (1 − alpha): blur pre 0.6/0.6, blur post 1.0/0.8, hue 0.6/0.3
    assert models.loc[("beta", "accuracy"), "mce"] == pytest.approx((0.6 / 0.6 + 1.0 / 0.8 + 0.6 / 0.3) / 3, abs=1e-9)
    # relative: Σ_s (E − E_clean): beta 0.2, 0.6, 0.2 over alpha 0.4, 0.6, 0.1
    assert models.loc[("beta", "accuracy"), "relative_mce"] == pytest.approx((0.2 / 0.4 + 0.6 / 0.6 + 0.2 / 0.1) / 3, abs=1e-9)
    assert models.loc[("alpha", "accuracy"), "mce"] == pytest.approx(1.0)
    assert models.loc[("beta", "accuracy"), "mean_retention"] == pytest.approx((0.7 + 0.5 + 0.7) / 3 / 0.8, abs=1e-9)
    assert models.loc[("beta", "accuracy"), "clean_value"] == pytest.approx(beta["clean"])
    assert models.loc[("alpha", "accuracy"), "clean_value"] == pytest.approx(alpha["clean"])
    assert (pd.read_csv(out / "robustness_models.csv").schema_version == 3).all()
    ranking = pd.read_csv(out / "robustness_ranking.csv")
    assert list(ranking.model) == ["alpha", "beta"]
    merged = pd.read_csv(out / "results.csv")
    assert set(merged.run_id) == {"run-a", "run-b"} and (merged.schema_version == 3).all()
    blur = pd.read_csv(out / "robustness_blur_stages.csv").set_index(["model", "severity"])
    assert blur.loc[("beta", 2), "post_minus_pre"] == pytest.approx(-0.3)


def test_golden_report_json_and_markdown(report):
    result, out = report
    document = json.loads((out / "report.json").read_text())
    assert document["schema_version"] == 3 and document["baseline"] == "alpha"
    assert {run["model"] for run in document["runs"]} == {"alpha", "beta"}
    rows = {(r["model"], r["metric"]): r for r in document["tables"]["robustness_models"]}
    assert rows[("beta", "accuracy")]["mce"] == pytest.approx((1.0 + 1.25 + 2.0) / 3)
    assert rows[("beta", "flip_rate")]["mce"] is None  # NaN → null
    markdown = (out / "report.md").read_text()
    assert "results schema version 3" in markdown and "## Robustness ranking" in markdown
    assert "## Gaussian blur before vs after the resize" in markdown
    images = [line[line.index("(") + 1 : -1] for line in markdown.splitlines() if line.startswith("![")]
    assert images and all((out / image).stat().st_size > 1000 for image in images)
    assert "robustness · toy · linear_probe · accuracy" in result.stdout  # the ranking on stdout


def test_version_1_run_folders_are_read(two_runs, tmp_path):
    old = write_run_dir(tmp_path / "old", "gamma", "run-old", schema_version=1, values_of="beta")
    result = runner.invoke(_app(), ["report", str(two_runs[0]), str(old), "--out", str(tmp_path / "out"), "--no-plots"])
    assert result.exit_code == 0, result.output
    merged = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(merged.model) == {"alpha", "gamma"} and (merged.schema_version == 3).all()


@pytest.mark.parametrize(
    "extra, code, message",
    [
        (["--baseline", "alpah"], 2, "did you mean 'alpha'"),
        (["--format", "parquet"], 2, "pyarrow"),
        (["__missing__"], 1, "has no results.csv"),
        (["__out_is_run__"], 2, "one of the run folders"),
        (["__twice__"], 1, "appears twice"),
    ],
)
def test_bad_input_gives_one_line_error(two_runs, tmp_path, extra, code, message):
    if "parquet" in extra and importlib.util.find_spec("pyarrow") is not None:
        pytest.skip("pyarrow is installed")
    runs, out = [str(two_runs[0]), str(two_runs[1])], str(tmp_path / "out")
    if extra == ["__missing__"]:
        runs, extra = [str(tmp_path / "nowhere")], []
    elif extra == ["__out_is_run__"]:
        out, extra = runs[0], []
    elif extra == ["__twice__"]:
        runs, extra = [runs[0], runs[0]], []
    result = runner.invoke(_app(), ["report", *runs, "--out", out, *extra])
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0].lower() and "Traceback" not in result.output


def test_single_run_markdown_and_terminal_show_significance():
    from rich.console import Console

    from robustpath.output.report.markdown import render_markdown
    from robustpath.output.report.terminal import render_terminal

    table = golden_table()
    table = table[table.run_id == "run-a"]
    markdown = render_markdown(table, run_record("alpha", "run-a"))
    assert "# robustpath report — alpha on toy" in markdown and "### linear_probe · accuracy" in markdown
    assert "0.800 (-0.100*)" in markdown and "0.900 (+0.000)" in markdown  # hue severity 1: not significant
    assert "### linear_probe · flip_rate" in markdown and "lower is better" in markdown
    console = Console(record=True, width=160)
    render_terminal(table, console)
    assert "0.800 (-0.100*)" in console.export_text()


def test_corruption_gallery_plot(tmp_path):
    from matplotlib.image import imread

    from robustpath.output.report.plots import plot_corruption_gallery

    rng = np.random.default_rng(0)
    images = {"clean": [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)],
              "gaussian_blur": [rng.random((40, 40, 3)) for _ in range(4)]}
    path = plot_corruption_gallery(images, tmp_path / "gallery.png", ["sev 1", "sev 2", "sev 3", "sev 4"])
    assert imread(path).shape[2] in (3, 4)


def test_parquet_tables_carry_the_schema_version(two_runs, tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    result = runner.invoke(_app(), ["report", *map(str, two_runs), "--out", str(tmp_path), "--baseline", "alpha", "-f", "parquet"])
    assert result.exit_code == 0, result.output
    models = pd.read_parquet(tmp_path / "robustness_models.parquet").set_index(["model", "metric"])
    assert models.loc[("beta", "accuracy"), "mce"] == pytest.approx((1.0 + 1.25 + 2.0) / 3)
    assert (models.schema_version == 3).all()
    assert pq.read_schema(tmp_path / "results.parquet").metadata[b"robustpath_schema_version"] == b"3"
