"""Runs under torchrun: sharding, gathering and rank-0-only outputs.

In-process tests run the ranks of one sweep as threads that exchange through a small
stand-in for the process group; the end-to-end test launches two gloo processes with
torchrun on the CPU and compares them with a single-process run of the same command.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fixtures import customvit, one_thread, small_dataset  # noqa: F401  (fixtures)
from typer.testing import CliRunner

import corruptions
from robustpath.embedding import distributed
from robustpath.embedding import engine
from robustpath.cli.main import app
from robustpath.embedding.cache import EmbeddingKeys, EmbeddingStore, StoreChain, sample_digests
from robustpath.errors import DataError
from robustpath.variants import Variant

CPU = torch.device("cpu")
PRESET = corruptions.load_preset("pathology")
VARIANTS = [Variant("markup", 3, "pre"), Variant("gaussian_blur", 2, "pre"), Variant("contrast", 4, "post")]
WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test of this module on one torch thread."""


class ThreadGroup:
    """One rank of a process group whose ranks are threads of this process."""

    def __init__(self, rank: int, world_size: int, meeting: "Meeting") -> None:
        self.rank, self.world_size, self.meeting = rank, world_size, meeting

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, value):
        return self.meeting.exchange(self.rank, value)[0]

    def all_objects(self, value) -> list:
        return self.meeting.exchange(self.rank, value)

    def gather_rows(self, rows, counts):
        blocks = self.meeting.exchange(self.rank, np.array(rows, copy=True))
        assert [len(block) for block in blocks] == counts
        return blocks if self.is_main else None


class Meeting:
    def __init__(self, world_size: int) -> None:
        self.barrier = threading.Barrier(world_size, timeout=120)
        self.slots = [None] * world_size

    def exchange(self, rank: int, value) -> list:
        self.slots[rank] = value
        self.barrier.wait()
        values = list(self.slots)
        self.barrier.wait()
        return values


def run_ranks(world_size: int, work) -> list:
    """``work(group)`` on ``world_size`` threads; each rank's return value (or raised error)."""
    meeting = Meeting(world_size)
    results: list = [None] * world_size

    def body(rank: int) -> None:
        try:
            results[rank] = work(ThreadGroup(rank, world_size, meeting))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[rank] = exc

    threads = [threading.Thread(target=body, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return results


def sweep(encoder, dataset, **options):
    options = {"preset": PRESET, "seed": 0, "device": CPU, "batch_size": 7, **options}
    return engine.compute_embeddings(encoder, dataset, VARIANTS, **options)


def make_keys(encoder, dataset):
    return EmbeddingKeys(
        model={"weights_sha256": "x", "source": "test"}, preprocessing=encoder.preprocessing.as_dict(),
        native_size=tuple(dataset.native_size), digests=sample_digests(dataset), sample_ids=dataset.sample_ids,
        seed=0, versions={"robustpath": "test"}, device="cpu", precision="fp32", compiled=False,
    )


def direct_clean(encoder, dataset) -> np.ndarray:
    """Every image through the model in one forward pass, by hand."""
    prep = encoder.preprocessing
    x = torch.from_numpy(np.stack([dataset.read_image(i) for i in range(len(dataset))])).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        return encoder.encode_image(x).float().numpy()


def test_split_passes_gives_contiguous_blocks_in_stream_order():
    passes = [(0, 16), (16, 32), (48, 64), (64, 70)]  # (32, 48) is served by a store: not in the list
    assert distributed.split_passes(passes, 1) == [(0, 70)]
    assert distributed.split_passes(passes, 2) == [(0, 32), (48, 70)]
    assert distributed.split_passes(passes, 3) == [(0, 16), (16, 32), (48, 70)]
    assert distributed.split_passes(passes, 6) == [(0, 0), (0, 16), (16, 32), (32, 32), (48, 64), (64, 70)]
    assert distributed.split_passes([], 2) == [(0, 0), (0, 0)]


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_sweep_equals_one_process(customvit, small_dataset, world_size):
    """Each rank embeds a share; rank 0 ends with exactly the arrays of a single-process sweep."""
    single = sweep(customvit, small_dataset)
    np.testing.assert_allclose(single.clean, direct_clean(customvit, small_dataset), rtol=0, atol=2e-5)
    results = run_ranks(world_size, lambda group: sweep(customvit, small_dataset, group=group))
    assert not [r for r in results if isinstance(r, BaseException)], results
    main = results[0]
    np.testing.assert_array_equal(main.clean, single.clean)
    np.testing.assert_array_equal(main.test_indices, single.test_indices)
    assert set(main.variants) == set(single.variants)
    for key in single.variants:
        np.testing.assert_array_equal(main.variants[key], single.variants[key], err_msg=key)
    # the work was shared: every rank forwarded some images, together exactly the single-process ones
    own = [result.stats["images_forwarded"] for result in results[1:]]
    assert all(0 < count < single.stats["images_forwarded"] for count in own)
    assert main.stats["images_forwarded"] == single.stats["images_forwarded"] == 30 + 10 * 3
    assert main.stats["forward_passes"] == single.stats["forward_passes"]


def test_rank_0_reuses_its_store_and_stores_what_the_others_computed(customvit, small_dataset, tmp_path):
    from safetensors import safe_open

    keys = make_keys(customvit, small_dataset)
    # the store holds the clean embeddings and one variant, as stored by a run of this plan
    sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path)]), keys=keys)
    for path in tmp_path.rglob("*.safetensors"):
        with safe_open(str(path), framework="np") as handle:
            corruption = json.loads(handle.metadata()["robustpath_key"])["pipeline"]["corruption"]
        if corruption in ("markup", "contrast"):
            path.unlink()

    def rank(group):
        store = StoreChain([EmbeddingStore(tmp_path)]) if group.is_main else None
        return sweep(customvit, small_dataset, group=group, store=store, keys=keys if group.is_main else None)

    main, other = run_ranks(2, rank)
    assert not isinstance(main, BaseException) and not isinstance(other, BaseException), (main, other)
    assert main.reused == {"none/0/none": "cache", "gaussian_blur/2/pre": "cache"}
    # stream (batch 7): clean train 0-19 | clean test 20-29 | markup 30-39 | blur 40-49 | contrast 50-59;
    # as in one process, the passes 28-34, 35-41, 49-55 and 56-59 run, 0-27 and 42-48 are served;
    # rank 0 runs the first two, rank 1 the last two
    assert main.stats["images_forwarded"] == 3 * 7 + 4 and main.stats["forward_passes"] == 4
    assert other.stats["forward_passes"] == 2 and other.stats["images_forwarded"] == 7 + 4
    reference = sweep(customvit, small_dataset)
    for key in reference.variants:
        np.testing.assert_array_equal(main.variants[key], reference.variants[key], err_msg=key)
    # rank 0 stored every entry, including those computed by rank 1: nothing is left to compute
    again = sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path)]), keys=keys)
    assert again.stats["forward_passes"] == 0


def test_a_failing_rank_is_reported_on_every_rank():
    def work(group, failing: int | None):
        with distributed.settled(group):
            if group.rank == failing:
                raise DataError("image 7 is truncated")
        return "finished"

    main, failed, fine = run_ranks(3, lambda group: work(group, failing=1))
    assert isinstance(failed, DataError)
    for other in (main, fine):
        assert isinstance(other, distributed.DistributedError)
        assert str(other) == "rank 1 of 3 failed: DataError: image 7 is truncated"
    assert run_ranks(3, lambda group: work(group, failing=None)) == ["finished"] * 3


def test_outside_torchrun_nothing_is_initialised(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.join(CPU) == (None, CPU)
    assert distributed.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert distributed.join(CPU) == (None, CPU)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


COLLECTIVES = """
import json, sys
import numpy as np
import torch
from robustpath.embedding import distributed
from robustpath.errors import DataError

group, device = distributed.join(torch.device("cpu"))
counts = [5, 3]
rows = np.arange(counts[group.rank] * 4, dtype=np.float32).reshape(-1, 4) + 100 * group.rank
blocks = group.gather_rows(rows, counts, block_bytes=2 * 4 * 4)  # two rows per round: three rounds
plan = group.broadcast({"from": group.rank})
try:
    with distributed.settled(group):
        if group.rank == 1:
            raise DataError("image 7 is truncated")
    outcome = "no error"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
facts = {"rank": group.rank, "world_size": group.world_size, "backend": group.backend, "plan": plan,
         "outcome": outcome, "blocks": None if blocks is None else [b.tolist() for b in blocks]}
with open(f"{sys.argv[1]}/rank{group.rank}.json", "w") as handle:
    json.dump(facts, handle)
distributed.leave()
"""


def torchrun_env(tmp_path: Path) -> dict:
    env = {
        **os.environ, "PYTHONPATH": os.pathsep.join([str(WORKTREE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ROBUSTPATH_CACHE_DIR": str(tmp_path / "cache"),
    }
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port())]


def test_gloo_collectives_of_the_group(tmp_path):
    """Real gloo: rows gathered in rounds, rank 0's broadcast, an error on rank 1 reported on rank 0."""
    script = tmp_path / "collectives.py"
    script.write_text(COLLECTIVES)
    port = str(free_port())
    ranks = [  # started the way torchrun starts its workers
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True,
            env={**torchrun_env(tmp_path), "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
        )
        for rank in range(2)
    ]
    for process in ranks:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors[-3000:]
    main = json.loads((tmp_path / "rank0.json").read_text())
    other = json.loads((tmp_path / "rank1.json").read_text())
    assert (main["world_size"], main["backend"]) == (2, "gloo")
    expected = [[[4 * i + j for j in range(4)] for i in range(5)], [[100 + 4 * i + j for j in range(4)] for i in range(3)]]
    assert main["blocks"] == expected and other["blocks"] is None
    assert main["plan"] == other["plan"] == {"from": 0}
    assert main["outcome"] == "DistributedError: rank 1 of 2 failed: DataError: image 7 is truncated"
    assert other["outcome"] == "DataError: image 7 is truncated"


def test_torchrun_with_two_gloo_processes_equals_one_process(tiny_customvit_dir, tmp_path, monkeypatch):
    """Two gloo processes under torchrun against the same command in one process (run here, one thread)."""
    env = torchrun_env(tmp_path)
    command = ["eval", "--model", str(tiny_customvit_dir), "-c", "markup", "-c", "gaussian_blur", "-s", "1",
               "-t", "retrieval", "-t", "embedding_drift", "-b", "16", "--device", "cpu", "--no-cache", "--quiet",
               "--out", "OUT"]  # batch 16: 40 forward passes, 20 per rank, segments cut between the ranks
    (tmp_path / "d").mkdir()
    (tmp_path / "s").mkdir()
    two = subprocess.run([*torchrun(2), "-m", "robustpath", *command], check=False, cwd=tmp_path / "d", env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    monkeypatch.chdir(tmp_path / "s")
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", env["ROBUSTPATH_CACHE_DIR"])
    one = CliRunner().invoke(app, command)
    assert one.exit_code == 0, one.output

    # one set of outputs, written once: the same files, nothing else in the working folder, no cache
    assert files_under(tmp_path / "d") == files_under(tmp_path / "s")
    assert not (tmp_path / "cache").exists()
    assert two.stderr.count("Wrote ") == 1 and two.stdout.count("retrieval · top1_accuracy") == 1

    import pandas as pd

    distributed_table = pd.read_csv(tmp_path / "d" / "OUT" / "results.csv").drop(columns="run_id")
    single_table = pd.read_csv(tmp_path / "s" / "OUT" / "results.csv").drop(columns="run_id")
    pd.testing.assert_frame_equal(distributed_table, single_table, check_exact=False, rtol=0, atol=1e-6)
    with np.load(tmp_path / "d" / "OUT" / "outcomes.npz") as a, np.load(tmp_path / "s" / "OUT" / "outcomes.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    record = json.loads((tmp_path / "d" / "OUT" / "run.json").read_text())
    single_record = json.loads((tmp_path / "s" / "OUT" / "run.json").read_text())
    assert record["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert "distributed" not in single_record
    for fact in ("forward_passes", "images_forwarded", "images_planned"):
        assert record["embedding"][fact] == single_record["embedding"][fact]


def test_deterministic_run_on_another_rank_returns_none(monkeypatch):
    """Ranks other than 0 get None from the evaluation, with --deterministic too."""
    from robustpath.run import runner
    from robustpath.spec.run_spec import RunSpec

    monkeypatch.setattr(runner, "_run_evaluation", lambda spec, progress, folders: None)
    assert runner.run_evaluation(RunSpec(model="customvit-demo", data="demo-ihc", deterministic=True)) is None
