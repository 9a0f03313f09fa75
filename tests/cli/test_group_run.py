"""A run with groups end to end through the command line (robustpath eval --data manifest.csv) and the report."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustpath.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    from robustpath.data.stain_labs import write_stain_lab_dataset

    root = tmp_path_factory.mktemp("labs")
    manifest = write_stain_lab_dataset(root / "data", per_class=4)
    out = root / "run"
    result = runner.invoke(app, ["eval", "--data", str(manifest), "-t", "linear_probe", "-t", "embedding_drift",
                                 "--preset", "slide-artefacts", "-c", "stain_vector", "-s", "2", "-s", "4",
                                 "--bootstrap", "200", "--out", str(out), "--device", "cpu", "--quiet", "--no-cache"])
    return result, out


def test_groups_end_to_end_through_the_command_line(lab_run):
    result, out = lab_run
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "results.csv")
    pairs = {f"group:{a}->{b}" for a in ("lab-a", "lab-b", "lab-c") for b in ("lab-a", "lab-b", "lab-c") if a != b}
    identity = table[table.task == "cross_group_retrieval"]
    assert set(identity.corruption) == pairs | {"group:mean"} and set(identity.metric) == {"top1_accuracy", "top10_accuracy"}
    assert set(table[table.task == "robustness_index"].corruption) == {"group:all"}
    probe = table[(table.task == "group_probe") & (table.metric == "accuracy_drop")]
    accuracy = table[(table.task == "group_probe") & (table.metric == "accuracy")].set_index("corruption").value
    for row in probe[probe.corruption != "group:mean"].itertuples():
        target = row.corruption.split("->")[1]
        assert row.value == pytest.approx(accuracy[row.corruption] - accuracy[f"group:{target}->{target}"])
    distances = table[table.task == "shift_distance"]
    assert set(distances.corruption) == {"group:lab-a->lab-b", "group:lab-a->lab-c", "group:lab-b->lab-c", "stain_vector"}
    drift = table[(table.task == "embedding_drift") & (table.corruption == "stain_vector")].set_index("severity").value
    synthetic = distances[distances.corruption == "stain_vector"].set_index("severity").value
    assert synthetic.to_numpy() == pytest.approx(1 - drift.loc[synthetic.index].to_numpy())  # 1 − drift cosine
    assert (table[table.task.isin(["shift_distance"])].higher_is_better == False).all()  # noqa: E712
    record = json.loads((out / "run.json").read_text())
    assert record["groups"]["pairs_by_groups_present"] == {"3": 24}
    report = (out / "report.md").read_text()
    assert "## Real shifts between groups" in report and "Which corruption moves the embeddings" in report
    assert "Real shifts between groups" in (out / "report.html").read_text()


def test_merged_report_shows_group_tables(lab_run, tmp_path):
    result, out = lab_run
    assert result.exit_code == 0, result.output
    merged = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "merged"), "--no-plots"])
    assert merged.exit_code == 0, merged.output
    match = pd.read_csv(tmp_path / "merged" / "robustness_group_shift_match.csv")
    assert len(match) == 3 and set(match.closest_corruption) == {"stain_vector"}
    distances = pd.read_csv(out / "results.csv").query("task == 'shift_distance'")
    synthetic = distances[distances.corruption == "stain_vector"]
    for row in match.itertuples():
        real = distances[distances.corruption == f"group:{row.group_pair}"].value.iloc[0]
        closest = synthetic.iloc[int(np.argmin(np.abs(synthetic.value.to_numpy() - real)))]
        assert row.closest_severity == closest.severity and row.group_distance == pytest.approx(real)
