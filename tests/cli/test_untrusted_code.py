"""Repository code and pickled code never run unless the command line asks, and nothing prompts.

Each attack is a real file on disk whose code would create a marker file when run: a local
Hugging Face repository with custom modeling code (``auto_map``), an open_clip folder whose
text tower is such a repository, and pickles whose payload calls ``os.system``.  The
commands run as real processes; the marker must never appear.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from process_fixtures import environment, one_error, run_cli
from engine_fixtures import cli
from model_fixtures import OPEN_CLIP_CONFIG, tiny_hf_dinov2  # noqa: F401  (fixture)

QUICK = ["-c", "hue", "-s", "1", "-t", "embedding_drift", "--device", "cpu", "--quiet"]


def write_code_repository(folder: Path, marker: Path) -> Path:
    """An HF-style repository whose configuration and modeling code create ``marker`` when imported."""
    folder.mkdir(parents=True, exist_ok=True)
    touch = f"open({str(marker)!r}, 'w').write('repository code ran')\n"
    (folder / "configuration_marker.py").write_text(touch + textwrap.dedent("""
        from transformers import PretrainedConfig

        class MarkerConfig(PretrainedConfig):
            model_type = "marker"
    """))
    (folder / "modeling_marker.py").write_text(touch + textwrap.dedent("""
        from transformers import PreTrainedModel

        class MarkerModel(PreTrainedModel):
            pass
    """))
    auto_map = {"AutoConfig": "configuration_marker.MarkerConfig", "AutoModel": "modeling_marker.MarkerModel"}
    (folder / "config.json").write_text(json.dumps({"model_type": "marker", "auto_map": auto_map}))
    return folder


@pytest.fixture
def repository(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    return write_code_repository(tmp_path / "code-repo", marker), marker


def test_the_repository_runs_its_code_when_the_command_line_asks(repository, tmp_path):
    """The attack is real: with --trust-remote-code on the command line its code does run."""
    folder, marker = repository
    completed = run_cli(tmp_path, "eval", f"hf:{folder}", "--trust-remote-code", "--out", tmp_path / "o", *QUICK)
    assert completed.returncode != 0 and marker.exists()


def _config_files(folder: Path, tmp_path: Path) -> dict[str, Path]:
    top = tmp_path / "top.toml"
    top.write_text(f'model = "hf:{folder}"\ntrust_remote_code = true\n')
    per_model = tmp_path / "per-model.toml"
    per_model.write_text(f'models = [{{ spec = "hf:{folder}", trust_remote_code = true }}]\n')
    replay = tmp_path / "replayed" / "run.json"
    replay.parent.mkdir()
    replay.write_text(json.dumps({"run_id": "x", "completed": True, "spec": {
        "model": f"hf:{folder}", "data": "demo-ihc", "tasks": ["embedding_drift"], "trust_remote_code": True}}))
    return {"top level": top, "per model": per_model, "replayed run.json": replay}


def test_a_config_file_cannot_switch_on_repository_code(repository, tmp_path):
    folder, marker = repository
    config = _config_files(folder, tmp_path)["top level"]
    line = one_error(run_cli(tmp_path, "eval", "--config", config, "--out", tmp_path / "out", *QUICK), 2)
    assert "trust_remote_code" in line and "--trust-remote-code" in line and "top.toml" in line
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["top level", "per model", "replayed run.json"])
def test_no_file_can_switch_on_repository_code(repository, tmp_path, where):
    """Refused while the options are read, before any model or file is touched (also by --dry-run)."""
    folder, marker = repository
    config = _config_files(folder, tmp_path)[where]
    for extra in ([], ["--dry-run"]):
        result = cli("eval", "--config", config, "--out", tmp_path / "out", *QUICK, *extra)
        assert result.exit_code == 2, result.output
        line = next(line for line in result.output.splitlines() if line.startswith("error:"))
        assert "trust_remote_code" in line and "--trust-remote-code" in line and config.name in line
    assert not marker.exists() and not (tmp_path / "out").exists()
    # given on the command line, the same file is accepted (here only planned)
    assert cli("eval", "--config", config, "--trust-remote-code", "--dry-run", "--out", tmp_path / "out").exit_code == 0


def test_without_the_option_the_repository_is_refused_in_one_line(repository, tmp_path):
    folder, marker = repository
    result = cli("eval", f"hf:{folder}", "--out", tmp_path / "o", *QUICK)
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "ships its own code" in line and "--trust-remote-code" in line
    assert not marker.exists()


def _open_clip_with_code_text_tower(tmp_path: Path, text_tower: Path) -> Path:
    """An open_clip folder whose text tower is a Hugging Face repository (open_clip's HFTextEncoder)."""
    folder = tmp_path / "open-clip-hf-text"
    folder.mkdir()
    model_cfg = {"embed_dim": OPEN_CLIP_CONFIG["embed_dim"], "vision_cfg": OPEN_CLIP_CONFIG["vision_cfg"],
                 "text_cfg": {"hf_model_name": str(text_tower), "hf_tokenizer_name": str(text_tower),
                              "hf_model_pretrained": False, "hf_proj_type": "linear", "hf_pooler_type": "mean_pooler"}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    (folder / "open_clip_model.safetensors").write_bytes(b"")
    return folder


@pytest.mark.parametrize("stdin", ["y piped", "a terminal, nothing typed"])
def test_an_open_clip_text_tower_with_code_never_prompts_and_never_runs(repository, tmp_path, stdin):
    """open_clip gives transformers no trust_remote_code, so transformers would ask on stdin ("y" runs the
    code; on a terminal it waits 15 s for an answer)."""
    text_tower, marker = repository
    folder = _open_clip_with_code_text_tower(tmp_path, text_tower)
    command = ["eval", f"open_clip:local-dir:{folder}", "--out", tmp_path / "o", *QUICK]
    if stdin == "y piped":
        completed = run_cli(tmp_path, *command, input="y\n", timeout=120)
    else:
        import pty

        terminal, child_side = pty.openpty()
        try:
            completed = run_cli(tmp_path, *command, stdin=child_side, timeout=120)
        finally:
            os.close(terminal)
            os.close(child_side)
    line = one_error(completed, 1)
    assert "ships its own code" in line and "text tower" in line
    assert "[y/N]" not in completed.stdout + completed.stderr and completed.stdout == ""
    assert not marker.exists()


def test_transformers_never_asks_while_robustpath_loads_a_model(repository, tmp_path):
    """The safety net under every adapter: transformers' "run the custom code? [y/N]" prompt refuses at once,
    whatever stdin says (here "y"), even where a caller leaves trust_remote_code unset."""
    folder, marker = repository
    code = textwrap.dedent(f"""
        import transformers
        from robustpath.models.hub import no_code_prompts
        try:
            with no_code_prompts():
                transformers.AutoConfig.from_pretrained({str(folder)!r})
        except ValueError as exc:
            print("refused:", str(exc).splitlines()[0])
    """)
    guarded = subprocess.run([sys.executable, "-c", code], input="y\n", capture_output=True, text=True,
                             env=environment(tmp_path), timeout=120)
    assert guarded.stdout.startswith("refused:") and "[y/N]" not in guarded.stdout, guarded.stdout + guarded.stderr
    assert not marker.exists()
    unguarded = code.replace("with no_code_prompts():", "if True:")  # transformers alone asks, and obeys "y"
    asked = subprocess.run([sys.executable, "-c", unguarded], input="y\n", capture_output=True, text=True,
                           env=environment(tmp_path), timeout=120)
    assert "[y/N]" in asked.stdout and marker.exists()


class _Payload:
    """Unpickling calls os.system(command): a checkpoint that runs code."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _malicious_pickles(tmp_path: Path, marker: Path) -> dict[str, Path]:
    import torch

    payload = {"weight": _Payload(f"touch {marker}")}
    files = {}
    for protocol in (2, 4):
        files[f"pickle protocol {protocol}"] = tmp_path / f"protocol{protocol}.pt"
        with open(files[f"pickle protocol {protocol}"], "wb") as handle:
            pickle.dump(payload, handle, protocol=protocol)
    files["torch.save archive"] = tmp_path / "archive.pt"
    torch.save(payload, files["torch.save archive"])
    return files


def _refusal(output: str, path: Path) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert f"'{path}' contains pickled code (posix.system) that robustpath will not load" in lines[0], lines[0]
    assert "convert it to safetensors" in lines[0] and "weights_only=False" not in output
    return lines[0]


def _loaded(folder: Path, tiny_hf_dinov2, weights: Path) -> Path:
    """A copy of the tiny DINOv2 folder whose weights are ``weights`` (pytorch_model.bin, no safetensors)."""
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((tiny_hf_dinov2.path / name).read_bytes())
    (folder / "pytorch_model.bin").write_bytes(weights.read_bytes())
    return folder


@pytest.mark.parametrize("route", ["timm:ARCH@FILE", "hf:DIR"])
@pytest.mark.parametrize("kind", ["pickle protocol 2", "pickle protocol 4", "torch.save archive"])
def test_weights_that_carry_code_are_refused_in_one_line(tiny_hf_dinov2, tmp_path, kind, route):
    """Both routes (open_clip reads ARCH@FILE weights through the same loader as timm)."""
    marker = tmp_path / "MARKER"
    path = _malicious_pickles(tmp_path, marker)[kind]
    if route == "hf:DIR":
        folder = _loaded(tmp_path / "hf-pickled", tiny_hf_dinov2, path)
        spec, path = f"hf:{folder}", folder / "pytorch_model.bin"
    else:
        spec = f"timm:vit_tiny_patch16_224@{path}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli("eval", spec, "--out", tmp_path / "o", *QUICK)
    assert result.exit_code == 1
    _refusal(result.output, path)
    assert not [str(w.message) for w in caught if "pickle" in str(w.message).lower()]  # no torch warning
    assert not marker.exists()


def test_a_protocol_4_pickle_is_refused_in_one_line_on_stderr(tiny_hf_dinov2, tmp_path):
    """As a real process: stderr holds the error line and nothing else (no torch warning)."""
    marker = tmp_path / "MARKER"
    folder = _loaded(tmp_path / "hf-pickled", tiny_hf_dinov2, _malicious_pickles(tmp_path, marker)["pickle protocol 4"])
    completed = run_cli(tmp_path, "eval", f"hf:{folder}", "--out", tmp_path / "o", *QUICK)
    line = _refusal(completed.stderr, folder / "pytorch_model.bin")
    assert completed.returncode == 1 and completed.stderr.strip() == line, completed.stderr
    assert not marker.exists()
