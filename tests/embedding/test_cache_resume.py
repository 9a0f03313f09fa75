"""Resuming killed or interrupted runs, refusing to clobber runs, and the embedding cache, end to end.

results.csv of a resumed run is compared byte for byte with an uninterrupted run (the
run id is a digest of the inputs, so it is the same; a resumed run also keeps the
run id of its first session, checked separately).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from engine_fixtures import cli, torch_threads

import robustpath
from robustpath.embedding.cache import cache_info
from robustpath.spec.run_spec import RunSpec
from robustpath.errors import UsageError
from robustpath.run.runner import run_evaluation
from robustpath.output.report.files import write_run_outputs
from robustpath.output.run_folder import PARTIAL_DIR, open_run_folder

SELECTION = ["-c", "hue", "-c", "markup", "-c", "gaussian_blur", "-s", "1", "-s", "3", "--stage", "both",
             "-t", "retrieval", "--device", "cpu", "-b", "16", "--quiet"]
# clean on 280 training images, then clean + 6 distinct pipelines on 120 test images: 1120 items, 70 forward
# passes; 39 passes (624 items) complete 3 entries: training clean (280), test clean (400), one pipeline (520)


@pytest.fixture(autouse=True)
def one_thread_and_own_cache(monkeypatch, tmp_path):
    """Tiny models run faster on one thread; subprocesses inherit the same setting (same numerics)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache-default"))
    with torch_threads(1):
        yield


def rows_without_run_id(path):
    lines = path.read_text().splitlines()
    return [line.split(",", 1)[1] for line in lines]


def run_id_column(path):
    return {line.split(",", 1)[0] for line in path.read_text().splitlines()[1:]}


@pytest.fixture(scope="module")
def uninterrupted(tiny_customvit_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROBUSTPATH_CACHE_DIR", str(base / "cache"))
        with torch_threads(1):
            result = cli("eval", tiny_customvit_dir, "--out", base / "out", *SELECTION)
    assert result.exit_code == 0, result.output
    return base / "out"


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    mode, count = sys.argv[1], int(sys.argv[2])
    calls = [0]

    def tick():
        calls[0] += 1
        if calls[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)

    if mode == "entry":  # killed right after the count-th entry reached OUT/.partial
        from robustpath.embedding import cache
        put = cache.EmbeddingStore.put
        def counting_put(self, key, array, **options):
            path = put(self, key, array, **options)
            if self.strict:
                tick()
            return path
        cache.EmbeddingStore.put = counting_put
    else:  # killed inside the count-th forward pass, between two entries
        from robustpath.embedding import engine
        forward = engine._Forward.__call__
        def counting_forward(self, x):
            tick()
            return forward(self, x)
        engine._Forward.__call__ = counting_forward
    from robustpath.cli.main import app
    sys.argv = ["robustpath", *sys.argv[3:]]
    app()
    """
)


@pytest.mark.parametrize("mode, count, reused_entries", [("entry", 3, 3), ("forward", 40, 3)])
def test_sigkill_then_rerun_gives_the_uninterrupted_results(
    mode, count, reused_entries, uninterrupted, tiny_customvit_dir, tmp_path, monkeypatch
):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    out = tmp_path / "out"
    source = str(Path(robustpath.__file__).resolve().parents[1])  # the subprocess runs the code under test
    env = {**os.environ, "ROBUSTPATH_CACHE_DIR": str(tmp_path / "cache-killed"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    killed = subprocess.run(
        [sys.executable, str(script), mode, str(count), "eval", str(tiny_customvit_dir), "--out", str(out), *SELECTION],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["completed"] is False and not (out / "results.csv").exists()
    assert len(list((out / PARTIAL_DIR).rglob("*.safetensors"))) == reused_entries

    # the same command again, with an empty cache: everything reused comes from OUT/.partial
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache-resumed"))
    resumed = cli("eval", tiny_customvit_dir, "--out", out, *SELECTION)
    assert resumed.exit_code == 0, resumed.output
    final = json.loads((out / "run.json").read_text())
    assert final["completed"] is True and final["embedding"]["resumed"] is True
    assert final["embedding"]["entries_reused"] == {"run folder": reused_entries}
    assert final["run_id"] == record["run_id"] and final["started"] == record["started"]
    assert len(final["sessions"]) == 2
    assert run_id_column(out / "results.csv") == {record["run_id"]}
    assert (out / "results.csv").read_bytes() == (uninterrupted / "results.csv").read_bytes()
    assert not (out / PARTIAL_DIR).exists()


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(uninterrupted, tiny_customvit_dir, tmp_path, monkeypatch):
    from robustpath.embedding import engine

    forward = engine._Forward.__call__
    calls = [0]

    def interrupted_forward(self, x):
        calls[0] += 1
        if calls[0] == 25:
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(engine._Forward, "__call__", interrupted_forward)
    out = tmp_path / "out"
    result = cli("eval", tiny_customvit_dir, "--out", out, *SELECTION)
    assert result.exit_code == 130
    assert f"interrupted; re-run the same command with --out '{out}' to resume" in result.output
    assert json.loads((out / "run.json").read_text())["completed"] is False
    monkeypatch.setattr(engine._Forward, "__call__", forward)
    result = cli("eval", tiny_customvit_dir, "--out", out, *SELECTION)
    assert result.exit_code == 0, result.output
    assert rows_without_run_id(out / "results.csv") == rows_without_run_id(uninterrupted / "results.csv")


def test_a_complete_run_is_not_overwritten(uninterrupted, tiny_customvit_dir):
    before = (uninterrupted / "results.csv").read_bytes()
    result = cli("eval", tiny_customvit_dir, "--out", uninterrupted, *SELECTION)
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "already holds a complete run" in error[0] and "--overwrite" in error[0]
    assert (uninterrupted / "results.csv").read_bytes() == before


def test_an_unfinished_run_with_other_options_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    spec = RunSpec(model="customvit-demo", corruptions=("hue",), out=out)
    (out / "run.json").write_text(json.dumps({"completed": False, "run_id": "r", "spec": spec.to_dict()}))
    changed = RunSpec(model="customvit-demo", corruptions=("hue", "markup"), batch_size=8, num_workers=2, out=out)
    with pytest.raises(UsageError, match=r"unfinished run with other options \(corruptions\)"):
        open_run_folder(out, changed.to_dict())
    same = RunSpec(model="customvit-demo", corruptions=("hue",), batch_size=8, num_workers=2, out=out)
    for options, overwrite, action in [(same, False, "resume"),  # batch size and workers do not matter
                                       (changed, True, "replace")]:
        folder = open_run_folder(out, options.to_dict(), overwrite=overwrite)
        folder.close()
        assert folder.action == action
    (out / "run.json").write_text("{not json")
    for overwrite in (False, True):  # not robustpath's: never replaced
        with pytest.raises(UsageError, match="not a robustpath run record"):
            open_run_folder(out, spec.to_dict(), overwrite=overwrite)
    assert (out / "run.json").read_text() == "{not json" and not (out / ".lock").exists()


@dataclass(frozen=True)
class OptionsSpec(RunSpec):
    """RunSpec with the execution options (also valid once RunSpec itself has them)."""

    overwrite: bool = False
    no_cache: bool = False


def test_overwrite_replaces_and_no_cache_writes_no_cache(tiny_customvit_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(cache))
    out = tmp_path / "out"
    spec = OptionsSpec(model=f"customvit:{tiny_customvit_dir}", corruptions=("hue",), severities=(1,),
                       tasks=("retrieval",), device="cpu", out=out, no_cache=True)
    first = run_evaluation(spec)
    assert cache_info(cache).entries == 0 and len(list((out / PARTIAL_DIR).rglob("*.safetensors"))) == 3
    write_run_outputs(first, out)
    assert not (out / PARTIAL_DIR).exists()
    with pytest.raises(UsageError, match="already holds a complete run"):
        run_evaluation(spec)
    def outputs():  # every file but the lock
        return {path.name: path.read_bytes() for path in out.iterdir() if path.is_file() and path.name != ".lock"}

    before = outputs()
    second = run_evaluation(OptionsSpec(**{**spec.__dict__, "overwrite": True, "no_cache": False}))
    assert second.record["embedding"]["entries_reused"] == {}  # a replaced run starts afresh
    # the complete run stays, untouched, until the new one is written
    assert outputs() == before and (out / ".lock").exists()  # held until the outputs are written
    assert cache_info(cache).entries == 3
    assert second.table.drop(columns="run_id").equals(first.table.drop(columns="run_id"))
    second.release()


def test_the_cache_serves_other_tasks_and_added_corruptions(tiny_customvit_dir, tmp_path, monkeypatch):
    """Entries are reused where the new run puts their images in the same forward passes: here the added
    corruption (markup) comes after hue in the sweep, and 40 divides both runs' items (520 and 640), so
    every earlier entry's passes are unchanged and only markup's 120 images go through the model."""
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    common = ["--device", "cpu", "--quiet", "-s", "2", "-b", "40"]
    first = cli("eval", tiny_customvit_dir, "-c", "hue", "-t", "retrieval", "--out", tmp_path / "a", *common)
    assert first.exit_code == 0, first.output
    second = cli("eval", tiny_customvit_dir, "-c", "hue", "-c", "markup", "-t", "retrieval", "-t", "linear_probe",
                 "--out", tmp_path / "b", *common)
    assert second.exit_code == 0, second.output
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    assert record["embedding"]["entries_reused"] == {"cache": 3}  # clean test + train, hue test
    assert set(record["embedding"]["reused_variants"]) == {"none/0/none", "hue/2/pre"}
    assert record["embedding"]["images_forwarded"] == 120
    assert cache_info(tmp_path / "cache").entries == 4
    import pandas as pd

    a, b = pd.read_csv(tmp_path / "a" / "results.csv"), pd.read_csv(tmp_path / "b" / "results.csv")
    columns = ["task", "metric", "corruption", "severity", "stage", "value", "ci_low", "ci_high"]
    shared = b[(b.task == "retrieval") & b.corruption.isin(["none", "hue"])][columns].reset_index(drop=True)
    assert shared.equals(a[columns].reset_index(drop=True))
