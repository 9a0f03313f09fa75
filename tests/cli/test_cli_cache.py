"""`robustpath cache`: size of the embedding cache, counted here by walking the folder, and --clear."""
import json

from engine_fixtures import cli, torch_threads
from model_fixtures import tiny_hf_dinov2  # noqa: F401  (fixture)

from robustpath.variants import CLEAN_VARIANT


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


def _dry_run(*args):
    result = cli("eval", *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    return {store: set(keys) for store, keys in json.loads(result.stdout)["embedded"].items()}


def test_dry_run_counts_what_the_next_run_reuses(tiny_customvit_dir, tmp_path, monkeypatch):
    """The dry run's count, made without loading the model, against what the real run then reuses."""
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    common = [tiny_customvit_dir, "-s", "1", "-t", "retrieval", "--device", "cpu"]
    assert _dry_run(*common, "-c", "hue", "--out", tmp_path / "a") == {"run folder": set(), "cache": set()}
    with torch_threads(1):
        assert cli("eval", *common, "-c", "hue", "--out", tmp_path / "a", "--quiet").exit_code == 0
        predicted = _dry_run(*common, "-c", "hue", "--out", tmp_path / "same")
        assert cli("eval", *common, "-c", "hue", "--out", tmp_path / "same", "--quiet").exit_code == 0
        added = _dry_run(*common, "-c", "hue", "-c", "contrast", "--out", tmp_path / "b")
        assert cli("eval", *common, "-c", "hue", "-c", "contrast", "--out", tmp_path / "b", "--quiet").exit_code == 0
    reused = json.loads((tmp_path / "same" / "run.json").read_text())["embedding"]["reused_variants"]
    assert predicted["cache"] == set(reused) == {CLEAN_VARIANT.key, "hue/1/pre"}
    assert predicted["run folder"] == set()
    # contrast comes before hue in the sweep: hue's images now share other forward passes, so hue is
    # embedded again (the dry run, which cannot see forward passes, counts it); the clean images are reused
    reused = json.loads((tmp_path / "b" / "run.json").read_text())["embedding"]["reused_variants"]
    assert set(reused) == {CLEAN_VARIANT.key} and added["cache"] == {CLEAN_VARIANT.key, "hue/1/pre"}
    assert _dry_run(*common, "-c", "hue", "--out", tmp_path / "c", "--seed", "1")["cache"] == set()  # another seed
    assert _dry_run(*common, "-c", "hue", "--out", tmp_path / "d", "-b", "7")["cache"] == set()  # another batch size


def test_dry_run_counts_finished_variants_of_an_interrupted_run(tiny_customvit_dir, tmp_path, monkeypatch):
    from robustpath.embedding import engine

    forward, calls = engine._Forward.__call__, [0]

    def interrupted_forward(self, x):
        calls[0] += 1
        if calls[0] == 34:  # -b 16, 528 images: training clean (280), test clean (120), hue (120), contrast part-way
            raise KeyboardInterrupt
        return forward(self, x)

    args = [tiny_customvit_dir, "-c", "hue", "-c", "contrast", "-s", "1", "-t", "retrieval", "--device", "cpu", "-b",
            "16", "--out", tmp_path / "out", "--no-cache"]
    monkeypatch.setattr(engine._Forward, "__call__", interrupted_forward)
    with torch_threads(1):
        assert cli("eval", *args, "--quiet").exit_code == 130
    monkeypatch.setattr(engine._Forward, "__call__", forward)
    predicted = _dry_run(*args)["run folder"]
    with torch_threads(1):
        assert cli("eval", *args, "--quiet").exit_code == 0
    reused = json.loads((tmp_path / "out" / "run.json").read_text())["embedding"]["reused_variants"]
    assert predicted == set(reused) == {CLEAN_VARIANT.key, "hue/1/pre"}


def test_dry_run_keeps_pooling_apart(tiny_hf_dinov2, tmp_path, monkeypatch):
    """The pooling changes the embeddings, so embeddings made with another pooling do not count."""
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    common = [tiny_hf_dinov2.spec, "-c", "hue", "-s", "1", "-t", "retrieval", "--device", "cpu"]
    with torch_threads(1):
        assert cli("eval", *common, "--pooling", "cls", "--out", tmp_path / "cls", "--quiet").exit_code == 0
    assert _dry_run(*common, "--pooling", "cls", "--out", tmp_path / "again")["cache"] == {CLEAN_VARIANT.key, "hue/1/pre"}
    assert _dry_run(*common, "--pooling", "mean", "--out", tmp_path / "mean")["cache"] == set()
