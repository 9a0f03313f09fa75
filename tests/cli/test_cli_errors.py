"""Bad input at the command line: one line, the right exit code, nothing written."""
import os
import pickle

import pytest
from typer.testing import CliRunner

from robustpath.cli.main import app

runner = CliRunner()


def _invoke(*args):
    result = runner.invoke(app, [*args, "--quiet"])
    assert "Traceback" not in result.output
    return result


def _error_line(result):
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_dry_run_plans_without_loading_or_writing(tmp_path):
    out = tmp_path / "out"
    result = _invoke("eval", "--dry-run", "-c", "hue", "-s", "1", "-s", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "640 images in 10 forward passes of up to 64" in result.stdout  # 400 clean + 120 test images × 2 variants
    assert "hue/1/pre, hue/2/pre" in result.stdout
    assert not out.exists()


def test_dry_run_does_not_touch_the_hub(tmp_path):
    result = _invoke("eval", "plip", "--dry-run", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0 and "source hf" in result.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--preset", "nope"], 2, "unknown preset 'nope'"),
        (["--device", "cuda"], 2, "no CUDA device"),
        (["--batch-size", "0"], 2, "batch-size"),
        (["conch"], 1, "conch"),
        (["--data", "demo-ihk"], 1, "did you mean 'demo-ihc'"),
        (["--templates", "patology", "-t", "zeroshot", "--model", "openai-clip"], 2, "did you mean 'pathology'"),
    ],
)
def test_option_errors(args, code, message, tmp_path):
    if args == ["--device", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    result = _invoke("eval", "--dry-run", *args, "--out", str(tmp_path / "o"))
    assert result.exit_code == code, result.output
    assert message.lower() in _error_line(result).lower()


def test_malformed_preset_file_names_the_key(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text("[preset]\nname = 'mine'\n[corruptions.hue]\noperation = 'hue'\nunit = 'f'\nvalues = 'big'\n")
    result = _invoke("eval", "--dry-run", "--preset", str(preset), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    line = _error_line(result)
    assert "mine.toml" in line and "values" in line


def test_malformed_prompts_file(tmp_path):
    prompts = tmp_path / "p.toml"
    prompts.write_text("[classes\n")
    result = _invoke("eval", "--dry-run", "--model", "openai-clip", "--prompts", str(prompts), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "not valid TOML" in _error_line(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = _invoke("eval", "--dry-run", "--out", str(locked / "run"))
    assert result.exit_code == 1 and "not writable" in _error_line(result)


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = _invoke("eval", "--dry-run", "--out", str(target))
    assert result.exit_code == 1 and "not a folder" in _error_line(result)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/robustpath-should-not-exist",))


def test_checkpoint_carrying_code_is_refused_and_not_run(tmp_path, tiny_customvit_dir):
    """A CustomViT folder whose weights file is a code-carrying pickle."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_customvit_dir / "config.json").read_text())
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Payload()))
    marker = "/tmp/robustpath-should-not-exist"
    if os.path.exists(marker):
        os.remove(marker)
    result = _invoke("eval", str(folder), "-c", "hue", "-s", "1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "safetensors" in _error_line(result)
    assert not os.path.exists(marker)


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["eval", "--dry-run", "--data", "/nonexistent", "--debug", "--out", str(tmp_path)])
    assert result.exit_code != 0 and result.exception is not None
