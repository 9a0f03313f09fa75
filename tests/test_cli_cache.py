"""`robustpath cache`: size of the embedding cache, counted here by walking the folder, and --clear."""
import json

from engine_fixtures import cli, torch_threads


def _files(cache):
    return sorted(cache.rglob("*.safetensors"))  # one file per cached embedding entry


def test_cache_size_and_clear(tiny_customvit_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(cache))
    empty = json.loads(cli("cache", "--json").stdout)
    assert (empty["entries"], empty["bytes"]) == (0, 0)
    with torch_threads(1):
        result = cli("eval", tiny_customvit_dir, "-c", "hue", "-s", "1", "-t", "retrieval", "--out", tmp_path / "run",
                     "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    files = _files(cache)
    assert files
    info = json.loads(cli("cache", "--json").stdout)
    assert info == {"path": str(cache), "entries": len(files), "bytes": sum(p.stat().st_size for p in files),
                    "cleared": False}
    text = cli("cache").stdout
    assert f"{len(files)} embedding entries" in text and str(cache) in text

    cleared = cli("cache", "--clear")
    assert cleared.exit_code == 0 and cleared.stdout.startswith("Removed")
    assert _files(cache) == [] and json.loads(cli("cache", "--json").stdout)["entries"] == 0
