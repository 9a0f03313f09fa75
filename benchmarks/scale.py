"""Dataset scale: peak memory and time per stage against the number of test images.

Synthetic data, in memory: N test images and a gallery (the training split) of G
images, 8 × 8 px RGB in 4 classes (class colour + noise); a tiny open_clip ViT
(random weights, 8 px input, patch 4, width 32, one layer) whose embedding is D
wide (1,024 by default); V variants at stage pre: hue, then brightness, contrast and
saturation, severities 1–4 each (at most 16).  ``--chunk-mib`` and ``--window-mib`` set
the sweep's chunk of decoded images (plan.CHUNK_BYTES) and its window of embeddings in
flight (plan.WINDOW_BYTES), so that a small test split can span several chunks.
Each N runs in a fresh process, as ``robustpath eval`` runs it: the sweep with the
tasks scored beside it (robustpath.tasks.scoring.TaskScorer, variants released once
scored), then what is left to score after the last forward pass (the calling thread scores
queued variants beside the scoring thread; their number is printed), then the per-sample
export (predictions.csv.gz, every row).  Tasks: retrieval, and the linear probe at a
fixed C = 1 (its cross-validation does not depend on N: benchmarks/probe_scale.py).
``--corruption`` (repeatable) replaces that plan by each named corruption at severities
1..V.  "tail/sweep" is the scoring left after the last forward pass over the sweep's time;
per task, the seconds of ``outcomes`` + ``score`` per variant (median over the corrupted
variants, wherever they ran) are printed below the table.

Prints one row per N: W (the corrupted test sets filled at once), seconds per stage, peak RSS (a thread samples /proc/self/statm
every 10 ms; ru_maxrss agrees), the bound of the README's Performance section (the
process after loading data and model, plus bound_bytes), and
at the end each stage's slope (seconds per 10,000 test images, least squares) and
the ratio of its time per image at the largest and the smallest N (1.0 = linear).

    python benchmarks/scale.py --sizes 10000 30000 100000 --gallery 50000 --variants 1
    python benchmarks/scale.py --sizes 20000 --gallery 2000 --variants 8 --chunk-mib 1 --window-mib 160
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ARCH = "robustpath-bench-scale"
MiB = 1 << 20


WORKSPACE = 512 * MiB  # bounded buffers: bootstrap index blocks, screen and candidate blocks, predict blocks, allocator slack
QUEUED_BYTES = 64 * MiB  # robustpath.tasks.scoring.QUEUED_BYTES: finished variants that may wait beyond `queued`


CORRUPTIONS = ("hue", "brightness", "contrast", "saturation")


def plan_variants(count: int, corruption_names: tuple[str, ...] = ()) -> list:
    """The first ``count`` of hue, brightness, contrast, saturation × severities 1–4 (stage pre);
    with ``corruption_names``, each of them at severities 1..count."""
    from robustpath.variants import Variant

    if corruption_names:
        return [Variant(name, severity, "pre") for name in corruption_names for severity in range(1, count + 1)]
    return [Variant(name, severity, "pre") for name in CORRUPTIONS for severity in range(1, 5)][:count]


class TimedTask:
    """A task whose ``outcomes`` and ``score`` calls are timed (seconds per variant, in call order);
    per thread: after the sweep two threads score variants side by side."""

    def __init__(self, task) -> None:
        self.task = task
        self.seconds: list[float] = []
        self.threads: list[str] = []  # the thread that scored each variant
        self._pending = threading.local()

    def __getattr__(self, name: str):
        return getattr(self.task, name)

    def outcomes(self, *args):
        clock = time.perf_counter()
        try:
            return self.task.outcomes(*args)
        finally:
            self._pending.seconds = time.perf_counter() - clock

    def score(self, outcomes):
        clock = time.perf_counter()
        try:
            return self.task.score(outcomes)
        finally:
            self.seconds.append(self._pending.seconds + time.perf_counter() - clock)
            self.threads.append(threading.current_thread().name)


def in_flight_sets(test: int, dim: int, variants: int, chunk_bytes: int, window_bytes: int, image_bytes: int) -> int:
    """W: the corrupted test sets the sweep fills at once (README, Performance): one when the decoded test
    images fit one chunk, otherwise as many as ``window_bytes`` allow (at least one, at most V)."""
    if test * image_bytes <= chunk_bytes:
        return 1
    return max(1, min(variants, window_bytes // (4 * dim * test)))


def bound_bytes(test: int, gallery: int, dim: int, classes: int = 4, variants: int = 1, queued: int = 2,
                window: int = 1) -> int:
    """The README's peak-memory bound above the process baseline (see Performance in README.md);
    ``window``: W of in_flight_sets."""
    clean = 4 * dim * (test + gallery)  # the clean embeddings of every image
    context = 4 * dim * (test + gallery)  # the tasks' copies: clean training and clean test embeddings
    screen = 4 * dim * gallery  # the float32 unit gallery of the retrieval screen
    probe = 5 * 8 * dim * gallery  # the probe's float64 training features, scaled copies and solver work
    # W filling (or just finished), `queued` waiting or being scored, or more of them within QUEUED_BYTES
    in_flight = window * 4 * dim * test + max(queued * 4 * dim * test, QUEUED_BYTES)
    kept = 8 * 8 * 3 * test if window < variants and 8 * 8 * 3 * test <= 256 * MiB else 0  # decoded between windows
    outcomes = (variants + 1) * test * (8 * (10 + 6 + 3) + 8 * (classes + 3))  # per image and variant
    return clean + context + screen + probe + in_flight + kept + outcomes + WORKSPACE


class PeakMemory:
    """Samples the resident set size every 10 ms; ``peak()`` since the last ``reset()``."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.highest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def current(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.highest = max(self.highest, self.current())
            time.sleep(0.01)

    def reset(self) -> None:
        self.highest = self.current()

    def peak(self) -> int:
        self.highest = max(self.highest, self.current())
        return self.highest


def build_model(folder: Path, dim: int) -> str:
    """A random-weight open_clip model with a ``dim``-wide embedding → its robustpath spec."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    config = {
        "embed_dim": dim,
        "vision_cfg": {"image_size": 8, "layers": 1, "width": 32, "head_width": 32, "patch_size": 4},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "configs" / f"{ARCH}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "configs")
    weights = folder / f"{ARCH}-{dim}.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        model = open_clip.create_model(ARCH, pretrained=None, load_weights=False, pretrained_text=False).eval()
        save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(weights))
    return f"open_clip:{ARCH}@{weights}"


def build_dataset(test: int, gallery: int, classes: int = 4):
    """8 × 8 px images: class colour + uniform noise; the first ``gallery`` images train, the rest test."""
    import numpy as np

    from robustpath.data.dataset import ArrayReader, Dataset

    rng = np.random.default_rng(0)
    count = test + gallery
    labels = rng.integers(0, classes, count)
    colours = rng.integers(40, 216, (classes, 3))
    images = np.clip(colours[labels][:, None, None, :] + rng.integers(-40, 41, (count, 8, 8, 3)), 0, 255)
    return Dataset(
        name=f"synthetic-{test}", classes=tuple(f"class{c}" for c in range(classes)),
        sample_ids=tuple(f"s{i:07d}" for i in range(count)), labels=labels.astype(np.int64),
        splits=np.array(["train"] * gallery + ["test"] * test), paths=(None,) * count, native_size=(8, 8),
        reader=ArrayReader(images.astype(np.uint8)),
    )


def measure(test: int, gallery: int, dim: int, variants: int, folder: Path, chunk_mib: float | None,
            window_mib: float | None, corruption_names: tuple[str, ...] = ()) -> dict:
    """One N in this process → seconds and peak bytes per stage."""
    import torch

    from robustpath.embedding import plan as stream_plan

    if chunk_mib is not None:
        stream_plan.CHUNK_BYTES = int(chunk_mib * MiB)
    if window_mib is not None:
        stream_plan.WINDOW_BYTES = int(window_mib * MiB)

    torch.set_num_threads(1)
    import corruptions
    from robustpath.embedding.engine import compute_embeddings
    from robustpath.output.exports import RunExports, SampleTable
    from robustpath.models import load_encoder
    from robustpath.tasks.outcomes import save_outcomes
    from robustpath.util.progress import SilentProgress
    from robustpath.output.prediction_files import write_predictions
    from robustpath.tasks.scoring import TaskScorer
    from robustpath.tasks import TaskContext
    from robustpath.tasks.linear_probe import LinearProbeTask
    from robustpath.tasks.retrieval import RetrievalTask
    from robustpath.variants import CLEAN_VARIANT

    plan = plan_variants(variants, corruption_names)
    memory, row = PeakMemory(), {"test": test, "gallery": gallery, "dim": dim, "variants": len(plan)}
    clock = time.perf_counter()
    dataset = build_dataset(test, gallery)
    encoder = load_encoder(build_model(folder, dim))
    row["setup_s"], row["setup_peak"] = time.perf_counter() - clock, memory.peak()
    train = dataset.indices("train")
    device = torch.device("cpu")

    def make_context(embeddings):
        return TaskContext(
            train_embeddings=embeddings.clean[train], train_labels=dataset.labels[train],
            test_labels=dataset.labels[embeddings.test_indices], class_names=dataset.classes, seed=0,
            clean_test_embeddings=embeddings.clean[embeddings.test_indices], device=device,
        )

    tasks = {"retrieval": TimedTask(RetrievalTask()), "linear_probe": TimedTask(LinearProbeTask(regularisation=1.0))}
    scorer = TaskScorer(tasks, plan, make_context, release=True)
    memory.reset()
    clock = time.perf_counter()
    embeddings = compute_embeddings(encoder, dataset, plan, preset=corruptions.load_preset("pathology"), seed=0,
                                    device=device, batch_size=4096, on_ready=scorer.ready)
    row["sweep_s"], row["sweep_peak"] = time.perf_counter() - clock, memory.peak()
    clock = time.perf_counter()
    scores = scorer.finish(embeddings, SilentProgress())
    row["after_sweep_s"], row["after_sweep_peak"] = time.perf_counter() - clock, memory.peak()
    row["task_s"] = {key: sorted(task.seconds)[len(task.seconds) // 2] for key, task in tasks.items()}
    row["caller_variants"] = tasks["retrieval"].threads.count(threading.main_thread().name)
    clock = time.perf_counter()
    outcomes = {(key, v.key): scores.outcomes[(key, v.key)] for key in tasks for v in [CLEAN_VARIANT, *plan]}
    save_outcomes(folder / "outcomes.npz", outcomes)
    exports = RunExports(samples=SampleTable.from_dataset(dataset), test_indices=embeddings.test_indices,
                         train_indices=train, variants=[CLEAN_VARIANT, *plan])
    written = write_predictions(exports, outcomes, folder, mode="all", compress=True)
    row["exports_s"], row["exports_peak"] = time.perf_counter() - clock, memory.peak()
    row["predictions_bytes"] = sum(path.stat().st_size for path in written.values())
    row["maxrss"] = _maxrss()
    window = in_flight_sets(test, dim, len(plan), stream_plan.CHUNK_BYTES, getattr(stream_plan, "WINDOW_BYTES", 1 << 30),
                            8 * 8 * 3)
    row["window"] = window
    row["bound"] = row["setup_peak"] + bound_bytes(test, gallery, dim, variants=len(plan), window=window)
    return row


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


STAGES = ("setup", "sweep", "after_sweep", "exports")


def report(rows: list[dict]) -> None:
    print(f"{'N test':>8} {'gallery':>8} {'D':>5} {'V':>2} {'W':>2} " + " ".join(f"{s + ' s':>14}" for s in STAGES)
          + f" {'peak MiB':>9} {'bound MiB':>9} {'tail/sweep':>11} {'pred. MiB':>9}")
    for row in rows:
        peak = max(row["maxrss"], *(row[f"{s}_peak"] for s in STAGES))
        print(f"{row['test']:>8} {row['gallery']:>8} {row['dim']:>5} {row['variants']:>2} {row['window']:>2} "
              + " ".join(f"{row[f'{s}_s']:>14.1f}" for s in STAGES)
              + f" {peak / MiB:>9.0f} {row['bound'] / MiB:>9.0f} {row['after_sweep_s'] / row['sweep_s']:>11.2f}"
              + f" {row['predictions_bytes'] / MiB:>9.1f}")
    for row in rows:
        print(f"{row['test']:>8}: scoring per variant (outcomes + score, median) "
              + ", ".join(f"{key} {seconds:.1f} s" for key, seconds in row["task_s"].items())
              + f"; variants scored by the calling thread after the sweep: {row.get('caller_variants', 0)}")
    if len(rows) < 2:
        return
    import numpy as np

    sizes = np.array([row["test"] for row in rows], dtype=float)
    print("slope per stage (s per 10,000 test images) and (time/N at the largest N) / (time/N at the smallest):")
    for stage in STAGES:
        times = np.array([row[f"{stage}_s"] for row in rows])
        slope = np.polyfit(sizes, times, 1)[0] * 10_000
        ratio = (times[-1] / sizes[-1]) / (times[0] / sizes[0])
        print(f"  {stage:<12} {slope:8.2f} s   {ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--gallery", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--variants", type=int, default=1,
                        help="V variants: hue 1-4, brightness 1-4, contrast 1-4, saturation 1-4 (at most 16)")
    parser.add_argument("--corruption", action="append",
                        help="each named corruption at severities 1..V instead (repeatable)")
    parser.add_argument("--chunk-mib", type=float, help="decoded images per chunk of the sweep (default: the library's)")
    parser.add_argument("--window-mib", type=float, help="embeddings in flight per window (default: the library's)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one N, print JSON
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.gallery, args.dim, args.variants, args.folder, args.chunk_mib,
                                 args.window_mib, tuple(args.corruption or ()))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sorted(args.sizes):
            command = [sys.executable, __file__, "--one", str(size), "--gallery", str(args.gallery), "--dim",
                       str(args.dim), "--variants", str(args.variants), "--folder", folder]
            command += [f"--{name}-mib={value}" for name, value in (("chunk", args.chunk_mib), ("window", args.window_mib))
                        if value is not None]
            command += [option for name in args.corruption or () for option in ("--corruption", name)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(done.stderr[-3000:])
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report(rows)


if __name__ == "__main__":
    main()
