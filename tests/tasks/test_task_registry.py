"""The task registry: a contract test over every registered TaskInfo, and the declarations it refuses.

Parametrised over the registry, so a new task is tested as soon as its module registers it.
"""
import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from robustpath.errors import UsageError
from robustpath.results.table import metric_rows
from robustpath.tasks import TaskContext, create_task
from robustpath.tasks.chance import chance_record
from robustpath.tasks.metrics import MetricValue
from robustpath.tasks.registry import MetricInfo, TaskInfo, get_task_info, list_task_infos, register_task
from robustpath.variants import Variant

INFOS = list_task_infos()
TASK_INFOS = [info for info in INFOS if not info.group_shift]


@pytest.fixture(scope="module")
def context():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1.5, size=(3, 8))
    train_y, test_y = np.repeat(np.arange(3), 20), np.repeat(np.arange(3), 10)
    train_x = (centres[train_y] + rng.normal(0, 1.0, (60, 8))).astype(np.float32)
    test_x = (centres[test_y] + rng.normal(0, 1.0, (30, 8))).astype(np.float32)
    text = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
    from robustpath.models.finetuned import ClassifierHead

    model = LogisticRegression(max_iter=10_000).fit(train_x.astype(np.float64), train_y)
    head = ClassifierHead(0, 8, model.coef_, model.intercept_)
    ctx = TaskContext(train_x, train_y, test_y, ("a", "b", "c"), seed=0, text_embeddings=text,
                      clean_test_embeddings=test_x, bootstrap=50, classifier_heads={"fine_tune": head})
    return ctx, test_x + rng.normal(0, 1.0, test_x.shape).astype(np.float32)


def test_the_registry_holds_every_task_of_the_package():
    names = [info.name for info in INFOS]
    assert {"linear_probe", "retrieval", "zeroshot", "embedding_drift", "identity", "detectability", "fine_tune",
            "cross_group_retrieval", "robustness_index", "group_probe", "shift_distance"} <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("info", INFOS, ids=lambda info: info.name)
def test_task_info_contract(info):
    """Metrics with directions, a primary among them, definitions, a callable chance rule, export columns."""
    assert info.description and info.metrics
    assert info.primary in info.metric_names
    assert all(isinstance(metric.higher_is_better, bool) for metric in info.metrics)
    assert info.definitions and all(line.startswith("- **") for line in info.definitions)
    assert isinstance(info.export_columns, tuple) and all(isinstance(c, str) for c in info.export_columns)
    assert get_task_info(info.name) is info
    counts = [10, 20, 30]
    chance = info.chance(info.metric_names, counts, counts)
    assert set(chance) == set(info.metric_names)
    for metric, entry in chance.items():
        assert entry["definition"]
        if entry["value"] is not None and dict((m.name, m.higher_is_better) for m in info.metrics)[metric]:
            assert 0.0 <= entry["value"] <= entry["best"] + 1e-12, metric


def test_a_metric_name_has_one_direction_across_tasks():
    directions: dict[str, set] = {}
    for info in INFOS:
        for metric in info.metrics:
            directions.setdefault(metric.name, set()).add(metric.higher_is_better)
    assert all(len(values) == 1 for values in directions.values()), directions


@pytest.mark.parametrize("info", TASK_INFOS, ids=lambda info: info.name)
def test_created_task_matches_its_info_and_fills_its_export_columns(info, context):
    ctx, noisy = context
    task = create_task(info.name)
    assert (task.name, task.metrics) == (info.name, info.metric_names)
    task.fit(ctx)
    outcomes = task.outcomes(noisy, ctx.train_embeddings)
    filled = {
        "predicted_label": outcomes.predictions is not None, "p_{class}": outcomes.probabilities is not None,
        "neighbours": outcomes.neighbours is not None, "neighbour_labels": outcomes.neighbours is not None,
    }
    for column in info.export_columns:
        assert filled.get(column, column in outcomes.per_sample), column
    assert {column for column, present in filled.items() if present} <= set(info.export_columns)
    chance = task.chance_levels()
    expected = chance_record(info.metric_names, np.bincount(ctx.test_labels), np.bincount(ctx.train_labels))
    assert {m: e["definition"] for m, e in chance.items()} == {m: e["definition"] for m, e in expected.items()}


@pytest.mark.parametrize("info", INFOS, ids=lambda info: info.name)
def test_results_rows_carry_the_declared_direction(info):
    value = MetricValue(0.5, 0.4, 0.6, 10)
    rows = metric_rows("r", "m", "d", info.name, Variant("none", 0, "none"), {m.name: value for m in info.metrics})
    assert [row["higher_is_better"] for row in rows] == [m.higher_is_better for m in info.metrics]


def _info(**changes) -> TaskInfo:
    base = TaskInfo(name="registry_probe_task", description="d", order=999, metrics=(MetricInfo("a"),), primary="a",
                    chance=chance_record, definitions=("- **a**: a",), factory="x:y")
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("changes, message", [
    ({"metrics": ()}, "no metrics"),
    ({"primary": "b"}, "primary metric 'b'"),
    ({"metrics": (MetricInfo("a"), MetricInfo("a"))}, "metric twice"),
    ({"chance": "chance_record"}, "not callable"),
    ({"factory": None}, "factory"),
])
def test_the_registry_refuses_an_incomplete_task(changes, message):
    with pytest.raises(ValueError, match=message):
        register_task(_info(**changes))


def test_the_registry_refuses_a_second_task_of_the_same_name():
    with pytest.raises(ValueError, match="registered twice"):
        register_task(dataclasses.replace(get_task_info("retrieval"), description="another"))


def test_unknown_task_names_the_registered_ones():
    with pytest.raises(UsageError, match="linear_probe"):
        get_task_info("linear_prob")


def test_run_notes_follow_the_gallery():
    retrieval = get_task_info("retrieval")
    assert "clean training gallery" in retrieval.note("clean")
    assert "same corruption" in retrieval.note("corrupted")
    assert get_task_info("linear_probe").note("corrupted") == get_task_info("linear_probe").note("clean")
