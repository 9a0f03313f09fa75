"""How close is `robustpath eval` to the bare forward passes, and how much faster than a reference?

Prints, for each workload (see benchmarks/_workloads.py), medians over ``--repeats`` runs
(wall-clock and process CPU time):

(a) e2e        robustpath's run_evaluation + output files, in-process, no embedding cache;
(b) forward    the bare forward passes on preprocessed tensors at the same batch size:
               for the images the engine actually forwarded (``actual``) and for the
               nominal sweep, N + N_test × variants (``nominal``; W1 differs because the
               engine computes pre = post once when the model input is the native size);
(c) reference  an imagecorruptions-style pipeline (benchmarks/_reference_pipeline.py):
               per-image NumPy/PIL corruptions, torchvision transforms, one DataLoader
               pass per variant, over the whole dataset (``per-variant-dataset``) or the
               test images only (``test-only``);

then the ratios e2e / forward and reference / e2e, and, in subprocesses, peak RSS
(VmHWM) of e2e runs on N and 4N images and `robustpath --help` time.
Measures are interleaved (one of each per repeat) so that load from other
processes affects them alike.

    python benchmarks/sweep_speed.py                  # everything (about 25 min on 2 CPU cores)
    python benchmarks/sweep_speed.py --workloads W2 --repeats 3 --no-reference --no-memory
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASKS = ("linear_probe", "retrieval")


def make_spec(workload, out: Path, batch_size: int, device: str, cache_dir: Path, **extra):
    from robustpath.spec.run_spec import RunSpec

    fields = {f.name for f in dataclasses.fields(RunSpec)}
    options = {"no_cache": True} if "no_cache" in fields else {}
    os.environ["ROBUSTPATH_CACHE_DIR"] = str(cache_dir)  # a fresh empty cache when --no-cache does not exist yet
    return RunSpec(model=workload.model, data=workload.data, tasks=TASKS, device=device, batch_size=batch_size,
                   out=out, **options, **extra)


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def run_e2e(workload, batch_size: int, device: str, scratch: Path, **extra) -> tuple[float, float, dict]:
    """One e2e run; the record gets ``benchmark``: time inside the encoder's forward passes, and writing outputs.

    Timing the forward passes inside the run itself gives an overhead figure that load
    from other processes affects alike (both parts are measured at the same moments).
    """
    from robustpath.embedding import engine
    from robustpath.run.runner import run_evaluation
    from robustpath.output.report.files import write_run_outputs

    out = Path(tempfile.mkdtemp(prefix="e2e-", dir=scratch))
    spec = make_spec(workload, out, batch_size, device, Path(tempfile.mkdtemp(prefix="cache-", dir=scratch)), **extra)
    inside = {"wall": 0.0, "cpu": 0.0, "write": 0.0}
    forward = engine._Forward.__call__

    def timed_forward(self, x):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return forward(self, x)
        finally:
            inside["wall"] += time.perf_counter() - wall
            inside["cpu"] += time.process_time() - cpu

    def go():
        result = run_evaluation(spec)
        started = time.perf_counter()
        write_run_outputs(result, out)
        inside["write"] = time.perf_counter() - started
        return result.record

    engine._Forward.__call__ = timed_forward
    try:
        wall, cpu, record = timed(go)
    finally:
        engine._Forward.__call__ = forward
    record["benchmark"] = inside
    return wall, cpu, record


def run_forward_only(workload, images: int, batch_size: int, device: str) -> tuple[float, float]:
    """Bare encode_image on preprocessed tensors: images // batch_size full passes + the rest."""
    import torch

    from robustpath.util.device import autocast_dtype, resolve_device
    from robustpath.models import load_encoder

    torch_device = resolve_device(device)
    encoder = load_encoder(workload.model).to(torch_device)
    height, width = encoder.preprocessing.input_size
    generator = torch.Generator().manual_seed(0)
    full = torch.randn(batch_size, 3, height, width, generator=generator).to(torch_device)
    rest = full[: images % batch_size]
    if torch_device.type == "cuda":
        full = full.contiguous(memory_format=torch.channels_last)
        rest = rest.contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(torch_device)
    autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)

    def go():
        with torch.inference_mode(), autocast:
            for _ in range(images // batch_size):
                encoder.encode_image(full).float().cpu()
            if len(rest):
                encoder.encode_image(rest).float().cpu()
        if torch_device.type == "cuda":
            torch.cuda.synchronize()

    wall, cpu, _ = timed(go)
    return wall, cpu


def run_reference(workload, batch_size: int, device: str, mode: str) -> tuple[float, float, dict]:
    from _reference_pipeline import run_reference as reference

    from robustpath.spec.run_spec import RunSpec

    spec = RunSpec(model=workload.model, data=workload.data, tasks=TASKS, device=device, batch_size=batch_size)
    return timed(lambda: reference(spec, mode))


def peak_rss_child(arguments: dict) -> None:
    """Subprocess body: one e2e run, then print peak RSS (VmHWM) and embedding sizes as JSON."""
    from _workloads import apply_setup

    from robustpath.run.runner import run_evaluation
    from robustpath.output.report.files import write_run_outputs

    apply_setup(arguments["setup"])
    if arguments.get("threads"):
        import torch

        torch.set_num_threads(arguments["threads"])
    workload = type("W", (), {"model": arguments["model"], "data": arguments["data"]})
    out = Path(arguments["out"])
    spec = make_spec(workload, out, arguments["batch_size"], arguments["device"], Path(arguments["cache"]))
    started = time.perf_counter()
    result = run_evaluation(spec)
    write_run_outputs(result, out)
    record = result.record
    counts = record["dataset"]["counts"]
    images = sum(sum(split.values()) for split in counts.values())
    test_images = sum(counts["test"].values())
    dim = int(record["model"].get("embed_dim") or record["model"]["architecture"]["width"])
    pipelines = record["embedding"]["distinct_pipelines"] - 1
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({
        "images": images, "test_images": test_images, "embed_dim": dim, "pipelines": pipelines,
        "embedding_bytes": 4 * dim * (images + test_images * pipelines), "peak_rss_bytes": hwm * 1024,
        "seconds": time.perf_counter() - started,
    }))


def measure_memory(workload_setup: dict, data_small: Path, data_large: Path, batch_size: int, device: str,
                   scratch: Path) -> list[dict]:
    rows = []
    for data in (data_small, data_large):
        arguments = {
            **workload_setup, "data": str(data), "batch_size": batch_size, "device": device,
            "out": tempfile.mkdtemp(prefix="rss-", dir=scratch), "cache": tempfile.mkdtemp(prefix="cache-", dir=scratch),
        }
        completed = subprocess.run(
            [sys.executable, __file__, "--child-peak-rss", json.dumps(arguments)],
            capture_output=True, text=True, check=True,
        )
        rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return rows


def help_seconds(repeats: int = 5) -> float:
    executable = Path(sys.executable).with_name("robustpath")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "robustpath"]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 makes CPU time robust to other processes")
    parser.add_argument("--w2-images", type=int, default=128)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--reference-modes", default="per-variant-dataset,test-only")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-images", type=int, default=400, help="N for the N vs 4N peak-RSS runs (W1 model)")
    parser.add_argument("--scratch", default=None, help="folder for outputs and synthetic data (default: a temp dir)")
    parser.add_argument("--child-peak-rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_peak_rss:
        peak_rss_child(json.loads(args.child_peak_rss))
        return

    import torch

    from _workloads import workloads, write_patch_folder

    if args.threads:
        torch.set_num_threads(args.threads)

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="robustpath-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    chosen = workloads(scratch, args.w2_images)
    names = [name.strip() for name in args.workloads.split(",") if name.strip()]
    modes = [] if args.no_reference else [m.strip() for m in args.reference_modes.split(",") if m.strip()]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs, batch size {args.batch_size}, {args.repeats} repeats; scratch {scratch}")
    try:
        print(f"load average at start: {os.getloadavg()}")
    except OSError:
        pass
    summary = {}
    for name in names:
        workload = chosen[name]
        print(f"\n== {name}: {workload.description}")
        # warm-up: imports, first-call costs, every kind of plot (not timed)
        run_e2e(workload, args.batch_size, device, scratch, corruptions=("hue", "gaussian_blur"), severities=(1, 2))
        e2e, actual, nominal, refs, records = [], [], [], {m: [] for m in modes}, []
        for repeat in range(args.repeats):
            wall, cpu, record = run_e2e(workload, args.batch_size, device, scratch)
            e2e.append((wall, cpu))
            records.append(record)
            stats = record["embedding"]
            actual.append(run_forward_only(workload, stats["images_forwarded"], args.batch_size, device))
            if stats["images_nominal"] != stats["images_forwarded"]:
                nominal.append(run_forward_only(workload, stats["images_nominal"], args.batch_size, device))
            for mode in modes:
                wall_ref, cpu_ref, _ = run_reference(workload, args.batch_size, device, mode)
                refs[mode].append((wall_ref, cpu_ref))
            print(f"  repeat {repeat + 1}: e2e {wall:.1f} s (cpu {cpu:.1f}), forward {actual[-1][0]:.1f} s"
                  + (f", nominal forward {nominal[-1][0]:.1f} s" if nominal else "")
                  + "".join(f", ref[{m}] {refs[m][-1][0]:.1f} s" for m in modes), flush=True)
        nominal = nominal or actual
        stats = record["embedding"]
        rows = {
            "e2e": e2e, "forward (images forwarded)": actual, "forward (nominal sweep)": nominal,
            **{f"reference ({m})": refs[m] for m in modes},
        }
        print(f"  images: nominal {stats['images_nominal']}, forwarded {stats['images_forwarded']} "
              f"in {stats['forward_passes']} passes")
        print(f"  {'measure':32s} {'wall s':>8s} {'cpu s':>8s}   (medians; minimums: wall, cpu)")
        for label, values in rows.items():
            print(f"  {label:32s} {median([w for w, _ in values]):8.2f} {median([c for _, c in values]):8.2f}"
                  f"   {min(w for w, _ in values):8.2f} {min(c for _, c in values):8.2f}")

        def ratio(top, bottom, pick):
            return (pick([w for w, _ in top]) / pick([w for w, _ in bottom]),
                    pick([c for _, c in top]) / pick([c for _, c in bottom]))

        pairs = {
            "e2e / forward (images forwarded)": (e2e, actual),
            "e2e / forward (nominal sweep)": (e2e, nominal),
            **{f"reference ({m}) / e2e": (refs[m], e2e) for m in modes},
        }
        ratios = {}
        print(f"  {'ratio':40s} {'medians: wall':>14s} {'cpu':>6s}   {'minimums: wall':>15s} {'cpu':>6s}")
        for label, (top, bottom) in pairs.items():
            ratios[label] = {"median": ratio(top, bottom, median), "min": ratio(top, bottom, min)}
            (mw, mc), (nw, nc) = ratios[label]["median"], ratios[label]["min"]
            print(f"  {label:40s} {mw:14.2f} {mc:6.2f}   {nw:15.2f} {nc:6.2f}")
        if device == "cpu":
            inside = [(w / r["benchmark"]["wall"], c / r["benchmark"]["cpu"]) for (w, c), r in zip(e2e, records)]
            print(f"  {'e2e / forward time inside that e2e run':40s} {median([w for w, _ in inside]):14.2f} "
                  f"{median([c for _, c in inside]):6.2f}   {min(w for w, _ in inside):15.2f} "
                  f"{min(c for _, c in inside):6.2f}")
            last = records[-1]
            phases = {**{k: v for k, v in last["timings_seconds"].items() if isinstance(v, float)},
                      "of which forward passes": last["benchmark"]["wall"], "write outputs": last["benchmark"]["write"]}
            print("  last e2e run, wall s: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                  + f"; total {e2e[-1][0]:.2f}")
        summary[name] = {"ratios": ratios, "medians": {k: median([w for w, _ in v]) for k, v in rows.items()}}

    if not args.no_memory:
        print(f"\n== peak RSS (subprocesses, W1 model customvit-demo, default sweep, no cache): "
              f"{args.memory_images} vs {4 * args.memory_images} images")
        small = write_patch_folder(scratch / f"rss-{args.memory_images}", args.memory_images)
        large = write_patch_folder(scratch / f"rss-{args.memory_images}x4", args.memory_images, repeat=4)
        setup = {"model": "customvit-demo", "setup": {}, "threads": args.threads}
        rows = measure_memory(setup, small, large, args.batch_size, device, scratch)
        for row in rows:
            print(f"  {row['images']:6d} images: peak RSS {row['peak_rss_bytes'] / 2**20:8.1f} MiB, "
                  f"embeddings {row['embedding_bytes'] / 2**20:6.1f} MiB, {row['seconds']:.1f} s")
        extra_rss = rows[1]["peak_rss_bytes"] - rows[0]["peak_rss_bytes"]
        extra_embeddings = rows[1]["embedding_bytes"] - rows[0]["embedding_bytes"]
        print(f"  4× images: peak RSS +{extra_rss / 2**20:.1f} MiB; extra embedding bytes {extra_embeddings / 2**20:.1f} MiB; "
              f"difference (the 'constant') {(extra_rss - extra_embeddings) / 2**20:.1f} MiB")

    print(f"\n`robustpath --help`: {help_seconds():.2f} s (median of 5)")


if __name__ == "__main__":
    main()
