"""One prepared check of robustpath's GPU paths, for a machine with a CUDA device.

Each check prints one line, ``PASS``, ``FAIL`` or ``SKIP``, its name and what it
measured; the script exits 1 when any check failed.  Every run goes through the
command line (``python -m robustpath eval``) or the Python API in a fresh process,
as a user would run it:

- ``environment``     CUDA device, torch version, bf16 support;
- ``amp-compile``     an end-to-end eval of a ViT-B/16-sized random model at 224 px with
                      autocast (bf16/fp16), channels-last inputs and ``--compile``
                      (run.json: precision, compiled, no compile fallback);
- ``oom-halving``     the same eval at a batch size that cannot fit under a GPU memory
                      cap (``torch.cuda.set_per_process_memory_fraction``): the sweep must
                      halve the batch with a notice and finish;
- ``deterministic``   ``--deterministic`` twice (no cache): byte-identical results.csv
                      and predictions.csv;
- ``torchrun-nccl``   ``torchrun --nproc-per-node 1 -m robustpath eval``: the NCCL
                      process group, rank 0 writes a complete run;
- ``ratio``           whole-process wall time of ``robustpath eval`` (probe + retrieval,
                      the default preset) against a process that only imports torch, loads
                      the model and runs the bare forward passes of the same number of
                      images at the same batch size and precision.

    python benchmarks/gpu_check.py                 # on a CUDA machine (about 5–8 minutes)
    python benchmarks/gpu_check.py --smoke         # CPU smoke mode: tiny model, tiny data

``--smoke`` runs the same checks on the CPU with the shipped ``customvit-demo`` and
demo-ihc (torchrun with gloo); the CUDA-only checks (compile, out-of-memory) are
skipped there with the reason.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]  # the workload helpers, and robustpath when it is not installed

VIT_B = "vit_base_patch16_224"  # timm architecture: ViT-B/16 at 224 px (86 M parameters)
SMOKE_MODEL = "customvit-demo"
FEW_VARIANTS = ["-c", "gaussian_blur", "-c", "hue", "-s", "1", "-s", "4"]


@dataclass
class Outcome:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str


class Checks:
    """Runs the checks in order and prints one line each as it finishes."""

    def __init__(self, scratch: Path, smoke: bool, batch_size: int, timeout: float) -> None:
        self.scratch = scratch
        self.smoke = smoke
        self.batch_size = batch_size
        self.timeout = timeout
        self.device = "cpu" if smoke else "cuda"
        self.outcomes: list[Outcome] = []
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                    "ROBUSTPATH_CACHE_DIR": str(scratch / "cache")}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    def record(self, name: str, status: str, detail: str) -> None:
        self.outcomes.append(Outcome(name, status, detail))
        print(f"{status:4s} {name:15s} {detail}", flush=True)

    def run(self, name: str, function) -> None:
        started = time.perf_counter()
        try:
            status, detail = function()
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check
            status, detail = "FAIL", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}"
        self.record(name, status, f"{detail} [{time.perf_counter() - started:.0f} s]")

    def command(self, arguments: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess:
        completed = subprocess.run(arguments, env=self.env, cwd=self.scratch, capture_output=True, text=True,
                                   timeout=timeout or self.timeout)
        if completed.returncode != 0:
            tail = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-3:]
            raise RuntimeError(f"exit {completed.returncode}: {' | '.join(tail)}")
        return completed

    def eval_command(self, model: str, data: str, out: Path, *extra: str, launcher: list[str] | None = None) -> dict:
        """Run ``robustpath eval`` in a fresh process; returns its run.json."""
        runner = launcher or [sys.executable, "-m", "robustpath"]
        self.command([*runner, "eval", model, "--data", data, "--out", str(out), "--device", self.device,
                      "--batch-size", str(self.batch_size), "--quiet", *extra])
        return json.loads((out / "run.json").read_text())


def build_vit_b(folder: Path) -> str:
    """A ViT-B/16 with random weights (timm), saved as safetensors → its robustpath model spec."""
    import timm
    import torch
    from safetensors.torch import save_file

    weights = folder / f"{VIT_B}-random.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        model = timm.create_model(VIT_B, pretrained=False, num_classes=0)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return f"timm:{VIT_B}@{weights}"


def patch_folder(scratch: Path, images: int) -> str:
    """An image folder of ``images`` demo-ihc patches (40 px PNGs), in copies of the 400 demo patches."""
    from _workloads import write_patch_folder

    copies = max(1, -(-images // 400))
    return str(write_patch_folder(scratch / f"patches-{copies}x400", 400, repeat=copies))


def check_environment(checks: Checks):
    import torch

    if checks.smoke:
        return "PASS", f"smoke mode on the CPU, torch {torch.__version__}, {os.cpu_count()} CPUs"
    if not torch.cuda.is_available():
        return "FAIL", f"torch {torch.__version__} sees no CUDA device (use --smoke on a CPU machine)"
    name = torch.cuda.get_device_name(0)
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    return "PASS", (f"{name}, {memory:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, "
                    f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}, {os.cpu_count()} CPUs")


def check_amp_compile(checks: Checks, model: str, data: str):
    if checks.smoke:
        return "SKIP", "no CUDA: autocast, channels-last and --compile are CUDA paths"
    record = checks.eval_command(model, data, checks.scratch / "amp-compile", "--compile", "--no-cache",
                                 "-t", "linear_probe", "-t", "retrieval", *FEW_VARIANTS)
    stats = record["embedding"]
    fallback = [note for note in record["notes"] if "torch.compile failed" in note]
    accuracy = _clean_value(checks.scratch / "amp-compile", "linear_probe", "accuracy")
    detail = (f"precision {record['precision']}, compiled {stats['compiled']}, {stats['images_forwarded']} images "
              f"in {stats['forward_passes']} passes, embed {record['timings_seconds']['embed']:.1f} s, "
              f"clean probe accuracy {accuracy:.3f}")
    ok = record["precision"] in ("bf16", "fp16") and stats["compiled"] and not fallback and record["completed"]
    return ("PASS" if ok else "FAIL"), detail + (f"; {fallback[0]}" if fallback else "")


OOM_SCRIPT = """
import json, sys, torch
torch.cuda.set_per_process_memory_fraction(float(sys.argv[1]))
import robustpath
table = robustpath.evaluate(sys.argv[2], sys.argv[3], out=sys.argv[4], device="cuda", batch_size=int(sys.argv[5]),
                            tasks=["linear_probe"], corruptions=["hue"], severities=[1], no_cache=True)
print(json.dumps({"peak_gib": torch.cuda.max_memory_allocated() / 2**30}))
"""


def check_oom_halving(checks: Checks, model: str, data: str):
    if checks.smoke:
        return "SKIP", "no CUDA: a real out-of-memory needs a GPU memory cap (the CPU path is covered by tests)"
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    cap_bytes = 3 * 2**30  # a ViT-B/16 forward of 2,048 images at 224 px needs far more than 3 GiB
    fraction = cap_bytes / total
    out = checks.scratch / "oom"
    requested = 2048  # the data must hold more than this many images per forward pass
    completed = checks.command([sys.executable, "-c", OOM_SCRIPT, f"{fraction:.6f}", model, data, str(out),
                                str(requested)])
    record = json.loads((out / "run.json").read_text())
    halvings = [note for note in record["notes"] if note.startswith("out of memory at batch size")]
    final = record["embedding"]["batch_size"]
    peak = json.loads(completed.stdout.strip().splitlines()[-1])["peak_gib"]
    detail = (f"cap {cap_bytes / 2**30:.0f} GiB, batch {requested} → {final} after {len(halvings)} halvings, "
              f"peak allocated {peak:.2f} GiB, completed {record['completed']}")
    ok = bool(halvings) and final < requested and record["completed"]
    return ("PASS" if ok else "FAIL"), detail


def check_deterministic(checks: Checks, model: str, data: str):
    outs = [checks.scratch / f"deterministic-{n}" for n in (1, 2)]
    variants = ["-c", "hue", "-s", "1"] if checks.smoke else FEW_VARIANTS
    records = [checks.eval_command(model, data, out, "--deterministic", "--no-cache", "-t", "linear_probe",
                                   "-t", "retrieval", *variants) for out in outs]
    same = {name: (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
            for name in ("results.csv", "predictions.csv")}
    ids = {record["run_id"] for record in records}
    detail = (f"precision {records[0]['precision']}, results.csv identical {same['results.csv']}, "
              f"predictions.csv identical {same['predictions.csv']}, run ids {len(ids)}")
    ok = all(same.values()) and len(ids) == 1 and records[0]["precision"] == "fp32"
    return ("PASS" if ok else "FAIL"), detail


def check_torchrun(checks: Checks, model: str, data: str):
    out = checks.scratch / "torchrun"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                "-m", "robustpath"]
    os.environ.pop("WORLD_SIZE", None)
    record = checks.eval_command(model, data, out, "--no-cache", "-t", "linear_probe", "-c", "hue", "-s", "1",
                                 launcher=launcher)
    backend = (record.get("distributed") or {}).get("backend")
    expected = "gloo" if checks.smoke else "nccl"
    detail = f"backend {backend}, world size {(record.get('distributed') or {}).get('world_size')}, " \
             f"completed {record['completed']}"
    ok = record["completed"] and backend == expected
    return ("PASS" if ok else "FAIL"), detail


FORWARD_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import torch
from robustpath.util.device import autocast_dtype
from robustpath.models import load_encoder
device = torch.device(sys.argv[2])
images, batch = int(sys.argv[3]), int(sys.argv[4])
encoder = load_encoder(sys.argv[1]).to(device)
h, w = encoder.preprocessing.input_size
x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
if device.type == "cuda":
    encoder.model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
dtype = autocast_dtype(device)
autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)
with torch.inference_mode(), autocast:
    done = 0
    while done < images:
        n = min(batch, images - done)
        encoder.encode_image(x[:n]).float().cpu()
        done += n
if device.type == "cuda":
    torch.cuda.synchronize()
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def check_ratio(checks: Checks, model: str, data: str, repeats: int):
    """Whole processes, interleaved: ``robustpath eval`` vs the bare forward passes of the same images."""
    e2e, bare, record = [], [], None
    for repeat in range(repeats):
        out = checks.scratch / f"ratio-{repeat}"
        started = time.perf_counter()
        variants = ["-c", "hue", "-s", "1"] if checks.smoke else []
        record = checks.eval_command(model, data, out, "--no-cache", "-t", "linear_probe", "-t", "retrieval", *variants)
        e2e.append(time.perf_counter() - started)
        stats = record["embedding"]
        started = time.perf_counter()
        checks.command([sys.executable, "-c", FORWARD_SCRIPT, model, checks.device, str(stats["images_forwarded"]),
                        str(stats["batch_size"])])
        bare.append(time.perf_counter() - started)
    ratio = statistics.median(e2e) / statistics.median(bare)
    stats = record["embedding"]
    timings = record["timings_seconds"]
    phases = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if isinstance(v, (int, float)))
    detail = (f"e2e {statistics.median(e2e):.1f} s / bare forward {statistics.median(bare):.1f} s = {ratio:.2f} "
              f"(medians of {repeats}; {stats['images_forwarded']} images in {stats['forward_passes']} passes "
              f"at batch {stats['batch_size']}, {record['precision']}; phases s: {phases})")
    return "PASS", detail


def _clean_value(out: Path, task: str, metric: str) -> float:
    import csv

    with open(out / "results.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["task"] == task and row["metric"] == metric and row["corruption"] == "none" \
                    and row.get("samples_per_class", "0") in ("0", ""):
                return float(row["value"])
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU smoke mode: customvit-demo on demo-ihc")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on CUDA, 64 in smoke mode")
    parser.add_argument("--ratio-images", type=int, default=8000, help="images of the ratio workload (CUDA)")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the ratio measurement")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command")
    parser.add_argument("--scratch", default=None, help="work folder (default: a new temporary folder)")
    parser.add_argument("--only", default=None, help="comma-separated check names to run")
    args = parser.parse_args(argv)
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="robustpath-gpu-check-"))
    scratch.mkdir(parents=True, exist_ok=True)
    checks = Checks(scratch, args.smoke, args.batch_size or (64 if args.smoke else 256), args.timeout)
    print(f"robustpath GPU check ({'CPU smoke mode' if args.smoke else 'CUDA'}); scratch {scratch}", flush=True)
    checks.run("environment", lambda: check_environment(checks))
    if checks.outcomes[-1].status == "FAIL":
        return 1
    if args.smoke:
        model, small, big = SMOKE_MODEL, "demo-ihc", lambda: "demo-ihc"
    else:
        model, small = build_vit_b(scratch), patch_folder(scratch, 400)
        big = lambda: patch_folder(scratch, args.ratio_images)  # noqa: E731 - written only when a check needs it
    wanted = set(args.only.split(",")) if args.only else None
    plan = [
        ("amp-compile", lambda: check_amp_compile(checks, model, small)),
        ("oom-halving", lambda: check_oom_halving(checks, model, big())),
        ("deterministic", lambda: check_deterministic(checks, model, small)),
        ("torchrun-nccl", lambda: check_torchrun(checks, model, small)),
        ("ratio", lambda: check_ratio(checks, model, big(), 1 if args.smoke else args.repeats)),
    ]
    for name, function in plan:
        if wanted is None or name in wanted:
            checks.run(name, function)
    failed = [o.name for o in checks.outcomes if o.status == "FAIL"]
    print(f"{len(checks.outcomes)} checks: {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""),
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
