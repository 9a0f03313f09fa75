"""Stored embeddings under attack: damaged cache and OUT/.partial entries, and warm caches of other runs.

Every check compares results.csv byte for byte with a cold run of the same command (no
cache, no earlier run), through the command line, with the entries damaged on disk
between runs.  The model is the tiny open_clip ViT: on CPU its embeddings move in the
last bits with the size of a forward pass and an image's place in it (passes under 8
images), which is what a warm cache must not carry into a run.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from engine_fixtures import cli, torch_threads
from model_fixtures import tiny_open_clip  # noqa: F401  (fixture)
from safetensors import safe_open
from safetensors.numpy import save

SELECTION = ["-c", "hue", "-s", "1", "-t", "retrieval", "-t", "embedding_drift", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def model(tiny_open_clip) -> str:
    return f"open_clip:local-dir:{tiny_open_clip.extra['local_dir']}"


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    with torch_threads(1):
        yield


def _eval(tmp_path: Path, model: str, out: str, *args, code: int = 0):
    result = cli("eval", model, "--out", tmp_path / out, *SELECTION, *args)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())  # rich wraps long notes


def _results(tmp_path: Path, out: str) -> bytes:
    return (tmp_path / out / "results.csv").read_bytes()


def _entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.safetensors"))


def _read(path: Path) -> tuple[dict, np.ndarray]:
    with safe_open(str(path), framework="np") as handle:
        return dict(handle.metadata()), handle.get_tensor("embeddings")


def _pipeline(path: Path) -> tuple[str, int]:
    metadata, _ = _read(path)
    key = json.loads(next(value for name, value in metadata.items() if name.endswith("key")))
    return key["pipeline"]["corruption"], key["count"]


def _payload_span(path: Path) -> tuple[int, int]:
    """Byte range of the tensor data: after the 8-byte header length and the JSON header."""
    data = path.read_bytes()
    start = 8 + int.from_bytes(data[:8], "little")
    return start, len(data)


def flip_one_bit(path: Path) -> None:
    """Flip an exponent bit of one float in the middle of the payload (its value changes by 2**±64)."""
    start, end = _payload_span(path)
    data = bytearray(path.read_bytes())
    data[start + ((end - start) // 8) * 4 + 3] ^= 0x20  # the high byte of a float32 (little-endian)
    path.write_bytes(bytes(data))


def zero_payload(path: Path) -> None:
    start, end = _payload_span(path)
    data = bytearray(path.read_bytes())
    data[start:end] = bytes(end - start)
    path.write_bytes(bytes(data))


def plant_nans(path: Path) -> None:
    """A well-formed entry of the same key holding NaNs, with any stored SHA-256 made to match them."""
    metadata, array = _read(path)
    poisoned = np.full_like(array, np.nan)
    digest = hashlib.sha256(np.ascontiguousarray(poisoned, dtype="<f4").tobytes()).hexdigest()
    metadata = {name: digest if "sha256" in name else value for name, value in metadata.items()}
    path.write_bytes(save({"embeddings": poisoned}, metadata=metadata))


def test_damaged_cache_entries_are_recomputed_and_replaced(model, tmp_path):
    _eval(tmp_path, model, "cold", "--no-cache")
    cold = _results(tmp_path, "cold")
    _eval(tmp_path, model, "fill")
    cache = tmp_path / "cache"
    by_pipeline = {_pipeline(path): path for path in _entries(cache)}
    damaged = {("none", 280): flip_one_bit, ("none", 120): zero_payload, ("hue", 120): plant_nans}
    assert set(damaged) <= set(by_pipeline), by_pipeline
    for name, damage in damaged.items():
        damage(by_pipeline[name])

    warm = _eval(tmp_path, model, "warm")
    assert _results(tmp_path, "warm") == cold
    assert "3 stored embedding entries failed verification" in warm
    assert json.loads((tmp_path / "warm" / "run.json").read_text())["embedding"]["entries_reused"] == {}
    for name in damaged:  # replaced by good entries: a fourth run reads every entry from the cache
        _, array = _read(by_pipeline[name])
        assert np.isfinite(array).all() and np.abs(array).max() < 1e3 and np.abs(array).max() > 0
    again = _eval(tmp_path, model, "again")
    assert _results(tmp_path, "again") == cold and "failed verification" not in again
    assert json.loads((tmp_path / "again" / "run.json").read_text())["embedding"]["images_forwarded"] == 0


def test_damaged_entries_of_an_interrupted_run_are_recomputed_on_resume(model, tmp_path, monkeypatch):
    from robustpath.embedding import engine

    _eval(tmp_path, model, "cold", "--no-cache", "-b", "8")
    forward, calls = engine._Forward.__call__, [0]

    def interrupted_forward(self, x):  # Ctrl-C after 50 of 65 forward passes
        calls[0] += 1
        if calls[0] == 51:
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(engine._Forward, "__call__", interrupted_forward)
    _eval(tmp_path, model, "resumed", "--no-cache", "-b", "8", code=130)
    monkeypatch.setattr(engine._Forward, "__call__", forward)
    stored = _entries(tmp_path / "resumed" / ".partial")
    assert len(stored) == 2  # the clean training and test images
    for path in stored:
        flip_one_bit(path)
    resumed = _eval(tmp_path, model, "resumed", "--no-cache", "-b", "8")
    assert _results(tmp_path, "resumed") == _results(tmp_path, "cold")
    assert "2 stored embedding entries failed verification" in resumed


def test_a_warm_cache_of_another_batch_size_gives_the_cold_results(model, tmp_path):
    _eval(tmp_path, model, "cold", "--no-cache", "-b", "13")
    _eval(tmp_path, model, "fill", "-b", "7")
    _eval(tmp_path, model, "warm", "-b", "13")
    assert _results(tmp_path, "warm") == _results(tmp_path, "cold")


def test_a_warm_cache_of_other_corruptions_gives_the_cold_results(model, tmp_path):
    """contrast comes before hue in the sweep, so hue's images meet other forward passes than in the first run."""
    both = ["-c", "contrast", "-b", "7"]
    _eval(tmp_path, model, "cold", "--no-cache", *both)
    _eval(tmp_path, model, "fill", "-b", "7")
    _eval(tmp_path, model, "warm", *both)
    assert _results(tmp_path, "warm") == _results(tmp_path, "cold")
