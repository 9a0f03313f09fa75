"""The linear probe across groups: trained in one group, tested in another (PathoROB's APD idea).

For every group A whose training split holds at least two classes, the project's
linear probe (robustpath.tasks.linear_probe: standardised clean embeddings, C by
cross-validation) is trained on A's clean training embeddings only and predicts the
clean test images of every group B.  Per test image of B: correct(A->B) = 1 when
the probe trained on A gets it right.  accuracy(A->B) is their mean; the
within-group reference is accuracy(B->B), the probe trained and tested in B; the
accuracy drop of A->B is accuracy(A->B) − accuracy(B->B) on the same test images
of B (paired bootstrap).  A probe that generalises across centres, scanners or
stains drops by about 0; PathoROB's average performance drop (APD) is the mean of
such drops relative to the within-group accuracy.
"""
from __future__ import annotations

import numpy as np

from robustpath.tasks.chance import no_chance_level
from robustpath.tasks.registry import MetricInfo, TaskInfo, register_task

INFO = register_task(TaskInfo(
    name="group_probe", order=130, group_shift=True,
    description="the linear probe trained in one group and tested in another",
    metrics=(MetricInfo("accuracy"), MetricInfo("accuracy_drop")), primary="accuracy", chance=no_chance_level,
    definitions=(
        "- **Group probe**: the linear probe trained on group A's clean training images, tested on group B's test\n"
        "  images; the drop is accuracy(A→B) − accuracy(B→B) on the same images (paired bootstrap, 95% interval).",
    ),
))


def probe_transfer(
    embeddings: np.ndarray, labels: np.ndarray, groups: np.ndarray, splits: np.ndarray,
    class_names: tuple[str, ...], seed: int,
) -> tuple[dict[tuple[str, str], dict], list[str]]:
    """(N, D) clean embeddings, (N,) labels, groups, splits → ((A, B) → {"images": (n_B,) test image
    indices of B, "correct": (n_B,) float 0/1} for every training group A (A = B included), notes)."""
    from robustpath.tasks.base import TaskContext
    from robustpath.tasks.linear_probe import LinearProbeTask

    labels, groups, splits = np.asarray(labels), np.asarray(groups), np.asarray(splits)
    names = sorted(set(groups.tolist()))
    test_images = {b: np.flatnonzero((groups == b) & (splits == "test")) for b in names}
    results, notes = {}, []
    for a in names:
        train = np.flatnonzero((groups == a) & (splits == "train"))
        if len(np.unique(labels[train])) < 2:
            notes.append(f"Group probe: group '{a}' has fewer than 2 classes in its training split; no probe is trained on it.")
            continue
        probe = LinearProbeTask()
        probe.fit(TaskContext(
            train_embeddings=embeddings[train], train_labels=labels[train], test_labels=labels[train],
            class_names=class_names, seed=seed,
        ))
        for b in names:
            images = test_images[b]
            if not len(images):
                continue
            predicted = np.asarray(probe.predict(embeddings[images]), dtype=np.int64)
            results[(a, b)] = {"images": images, "correct": (predicted == labels[images]).astype(float)}
    return results, notes
