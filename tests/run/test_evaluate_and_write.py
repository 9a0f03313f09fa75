"""The command line and the Python API write a run through one path (robustpath.run.runner.evaluate_and_write)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import robustpath
from robustpath.output.run_folder import RunInterrupted
from robustpath.run import runner

SMALL = dict(corruptions=["hue"], severities=[1], tasks=["embedding_drift"], device="cpu", no_cache=True, bootstrap=40)


def test_ctrl_c_while_the_api_writes_gives_the_resume_hint_and_the_rerun_finishes(tiny_customvit_dir, tmp_path,
                                                                                   monkeypatch):
    out = tmp_path / "out"
    model = f"customvit:{tiny_customvit_dir}"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(runner, "write_run_outputs", interrupted)
        with pytest.raises(RunInterrupted, match=f"re-run the same command with --out '{out}' to resume"):
            robustpath.evaluate(model, "demo-ihc", out=out, **SMALL)
    assert json.loads((out / "run.json").read_text())["completed"] is False
    assert not (out / "results.csv").exists()
    table = robustpath.evaluate(model, "demo-ihc", out=out, **SMALL)  # the folder was unlocked: the re-run resumes
    record = json.loads((out / "run.json").read_text())
    assert record["completed"] is True and record["embedding"]["resumed"] is True
    written = pd.read_csv(out / "results.csv")
    assert len(written) == len(table) and set(written.run_id) == {record["run_id"]}
