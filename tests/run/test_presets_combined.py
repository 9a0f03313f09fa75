"""Several presets in one sweep (--preset repeated) and micrometres for spatial severities (--mpp, manifest mpp)."""
import json
import math

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import corruptions
from robustpath.cli import app
from robustpath.spec.run_spec import RunSpec
from robustpath.data import load_dataset
from robustpath.errors import DataError, UsageError

runner = CliRunner()


def test_combined_preset_keeps_every_entry_of_each_preset_in_order():
    pathology, artefacts = corruptions.load_preset("pathology"), corruptions.load_preset("slide-artefacts")
    combined = corruptions.combine_presets([pathology, artefacts])
    assert list(combined.corruptions) == list(pathology.corruptions) + list(artefacts.corruptions)
    for preset in (pathology, artefacts):
        for name, entry in preset.corruptions.items():
            assert combined.entry(name) is entry
    assert combined.name == "pathology+slide-artefacts"
    assert corruptions.combine_presets([pathology]) is pathology
    # a combined corruption behaves exactly as in its own preset
    images = torch_images()
    for name in ("hue", "defocus"):
        own = pathology if name in pathology.corruptions else artefacts
        expected = corruptions.get_corruption(name, own)(images, 2)
        assert np.array_equal(corruptions.get_corruption(name, combined)(images, 2).numpy(), expected.numpy())


def torch_images():
    import torch

    return torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))


def test_a_corruption_in_two_presets_is_refused_by_name():
    pathology = corruptions.load_preset("pathology")
    with pytest.raises(corruptions.CorruptionError, match="'brightness' is in both preset 'pathology' and preset"):
        corruptions.combine_presets([pathology, corruptions.load_preset("small-patch")])


def test_run_spec_records_one_preset_as_its_name_and_several_as_a_list():
    assert RunSpec(model="m", preset=("pathology",)).preset == "pathology"
    spec = RunSpec(model="m", preset=["pathology", "slide-artefacts"])
    assert spec.preset == ("pathology", "slide-artefacts")
    assert spec.to_dict()["preset"] == ["pathology", "slide-artefacts"]
    for bad in ((), ("pathology", ""), 3):
        with pytest.raises(UsageError, match="preset"):
            RunSpec(model="m", preset=bad)


def test_eval_runs_two_presets_in_one_sweep_and_its_run_json_replays(tmp_path, tiny_customvit_dir):
    out = tmp_path / "run"
    args = ["eval", str(tiny_customvit_dir), "--preset", "pathology", "--preset", "slide-artefacts", "-c", "hue",
            "-c", "defocus", "-s", "1", "-t", "linear_probe", "--out", str(out), "--device", "cpu", "--no-cache",
            "--quiet", "-f", "csv"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["spec"]["preset"] == ["pathology", "slide-artefacts"]
    assert record["preset"]["name"] == "pathology+slide-artefacts"
    assert {v["corruption"] for v in record["preset"]["variants"]} == {"hue", "defocus"}
    results = (out / "results.csv").read_text()
    assert ",hue,1," in results and ",defocus,1," in results
    replay = runner.invoke(app, ["eval", "--config", str(out / "run.json"), "--out", str(tmp_path / "again"),
                                 "--quiet", "-f", "csv"])
    assert replay.exit_code == 0, replay.output
    again = json.loads((tmp_path / "again" / "run.json").read_text())
    assert again["run_id"] == record["run_id"] and again["spec"]["preset"] == record["spec"]["preset"]


def test_config_file_takes_a_list_of_presets(tmp_path, tiny_customvit_dir):
    config = tmp_path / "c.toml"
    config.write_text(f'model = "{tiny_customvit_dir}"\npreset = ["pathology", "slide-artefacts"]\n'
                      'corruptions = ["jpeg", "saturation"]\nseverities = [2]\ntasks = ["linear_probe"]\n')
    result = runner.invoke(app, ["eval", "--config", str(config), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert "jpeg" in result.stdout and "saturation" in result.stdout
    config.write_text(f'model = "{tiny_customvit_dir}"\npreset = ["pathology", 3]\n')
    result = runner.invoke(app, ["eval", "--config", str(config), "--dry-run"])
    assert result.exit_code == 2 and "'preset' must be a preset name or file" in result.output


def _manifest(tmp_path, mpps):
    rng = np.random.default_rng(0)
    lines = ["path,label,split,mpp"]
    for index, mpp in enumerate(mpps):
        name = f"im{index}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / name)
        lines.append(f"{name},{'ab'[index % 2]},{'train' if index < len(mpps) - 4 else 'test'},{mpp}")
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_manifest_mpp_column_is_read_as_its_range(tmp_path):
    dataset = load_dataset(str(_manifest(tmp_path, [0.25] * 6 + [0.5] * 6)))
    assert dataset.mpp == (0.25, 0.5)


@pytest.mark.parametrize("value", ["0", "-0.5", "abc", "", "nan", "inf"])
def test_manifest_bad_mpp_is_one_line_naming_the_line(tmp_path, value):
    path = _manifest(tmp_path, [0.25] * 12)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + "," + value
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 4: mpp .* is not a positive number of microns per pixel"):
        load_dataset(str(path))


def test_spatial_severities_are_restated_in_micrometres(tmp_path, tiny_customvit_dir):
    manifest = _manifest(tmp_path, [0.25] * 6 + [0.5] * 6)
    out = tmp_path / "run"
    args = ["eval", str(tiny_customvit_dir), "--data", str(manifest), "--preset", "pathology", "--preset",
            "slide-artefacts", "-c", "gaussian_blur", "-c", "defocus", "-c", "hue", "-s", "1", "-s", "3",
            "--stage", "both", "-t", "linear_probe", "--out", str(out), "--device", "cpu", "--no-cache", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    record = json.loads((out / "run.json").read_text())
    assert record["dataset"]["mpp"] == [0.25, 0.5]
    presets = {name: corruptions.load_preset(name) for name in ("pathology", "slide-artefacts")}
    native_side, input_side = 16, record["model"]["preprocessing"]["input_size"][0]
    for variant in record["preset"]["variants"]:
        native = variant["native_equivalent"]
        if variant["corruption"] == "hue":
            assert native is None
            continue
        preset = presets["pathology" if variant["corruption"] == "gaussian_blur" else "slide-artefacts"]
        value = preset.entry(variant["corruption"]).values[variant["severity"] - 1]
        pixels = value if variant["stage"] == "pre" else value * native_side / input_side
        assert math.isclose(native["value"], pixels, rel_tol=1e-12)
        assert native["microns"] == pytest.approx([pixels * 0.25, pixels * 0.5], rel=1e-12)
    report = (out / "report.md").read_text()
    assert "| in µm |" in report and f"{3 * 0.25:.3g}–{3 * 0.5:.3g}" in report
    # --mpp sets one pixel size for every image and does not change what is measured (same run id)
    again = tmp_path / "again"
    assert runner.invoke(app, args[:-4] + ["--out", str(again), "--device", "cpu", "--no-cache", "--quiet",
                                           "--mpp", "0.5"]).exit_code == 0
    other = json.loads((again / "run.json").read_text())
    assert other["dataset"]["mpp"] == [0.5, 0.5] and other["run_id"] == record["run_id"]
    assert (again / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
