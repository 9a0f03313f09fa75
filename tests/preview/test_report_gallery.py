"""The corruption gallery of report.md: a few test images under each corruption of the run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import corruptions
from robustpath.cli.main import app
from robustpath.data import load_dataset
from robustpath.preview.run_gallery import build_run_gallery
from robustpath.variants import Variant

runner = CliRunner()
COMMON = ["-t", "retrieval", "--device", "cpu", "--no-cache", "--quiet"]


def evaluate(model_dir, out, *extra):
    result = runner.invoke(app, ["eval", str(model_dir), "--out", str(out), *COMMON, *map(str, extra)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return out


@pytest.fixture(scope="module")
def run_dir(tiny_customvit_dir, tmp_path_factory):
    return evaluate(tiny_customvit_dir, tmp_path_factory.mktemp("gallery") / "run",
                    "-c", "markup", "-c", "gaussian_blur", "-s", "1", "-s", "3", "--stage", "both")


def test_eval_writes_the_gallery_into_report_md(run_dir):
    png = run_dir / "plots" / "corruption_gallery.png"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        width, height = image.size
    # two rows (markup, gaussian_blur) × three columns (clean, severity 1, severity 3) of 3-image strips
    assert 600 <= width <= 2400 and 200 <= height <= 1000 and width > height
    report = (run_dir / "report.md").read_text()
    assert "## Corruption gallery" in report and "![gallery](plots/corruption_gallery.png)" in report
    facts = json.loads((run_dir / "run.json").read_text())["gallery"]
    assert facts["stage"] == "pre" and facts["seed"] == 0 and len(facts["sample_ids"]) == 3
    assert sorted(facts["classes"]) == ["background", "dab-negative", "dab-positive"]  # one per class
    dataset = load_dataset("demo-ihc")
    split = dict(zip(dataset.sample_ids, dataset.splits.tolist()))
    assert all(split[sample_id] == "test" for sample_id in facts["sample_ids"])
    assert all(f"`{sample_id}`" in report for sample_id in facts["sample_ids"])


def test_gallery_cells_are_the_images_the_sweep_corrupts():
    dataset = load_dataset("demo-ihc")
    preset = corruptions.load_preset("pathology")
    variants = [Variant("markup", 2, "pre"), Variant("hue", 1, "post"), Variant("hue", 3, "pre")]
    gallery = build_run_gallery(dataset, preset, variants, seed=5)
    assert gallery.column_titles == ("clean", "severity 1", "severity 2", "severity 3")
    index = [dataset.sample_ids.index(sample_id) for sample_id in gallery.sample_ids]
    natives = [dataset.read_image(i) for i in index]
    size = natives[0].shape[0]
    gap = 2  # white columns between the 40 px images

    def cells(strip):  # split a strip back into its images at the white gaps
        return [strip[:, k * (size + gap): k * (size + gap) + size] for k in range(len(index))]

    assert all(np.array_equal(cell, native) for cell, native in zip(cells(gallery.rows["markup"][0]), natives))
    assert np.all(gallery.rows["markup"][0][:, size:size + gap] == 255)
    x = torch.from_numpy(np.stack(natives)).permute(0, 3, 1, 2).float() / 255
    markup = corruptions.get_corruption("markup", preset)
    marked = markup(x, 2, generator=markup.sample_generators(5, list(gallery.sample_ids), 2))
    expected = (marked.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(cell, e) for cell, e in zip(cells(gallery.rows["markup"][2]), expected))
    assert gallery.rows["markup"][1] is None and gallery.rows["markup"][3] is None  # not in the run
    assert gallery.rows["hue"][2] is None and gallery.rows["hue"][1] is not None  # shown at stage pre


def test_no_markdown_no_gallery(tiny_customvit_dir, tmp_path):
    out = evaluate(tiny_customvit_dir, tmp_path / "csv", "-c", "hue", "-s", "1", "--format", "csv")
    assert not (out / "report.md").exists() and not (out / "plots" / "corruption_gallery.png").exists()


def test_merged_report_shows_the_first_runs_gallery(run_dir, tiny_customvit_dir, tmp_path):
    other = evaluate(tiny_customvit_dir, tmp_path / "other", "-c", "hue", "-s", "1")
    merged = tmp_path / "merged"
    result = runner.invoke(app, ["report", str(run_dir), str(other), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    copied = merged / "plots" / "corruption_gallery.png"
    assert copied.read_bytes() == (run_dir / "plots" / "corruption_gallery.png").read_bytes()
    report = (merged / "report.md").read_text()
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    assert "## Corruption gallery" in report and f"of run `{run_id}`" in report
    bare = tmp_path / "bare"
    result = runner.invoke(app, ["report", str(run_dir), str(other), "--out", str(bare), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "Corruption gallery" not in (bare / "report.md").read_text() and not (bare / "plots").exists()


def test_merged_gallery_caption_names_the_run_it_shows(run_dir, tiny_customvit_dir, tmp_path):
    """A csv-only run listed first has no gallery: picture and caption both come from run_dir."""
    csv_only = evaluate(tiny_customvit_dir, tmp_path / "csv", "-c", "hue", "-s", "1", "--seed", "1", "--format", "csv")
    assert "gallery" not in json.loads((csv_only / "run.json").read_text())
    merged = tmp_path / "merged"
    result = runner.invoke(app, ["report", str(csv_only), str(run_dir), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    assert (merged / "plots" / "corruption_gallery.png").read_bytes() == (
        run_dir / "plots" / "corruption_gallery.png").read_bytes()
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    assert f"of run `{run_id}`" in (merged / "report.md").read_text()


def test_overwrite_removes_the_earlier_runs_plots_and_report(tiny_customvit_dir, tmp_path):
    first = evaluate(tiny_customvit_dir, tmp_path / "run", "-c", "hue", "-s", "1")
    assert (first / "plots" / "corruption_gallery.png").is_file() and (first / "report.md").is_file()
    again = evaluate(tiny_customvit_dir, first, "-c", "contrast", "-s", "1", "--format", "json", "--overwrite")
    assert not (again / "plots").exists() and not (again / "report.md").exists() and (again / "report.json").exists()


def test_large_images_are_corrupted_at_native_size_and_shrunk_for_display():
    from robustpath.data.dataset import ArrayReader, Dataset

    images = (np.random.default_rng(0).random((4, 600, 500, 3)) * 255).astype(np.uint8)
    dataset = Dataset(name="big", classes=("a", "b"), sample_ids=("0", "1", "2", "3"), labels=np.array([0, 1, 0, 1]),
                      splits=np.array(["test"] * 4), paths=(None,) * 4, native_size=(600, 500),
                      reader=ArrayReader(images))
    gallery = build_run_gallery(dataset, corruptions.load_preset("pathology"), [Variant("hue", 2, "pre")], seed=0)
    clean_strip = gallery.rows["hue"][0]
    assert clean_strip.shape[0] == 256  # 600 px shown at 256 px
    first = images[int(gallery.sample_ids[0])]
    expected = np.asarray(Image.fromarray(first).resize((213, 256), Image.LANCZOS))  # PIL's own shrink
    np.testing.assert_array_equal(clean_strip[:, :213], expected)
