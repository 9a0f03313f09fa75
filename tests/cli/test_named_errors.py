"""Inputs that used to end in ``error: unexpected <Type>``: each gets one named line and the right exit code,
before anything is written where the problem can be seen in advance."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from process_fixtures import one_error, run_cli
from engine_fixtures import cli
from model_fixtures import tiny_hf_clip  # noqa: F401  (fixture)

import robustpath
from robustpath.errors import UsageError

QUICK = ["-c", "hue", "-s", "1", "-t", "retrieval", "--device", "cpu", "--quiet", "--no-cache"]


def _error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "unexpected" not in lines[0], result.output
    return lines[0]


def test_a_seed_too_large_for_the_generators_is_refused_before_anything_is_written(tmp_path):
    for extra in (["--dry-run"], []):
        line = one_error(run_cli(tmp_path, "eval", "--seed", 2**32, "--out", tmp_path / "out", *QUICK, *extra), 2)
        assert "--seed" in line and "4294967295" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("setting", "named"), [
    ("batch_size = true", "batch_size (--batch-size) must be a whole number of at least 1, got True"),
    ("num_workers = -3", "num_workers (--workers) must be a whole number of at least 0, got -3"),
    ("seed = 99999999999", "seed (--seed) must be a whole number from 0 to 4294967295"),
    ("test_fraction = 1.5", "test_fraction must be a number between 0 and 1"),
    ("device = 3", "'device' must be a string, got 3"),
    ("out = 5", "'out' must be a path"),
])
def test_config_values_of_the_wrong_type_or_range(tmp_path, setting, named):
    config = tmp_path / "sweep.toml"
    config.write_text(f'model = "customvit-demo"\n{setting}\n')
    for extra in (["--dry-run"], []):
        line = _error(cli("eval", "--config", config, *extra), 2)
        assert named in line and "sweep.toml" in line
    assert not (tmp_path / "robustpath-runs").exists()


def test_the_python_api_checks_its_options_too():
    with pytest.raises(UsageError, match=r"batch_size \(--batch-size\) must be a whole number"):
        robustpath.evaluate(batch_size=True)
    with pytest.raises(UsageError, match="seed"):
        robustpath.evaluate(seed=-1)


@pytest.mark.parametrize(("template", "named"), [
    ("an image of {} {", "stray brace"),
    ("an image of } {}", "stray brace"),
    ("an image of {0} and {1}", "must hold {} exactly once"),
    ("an image of {name}", "must hold {} exactly once"),
    ("an image", "must hold {} exactly once"),
])
def test_prompt_templates_with_stray_braces(tiny_hf_clip, tmp_path, template, named):
    prompts = tmp_path / "prompts.toml"
    prompts.write_text(f"templates = [{template!r}]\n[classes]\n")
    for extra in (["--dry-run"], []):
        result = cli("eval", tiny_hf_clip.spec, "--prompts", prompts, "-t", "zeroshot", "--out", tmp_path / "out",
                     "-c", "hue", "-s", "1", "--device", "cpu", "--quiet", "--no-cache", *extra)
        line = _error(result, 2)
        assert named in line and repr(template) in line and "prompts.toml" in line
    assert not (tmp_path / "out").exists()


def test_a_preset_resolution_factor_of_zero(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('[corruptions.resolution]\noperation = "resolution"\nvalues = [0.0, 2.0]\n')
    line = _error(cli("eval", "--dry-run", "--preset", preset, "--out", tmp_path / "out"), 2)
    assert "mine.toml" in line and "corruptions.resolution" in line and "severity 1" in line and "[1, 1000]" in line


def test_report_on_a_truncated_results_file(tiny_customvit_dir, tmp_path):
    assert cli("eval", tiny_customvit_dir, "--out", tmp_path / "run", *QUICK).exit_code == 0
    results = tmp_path / "run" / "results.csv"
    whole = results.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 3, 40):
        results.write_bytes(whole[:cut])
        line = _error(cli("report", tmp_path / "run", "--out", tmp_path / "merged"), 1)
        assert str(results) in line and "truncated" in line


@pytest.fixture
def full_disk(tmp_path):
    """A 192 KiB tmpfs: room for a tiny run's stored embeddings, not for all of its outputs."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_names_the_file_that_could_not_be_written(tiny_customvit_dir, tmp_path, full_disk):
    out = full_disk / "out"
    line = one_error(run_cli(tmp_path, "eval", tiny_customvit_dir, "--out", out, *QUICK), 1)
    assert line.startswith(f"error: cannot write '{out}/") and line.endswith("': No space left on device"), line
