"""Shared helpers for tests that run the sweep engine: one torch thread, a small dataset, a tiny CustomViT."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from robustpath.data import load_dataset
from robustpath.data.dataset import ArrayReader, Dataset
from robustpath.models import load_encoder
from robustpath.tasks import TaskContext


@contextmanager
def torch_threads(count: int = 1):
    """Tiny models run faster on one thread and are not slowed down by other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a whole module (request it from an autouse fixture there)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def small_dataset():
    """30 demo-ihc patches (40 px), every third one in the test split."""
    demo = load_dataset("demo-ihc")
    keep = np.arange(0, 120, 4)
    return Dataset(
        name="small", classes=demo.classes, sample_ids=tuple(demo.sample_ids[i] for i in keep),
        labels=demo.labels[keep], splits=np.array(["test" if k % 3 == 0 else "train" for k in range(len(keep))]),
        paths=(None,) * len(keep), native_size=demo.native_size,
        reader=ArrayReader(np.stack([demo.read_image(int(i)) for i in keep])),
    )


@pytest.fixture(scope="module")
def customvit(tiny_customvit_dir):
    return load_encoder(f"customvit:{tiny_customvit_dir}")


def cli(*args):
    """The robustpath command line in-process; a traceback in its output fails the test."""
    from typer.testing import CliRunner

    from robustpath.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def context_of(dataset):
    """make_context for TaskScorer: the TaskContext of the clean embeddings of ``dataset``."""
    train = dataset.indices("train")

    def make_context(embeddings):
        return TaskContext(
            train_embeddings=embeddings.clean[train], train_labels=dataset.labels[train],
            test_labels=dataset.labels[embeddings.test_indices], class_names=dataset.classes, seed=0,
            clean_test_embeddings=embeddings.clean[embeddings.test_indices],
        )

    return make_context
