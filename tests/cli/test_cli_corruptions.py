"""`robustpath corruptions` and `robustpath corrupt` end to end (Typer's CliRunner)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import corruptions
from robustpath.cli.main import app

runner = CliRunner()
IHC = data.immunohistochemistry()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture()
def image_folder(tmp_path):
    """ROOT/<class>/*.png: two classes, three 40x40 IHC crops each (one a JPEG)."""
    root = tmp_path / "patches"
    for k, label in enumerate(("brown", "blue")):
        (root / label).mkdir(parents=True)
        for i in range(3):
            crop = IHC[40 * i : 40 * i + 40, 100 * k : 100 * k + 40]
            suffix = ".jpg" if i == 2 else ".png"
            Image.fromarray(crop).save(root / label / f"cell{i}{suffix}", quality=95)
    return root


def test_corruptions_lists_operation_unit_values_and_sources():
    result = _invoke("corruptions")
    assert result.exit_code == 0, result.output
    for name in corruptions.list_corruptions("pathology"):
        assert name in result.stdout
    assert "sigma," in result.stdout and "0.15" in result.stdout  # a unit and a value (text wraps in cells)
    assert "strokes 5," in result.stdout and "Sources:" in result.stdout and "our choice" in result.stdout
    assert "small-patch" in result.stdout  # the other presets are named


@pytest.mark.parametrize(("preset", "expected"), [("imagenet-c", "0.25"), ("imagenet_c", "pixelate"), ("small-patch", "1.25"),
                                                  ("imagecorruptions", "elastic_transform")])
def test_corruptions_lists_every_builtin_preset(preset, expected):
    result = _invoke("corruptions", "--preset", preset, "--details")
    assert result.exit_code == 0, result.output
    assert expected in result.stdout and "(note)" in result.stdout


def test_corruptions_reads_a_preset_file_and_reports_a_broken_one_on_one_line(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('[preset]\nname = "mine"\n[corruptions.soft]\noperation = "gaussian_blur"\nvalues = [0.7, 1.4]\nsources = ["ours"]\n')
    result = _invoke("corruptions", "--preset", str(good))
    assert result.exit_code == 0 and "soft" in result.stdout and "1.4" in result.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[corruptions.soft]\noperation = "gaussian_blur"\nvalues = [0.7, "x"]\n')
    result = _invoke("corruptions", "--preset", str(broken))
    assert result.exit_code == 2
    assert "broken.toml" in _error_line(result) and "corruptions.soft.values[1]" in result.output
    result = _invoke("corruptions", "--preset", "patholgy")
    assert result.exit_code == 2 and "Did you mean 'pathology'" in _error_line(result)


def test_corrupt_writes_a_labelled_gallery_per_image_of_a_dataset(tmp_path):
    out = tmp_path / "gallery"
    result = _invoke("corrupt", "demo-ihc", "--out", str(out), "--images", "2", "-c", "gaussian_blur", "-c", "markup",
                     "-s", "1", "-s", "4")
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("gallery-*.png"))
    assert len(pngs) == 2 and [str(p) for p in pngs] == sorted(result.stdout.split())
    with Image.open(pngs[0]) as picture:
        width, height = picture.size
    assert width > height > 200  # 2 rows x 3 columns (clean, 1, 4) with labels
    assert not list(out.glob(".*.tmp"))


def test_corrupt_one_image_file_after_the_resize(tmp_path):
    path = tmp_path / "cell.png"
    Image.fromarray(IHC[100:140, 200:240]).save(path)
    out = tmp_path / "one"
    result = _invoke("corrupt", str(path), "--out", str(out), "--stage", "post", "--size", "64", "-c", "hue")
    assert result.exit_code == 0, result.output
    assert (out / "gallery.png").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--stage", "post"], 2, "--stage post needs --size"),
        (["-c", "gausian_blur"], 2, "Did you mean 'gaussian_blur'"),
        (["-s", "9"], 2, "--severity 9 is out of range"),
        (["--preset", "nope"], 2, "unknown preset 'nope'"),
    ],
)
def test_corrupt_bad_options_are_one_line_errors(tmp_path, args, code, message):
    result = _invoke("corrupt", "demo-ihc", "--out", str(tmp_path / "x"), *args)
    assert result.exit_code == code and message in _error_line(result)
    assert not (tmp_path / "x").exists()


def test_corrupt_missing_input_is_a_one_line_error(tmp_path):
    result = _invoke("corrupt", str(tmp_path / "absent"), "--out", str(tmp_path / "x"))
    assert result.exit_code == 1 and "not found" in _error_line(result)


def test_export_keeps_the_folder_layout_and_matches_the_evaluation(image_folder, tmp_path):
    out = tmp_path / "export"
    result = _invoke("corrupt", str(image_folder), "--out", str(out), "--export", "-c", "markup", "-c", "gaussian_blur",
                     "-s", "2", "--stage", "both", "--size", "48", "--quiet")
    assert result.exit_code == 0, result.output
    folders = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/*") if p.is_dir())
    assert folders == ["gaussian_blur/2/post", "gaussian_blur/2/pre", "markup/2/post", "markup/2/pre"]
    expected_files = sorted(f"{label}/cell{i}.png" for label in ("blue", "brown") for i in range(3))
    for folder in folders:
        files = sorted(p.relative_to(out / folder).as_posix() for p in (out / folder).rglob("*.png"))
        assert files == expected_files
        with open(out / folder / "manifest.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert sorted(row["path"] for row in rows) == expected_files and {row["label"] for row in rows} == {"blue", "brown"}
    record = json.loads((out / "export.json").read_text())
    blur_post = next(v for v in record["variants"] if v["corruption"] == "gaussian_blur" and v["stage"] == "post")
    assert blur_post["native_equivalent"]["value"] == pytest.approx(1.0 * 40 / 48)

    # the exported markup is what `eval` feeds the model: marks from (seed 0, sample id, corruption)
    from robustpath.data import load_dataset

    source = load_dataset(str(image_folder))
    index = source.sample_ids.index("brown/cell0.png")
    clean = torch.from_numpy(np.array(source.read_image(index))).permute(2, 0, 1)[None].float() / 255
    markup = corruptions.get_corruption("markup")
    marked = markup(clean, 2, generator=markup.sample_generators(0, ["brown/cell0.png"], 2))
    expected = (marked[0].permute(1, 2, 0).numpy() * 255).round()
    exported = np.asarray(Image.open(out / "markup/2/pre/brown/cell0.png"), dtype=np.float64)
    assert exported.shape == (48, 48, 3)  # resized to --size after the corruption
    native_export = tmp_path / "native"
    assert _invoke("corrupt", str(image_folder), "--out", str(native_export), "--export", "-c", "markup", "-s", "2",
                   "--quiet").exit_code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(native_export / "markup/2/pre/brown/cell0.png")), expected)
    assert len(load_dataset(str(native_export / "markup/2/pre"))) == 6  # loadable as an image folder again
