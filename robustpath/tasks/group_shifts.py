"""Real shifts between groups, measured on the embeddings a run already made → results rows.

When the dataset names a group for every image (robustpath.data.groups), a run adds
these tasks to the results table (clean embeddings of the whole dataset, and the
corrupted test embeddings of the sweep for shift_distance):

| task | metric | corruption column |
|---|---|---|
| cross_group_retrieval | top1_accuracy, top10_accuracy (needs pair ids) | group:A->B, group:mean |
| robustness_index | robustness_index | group:all |
| group_probe | accuracy | group:A->B (A ≠ B: trained in A, tested in B), group:B->B (within B), group:within, group:mean |
| group_probe | accuracy_drop | group:A->B, group:mean (accuracy(A->B) − accuracy(B->B), paired) |
| shift_distance | embedding_distance | group:A->B (A < B), and each corruption / severity / stage |

Convention: in these tasks the corruption column names the shift.  "group:A->B" is
the ordered pair of groups A and B (A the queries, or the probe's training group;
B the gallery, or the test group), "group:mean" the mean over the ordered pairs
A ≠ B, "group:within" the mean over the within-group cells, "group:all" a measure
over all groups at once; severity is 0 and stage "none" on these rows.
shift_distance also has rows for the synthetic corruptions, in the usual columns.
Intervals: 95% bootstrap over pairs (one tissue in every group resampled as one
unit; images without a pair are units of their own; robustpath.tasks.group_bootstrap).
Definitions: group_neighbours, group_probe, shift_distance in this package.
"""
from __future__ import annotations

import numpy as np

from robustpath.variants import Variant

GROUP_PREFIX = "group:"
MEAN, WITHIN, ALL = "group:mean", "group:within", "group:all"


def group_tasks() -> tuple[str, ...]:
    """The group-shift tasks (robustpath.tasks.registry: group_shift), in report order."""
    from robustpath.tasks.registry import list_task_infos

    return tuple(info.name for info in list_task_infos(group_shift=True))


def pair_label(a: str, b: str) -> str:
    """The corruption-column name of the ordered group pair (a, b): 'group:a->b'."""
    return f"{GROUP_PREFIX}{a}->{b}"


def resampling_units(pair_ids: np.ndarray | None, count: int) -> np.ndarray:
    """(N,) int64 unit per image: one per pair_id, one per image without a pair."""
    if pair_ids is None:
        return np.arange(count, dtype=np.int64)
    keys = [f"pair\0{pair}" if pair else f"image\0{index}" for index, pair in enumerate(np.asarray(pair_ids).tolist())]
    return np.unique(np.array(keys), return_inverse=True)[1].astype(np.int64)


def _shift(name: str) -> Variant:
    return Variant(name, 0, "none")


def _prefixed(values: dict, names: dict[str, str]) -> dict:
    """Cell names → corruption labels ('mean' → 'group:mean', 'a->b' via ``names``)."""
    return {(MEAN if key == "mean" else names[key]): value for key, value in values.items()}


def identity_values(embeddings, dataset, units, seed, resamples) -> dict:
    """cross_group_retrieval: corruption label → {metric: MetricValue}."""
    from robustpath.tasks.group_bootstrap import score_cells
    from robustpath.tasks.group_neighbours import IDENTITY_K, cross_group_identity

    found = cross_group_identity(embeddings, dataset.groups, dataset.pair_ids)
    names = {f"{a}->{b}": pair_label(a, b) for a, b in found}
    rows: dict[str, dict] = {}
    for k in IDENTITY_K:
        cells = {f"{a}->{b}": (cell["rank_hits"][k], units[cell["queries"]]) for (a, b), cell in found.items()}
        values, _ = score_cells(cells, seed, resamples)
        for label, value in _prefixed(values, names).items():
            rows.setdefault(label, {})[f"top{k}_accuracy"] = value
    return rows


def robustness_index_values(embeddings, dataset, units, seed, resamples) -> dict:
    """robustness_index: {'group:all': {'robustness_index': MetricValue}}."""
    from robustpath.tasks.group_bootstrap import ratio_of_sums
    from robustpath.tasks.group_neighbours import RI_K, robustness_index_counts

    so, os_ = robustness_index_counts(embeddings, dataset.labels, dataset.groups, dataset.pair_ids, RI_K)
    return {ALL: {"robustness_index": ratio_of_sums(so, so + os_, units, seed, resamples)}}


def probe_values(embeddings, dataset, units, seed, resamples) -> tuple[dict, list[str]]:
    """group_probe: corruption label → {"accuracy": …, "accuracy_drop": …}, and notes."""
    from robustpath.tasks.group_bootstrap import score_cells
    from robustpath.tasks.group_probe import probe_transfer

    found, notes = probe_transfer(embeddings, dataset.labels, dataset.groups, dataset.splits, dataset.classes, seed)
    within = {b: cell for (a, b), cell in found.items() if a == b}
    cross = {f"{a}->{b}": (cell["correct"], units[cell["images"]]) for (a, b), cell in found.items() if a != b and b in within}
    reference = {f"{a}->{b}": within[b]["correct"] for (a, b), cell in found.items() if a != b and b in within}
    names = {key: pair_label(*key.split("->", 1)) for key in cross}
    values, drops = score_cells(cross, seed, resamples, reference)
    rows: dict[str, dict] = {label: {"accuracy": value} for label, value in _prefixed(values, names).items()}
    for label, value in _prefixed(drops, names).items():
        rows[label]["accuracy_drop"] = value
    rows.update(_within_group_rows(within, units, seed, resamples))
    return rows, notes


def _within_group_rows(within: dict, units, seed, resamples) -> dict:
    """group_probe's within-group cells: 'group:B->B' → {"accuracy": …}, their mean as 'group:within'."""
    from robustpath.tasks.group_bootstrap import score_cells

    own = {f"{b}->{b}": (cell["correct"], units[cell["images"]]) for b, cell in within.items()}
    own_values, _ = score_cells(own, seed, resamples)
    own_names = {key: pair_label(*key.split("->", 1)) for key in own}
    return {(WITHIN if label == MEAN else label): {"accuracy": value}
            for label, value in _prefixed(own_values, own_names).items()}


def distance_values(embeddings, dataset, units, seed, resamples, variants, corrupted: dict, test: np.ndarray) -> dict:
    """shift_distance: Variant → {'embedding_distance': MetricValue} for group pairs and corruptions.
    corrupted: variant key → (len(test), D) embeddings of the test images ``test`` (indices), in that order."""
    from robustpath.tasks.metrics import MetricValue
    from robustpath.tasks.group_bootstrap import score_cells
    from robustpath.tasks.shift_distance import corruption_distances, group_pair_distances

    train = dataset.indices("train")
    centre = embeddings[train].astype(np.float64).mean(axis=0)
    paired = dataset.pair_ids is not None and any(dataset.pair_ids[test])
    rows = {}
    for (a, b), cell in group_pair_distances(embeddings, dataset.labels, dataset.groups, dataset.pair_ids, test, centre).items():
        if cell["images"] is None:  # class centroids: no interval
            rows[_shift(pair_label(a, b))] = {"embedding_distance": MetricValue(float(cell["distances"].mean()), float("nan"),
                                                                                float("nan"), len(cell["distances"]))}
        else:
            values, _ = score_cells({"shift": (cell["distances"], units[cell["images"]])}, seed, resamples)
            rows[_shift(pair_label(a, b))] = {"embedding_distance": values["shift"]}
    for variant in variants:
        distances = corruption_distances(embeddings[test], corrupted[variant.key], dataset.labels[test], centre, paired)
        if paired:
            values, _ = score_cells({"shift": (distances, units[test])}, seed, resamples)
            rows[variant] = {"embedding_distance": values["shift"]}
        else:
            rows[variant] = {"embedding_distance": MetricValue(float(distances.mean()), float("nan"), float("nan"), len(distances))}
    return rows


def evaluate_group_shifts(dataset, embeddings, variants, *, seed: int, resamples: int, progress=None) -> tuple[dict, dict]:
    """Every group-shift task on a run's embeddings (robustpath.engine.Embeddings).

    Returns ({task: {Variant: {metric: MetricValue}}}, record for run.json: groups,
    definitions, notes).  cross_group_retrieval needs pair ids; the others run
    whenever the dataset has groups.
    """
    from robustpath.data.groups import describe_groups
    from robustpath.util.progress import SilentProgress
    from robustpath.tasks.group_neighbours import IDENTITY_K, RI_K

    progress = progress or SilentProgress()
    clean = embeddings.clean
    units = resampling_units(dataset.pair_ids, len(dataset))
    steps = [("robustness_index", lambda: robustness_index_values(clean, dataset, units, seed, resamples))]
    if dataset.pair_ids is not None and any(dataset.pair_ids):
        steps.insert(0, ("cross_group_retrieval", lambda: identity_values(clean, dataset, units, seed, resamples)))
    notes: list[str] = []

    def probe():
        rows, probe_notes = probe_values(clean, dataset, units, seed, resamples)
        notes.extend(probe_notes)
        return rows

    steps.append(("group_probe", probe))
    steps.append(("shift_distance", lambda: distance_values(
        clean, dataset, units, seed, resamples, variants, embeddings.variants, embeddings.test_indices)))
    results: dict = {}
    progress.start("groups", "Group shifts", len(steps))
    for task, compute in steps:
        values = compute()
        results[task] = {key if isinstance(key, Variant) else _shift(key): metrics for key, metrics in values.items()}
        progress.advance("groups")
    progress.finish("groups")
    if "cross_group_retrieval" not in results:
        notes.append("Cross-group identity retrieval skipped: the data has no pair_id (the same tissue in several groups).")
    record = {
        **describe_groups(dataset.groups, dataset.pair_ids, dataset.splits),
        "tasks": list(results),
        "identity_top_k": list(IDENTITY_K),
        "robustness_index_k": RI_K,
        "images": "clean embeddings of both splits (cross_group_retrieval, robustness_index); group_probe trains on "
                  "each group's training split and tests on every group's test split; shift_distance uses the test split",
        "intervals": "95% bootstrap over pairs (a tissue in every group is one unit)",
        "notes": notes,
    }
    return results, record
