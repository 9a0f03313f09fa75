"""report.md's plots: drawn in forked worker processes or one after the other, the same files and errors."""
import numpy as np
import pytest
from report_fixtures import golden_table, run_record

from robustpath.errors import OutputError
from robustpath.output.report import plots
from robustpath.results.robustness import summarise_results
from robustpath.preview.run_gallery import RunGallery

PLOTS = ["degradation__toy__linear_probe.png", "retention__toy.png", "blur_stages__toy.png", "corruption_gallery.png"]


@pytest.fixture(scope="module")
def inputs():
    table = golden_table()
    summary = summarise_results(table, [run_record("alpha", "run-a"), run_record("beta", "run-b")], "alpha")
    rng = np.random.default_rng(0)
    gallery = RunGallery(rows={name: [rng.integers(0, 255, (20, 62, 3), dtype=np.uint8) for _ in range(3)]
                               for name in ("gaussian_blur", "hue")},
                         column_titles=("clean", "severity 1", "severity 2"), sample_ids=("a", "b", "c"),
                         classes=("a", "b", "c"), seed=0)
    return {"table": table, "summary": summary, "gallery": gallery}


def _draw(inputs, out_dir, workers):
    with plots.drawing_plots(**inputs, out_dir=out_dir, workers=workers) as written:
        return written


def test_forked_workers_draw_the_same_files(inputs, tmp_path):
    written = {workers: _draw(inputs, tmp_path / str(workers), workers) for workers in (1, 2)}
    assert written[1] == written[2]
    assert sorted(path.split("/")[-1] for paths in written[1].values() for path in paths) == sorted(PLOTS)
    for paths in written[1].values():
        for path in paths:
            assert (tmp_path / "1" / path).read_bytes() == (tmp_path / "2" / path).read_bytes(), path


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_plot_raises_its_own_error(inputs, tmp_path, monkeypatch, workers):
    def refuse(path, data):
        raise OutputError(f"cannot write '{path.name}'")

    monkeypatch.setattr(plots, "write_bytes_atomic", refuse)  # forked workers inherit the patch
    with pytest.raises(OutputError, match=r"^cannot write 'degradation__toy__linear_probe\.png'$"):
        _draw(inputs, tmp_path, workers)  # the first plot's error, wherever it was drawn


def test_an_error_while_the_plots_are_drawn_is_raised(inputs, tmp_path):
    with pytest.raises(ValueError, match="^no report$"):
        with plots.drawing_plots(**inputs, out_dir=tmp_path, workers=2):
            raise ValueError("no report")
