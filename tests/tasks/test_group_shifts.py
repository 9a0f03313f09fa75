"""Group-shift measures against hand computations on constructed embeddings."""
import numpy as np
import pytest

from robustpath.tasks.metrics import bootstrap_indices
from robustpath.tasks.group_bootstrap import ratio_of_sums, score_cells
from robustpath.tasks.group_neighbours import cross_group_identity, robustness_index_counts
from robustpath.tasks.group_probe import probe_transfer
from robustpath.tasks.group_summary import average_ranks, spearman_rho


def _unit(angle_degrees: float) -> list[float]:
    angle = np.radians(angle_degrees)
    return [np.cos(angle), np.sin(angle)]


def test_cross_group_identity_ranks_by_hand():
    # Group A: tissues p0, p1, p2 at 0°, 40°, 80°. Group B holds the same tissues turned by +25°
    # (p0 at 25°, p1 at 65°, p2 at 105°) and an unpaired image at 5°.
    embeddings = np.array([_unit(0), _unit(40), _unit(80), _unit(25), _unit(65), _unit(105), _unit(5)], np.float32)
    groups = np.array(["A", "A", "A", "B", "B", "B", "B"])
    pairs = np.array(["p0", "p1", "p2", "p0", "p1", "p2", ""])
    found = cross_group_identity(embeddings, groups, pairs, k_values=(1, 2))
    a_to_b = found[("A", "B")]
    assert a_to_b["queries"].tolist() == [0, 1, 2]
    # p0 (0°): B at 5° (unpaired, 5° away) comes before its own tissue at 25° → rank 2.
    # p1 (40°): 25° (15° away) before 65° (25° away) → rank 2.  p2 (80°): 65° (15°) before 105° (25°) → rank 2.
    assert a_to_b["rank_hits"][1].tolist() == [0.0, 0.0, 0.0]
    assert a_to_b["rank_hits"][2].tolist() == [1.0, 1.0, 1.0]
    b_to_a = found[("B", "A")]  # the unpaired image queries nothing
    assert b_to_a["queries"].tolist() == [3, 4, 5]
    # p0 at 25°: 40° (15°) before its 0° (25°) → rank 2; p1 at 65°: 80° (15°) before its 40° → rank 2;
    # p2 at 105°: its own 80° (25°) is the nearest → rank 1.
    assert b_to_a["rank_hits"][1].tolist() == [0.0, 0.0, 1.0]
    assert b_to_a["rank_hits"][2].tolist() == [1.0, 1.0, 1.0]


def test_identity_ties_go_to_the_lower_gallery_index():
    # The query's own tissue and another image of B point the same way: the lower index wins rank 1.
    embeddings = np.array([[1, 0], [2, 0], [4, 0]], np.float32)  # query, B image (index 1), B own tissue (index 2)
    found = cross_group_identity(embeddings, np.array(["A", "B", "B"]), np.array(["t", "u", "t"]), k_values=(1, 2))
    assert found[("A", "B")]["rank_hits"][1].tolist() == [0.0]
    assert found[("A", "B")]["rank_hits"][2].tolist() == [1.0]


def test_robustness_index_small_case_by_hand():
    # Six images on a circle; classes x/y, groups g/h.  k = 2, no pairs.
    angles = [0, 10, 30, 100, 110, 130]
    embeddings = np.array([_unit(a) for a in angles], np.float32)
    labels = np.array([0, 0, 1, 1, 0, 1])
    groups = np.array(["g", "h", "g", "h", "g", "h"])
    so, os_ = robustness_index_counts(embeddings, labels, groups, None, k=2)
    # Neighbours (2 nearest, by angle):
    # 0°: 10° (x,h: SO), 30° (y,g: OS)          → SO 1, OS 1
    # 10°: 0° (x,g: SO), 30° (y,g: OO)          → SO 1, OS 0
    # 30°: 10° (x,h: OO), 0° (x,g: OS)           → SO 0, OS 1
    # 100°: 110° (x,g: OO), 130° (y,h: SS)       → SO 0, OS 0
    # 110°: 100° (y,h: OO), 130° (y,h: OO)       → SO 0, OS 0
    # 130°: 110° (x,g: OO), 100° (y,h: SS)       → SO 0, OS 0
    assert so.tolist() == [1, 1, 0, 0, 0, 0]
    assert os_.tolist() == [1, 0, 1, 0, 0, 0]
    value = ratio_of_sums(so, so + os_, np.arange(6), seed=0, resamples=200)
    assert value.value == pytest.approx(2 / 4)


def test_robustness_index_leaves_out_the_images_own_tissue():
    # Image 0 and 1 are one tissue in two groups (pair t); without the pair rule 1 would be image 0's SO neighbour.
    embeddings = np.array([_unit(0), _unit(1), _unit(20), _unit(40)], np.float32)
    labels = np.array([0, 0, 0, 1])
    groups = np.array(["g", "h", "h", "g"])
    pairs = np.array(["t", "t", "", ""])
    so, os_ = robustness_index_counts(embeddings, labels, groups, pairs, k=1)
    assert (so[0], os_[0]) == (1, 0)  # its first neighbour after image 1 is image 2 (same class, other group)
    so_unpaired, _ = robustness_index_counts(embeddings, labels, groups, None, k=1)
    assert so_unpaired[0] == 1  # image 1 itself (also SO): same count, different neighbour
    _, os_far = robustness_index_counts(embeddings, labels, groups, pairs, k=3)
    assert os_far[0] == 1  # 20° (SO), 40° (other class, same group: OS); image 1 never counted


def test_score_cells_matches_a_resampling_loop():
    rng = np.random.default_rng(3)
    values_ab, values_ba = rng.random(6), rng.random(6)
    units = np.array([10, 11, 12, 13, 14, 15])  # the same six tissues in both cells
    reference = rng.random(6)
    cells = {"a->b": (values_ab, units), "b->a": (values_ba, units)}
    values, differences = score_cells(cells, seed=5, resamples=300, reference={"a->b": reference, "b->a": reference})
    assert values["a->b"].value == pytest.approx(values_ab.mean())
    assert values["mean"].value == pytest.approx((values_ab.mean() + values_ba.mean()) / 2)
    draws = bootstrap_indices(6, 5, 300)  # units renumbered 0..5 in sorted order
    means = np.array([(values_ab[d].mean() + values_ba[d].mean()) / 2 for d in draws])
    assert (values["mean"].ci_low, values["mean"].ci_high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    drops = np.array([values_ab[d].mean() - reference[d].mean() for d in draws])
    assert differences["a->b"].value == pytest.approx(values_ab.mean() - reference.mean())
    assert (differences["a->b"].ci_low, differences["a->b"].ci_high) == pytest.approx(tuple(np.percentile(drops, [2.5, 97.5])))
    far = min((drops <= 0).sum(), (drops >= 0).sum())
    assert differences["a->b"].drop_p_value == pytest.approx(min(1.0, 2 * (1 + far) / 301))


def _probe_data(shift: float):
    """Two classes along x in groups A and B; B moved by ``shift`` along x (a stain or scanner offset)."""
    rng = np.random.default_rng(0)
    rows, labels, groups, splits = [], [], [], []
    for group, offset in (("A", 0.0), ("B", shift)):
        for label, centre in ((0, -1.0), (1, 1.0)):
            for index in range(40):
                rows.append([centre + offset + 0.3 * rng.standard_normal(), rng.standard_normal()])
                labels.append(label)
                groups.append(group)
                splits.append("test" if index % 4 == 0 else "train")
    return np.array(rows, np.float32), np.array(labels), np.array(groups), np.array(splits)


def test_probe_transfer_drops_under_a_shift_and_not_without():
    shifted = probe_transfer(*_probe_data(3.0), ("x", "y"), seed=0)[0]
    within = shifted[("B", "B")]["correct"].mean()
    across = shifted[("A", "B")]["correct"].mean()
    assert within >= 0.9 and across <= 0.6  # trained on A, B's class-0 images sit where A had class 1
    same = probe_transfer(*_probe_data(0.0), ("x", "y"), seed=0)[0]
    assert abs(same[("A", "B")]["correct"].mean() - same[("B", "B")]["correct"].mean()) <= 0.1


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    for size in (3, 5, 12):
        x, y = rng.integers(0, 4, size).astype(float), rng.random(size)  # ties in x
        if len(set(x)) > 1:
            assert spearman_rho(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert average_ranks(np.array([2.0, 1.0, 2.0])).tolist() == [2.5, 1.0, 2.5]
    assert np.isnan(spearman_rho(np.ones(4), np.arange(4.0)))


def test_shift_correlation_across_models_matches_scipy():
    from scipy.stats import spearmanr

    from robustpath.tasks.metrics import MetricValue
    from robustpath.results.table import build_results_table, metric_rows
    from robustpath.tasks.group_summary import shift_correlation_table
    from robustpath.variants import Variant

    probe_clean, probe_blurred = [0.9, 0.8, 0.95, 0.7], [0.6, 0.7, 0.5, 0.65]
    within, across = [0.9, 0.85, 0.9, 0.8], [0.5, 0.8, 0.45, 0.7]
    rows = []
    for index in range(4):
        model = f"model-{index}"

        def add(task, metric, variant, value):
            rows.extend(metric_rows(f"run{index}", model, "labs", task, variant, {metric: MetricValue(value, value, value, 10)}))

        add("linear_probe", "accuracy", Variant("none", 0, "none"), probe_clean[index])
        add("linear_probe", "accuracy", Variant("gaussian_blur", 2, "pre"), probe_blurred[index])
        add("group_probe", "accuracy", Variant("group:mean", 0, "none"), across[index])
        add("group_probe", "accuracy", Variant("group:within", 0, "none"), within[index])
    table = build_results_table(rows)
    correlation = shift_correlation_table(table)
    row = correlation[(correlation.synthetic_measure == "probe_retention")
                      & (correlation.real_measure == "group_probe_retention")].iloc[0]
    synthetic = np.array(probe_blurred) / np.array(probe_clean)
    real = np.array(across) / np.array(within)
    assert row.models == 4 and row.spearman_rho == pytest.approx(spearmanr(synthetic, real).statistic)
    few = shift_correlation_table(table[~table.model.isin(["model-2", "model-3"])])
    assert few.spearman_rho.isna().all() and set(few.models) == {2}  # fewer than 3 models: undefined


def test_robustness_index_agrees_with_croma_where_installed():
    """croma (PyPI, optional, not a dependency): RI at a fixed k, its group_id column set to the pair."""
    croma = pytest.importorskip("croma")
    import pandas as pd

    rng = np.random.default_rng(0)
    labels, groups = rng.integers(0, 2, 60), np.array([f"c{g}" for g in rng.integers(0, 3, 60)])
    features = (rng.standard_normal((60, 8)) + labels[:, None] * 0.8 + (groups == "c1")[:, None] * 0.6).astype(np.float32)
    pairs = np.array([f"p{i // 2}" for i in range(60)])
    ids = [f"s{i}" for i in range(60)]
    manifest = pd.DataFrame({"sample_id": ids, "image_path": ids, "label": labels.astype(str), "group_id": pairs,
                             "centre": groups})
    for k in (3, 10):
        so, os_ = robustness_index_counts(features, labels, groups, pairs, k)
        expected = croma.RI.compute_curve(features, manifest, confounder_column="centre", k_values=[k])[k]
        assert so.sum() / (so.sum() + os_.sum()) == pytest.approx(expected)


def test_score_cells_without_images_gives_nothing():
    assert score_cells({"a->b": (np.zeros(0), np.zeros(0, np.int64))}, seed=0, resamples=50) == ({}, {})
