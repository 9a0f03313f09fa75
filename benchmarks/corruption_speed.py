"""Per-image cost of every corruption of the built-in presets, at 40 px and 224 px.

A script, not a test::

    python benchmarks/corruption_speed.py                     # highest severity, CPU, torch's default threads
    python benchmarks/corruption_speed.py --all-severities --repeats 7
    python benchmarks/corruption_speed.py --imagecorruptions  # also the optional per-image family

    python benchmarks/corruption_speed.py --presets pathology,slide-artefacts --threads 1

Images are demo-ihc patches (40 px, batches of 256) and the same patches resized to
224 px (bicubic, batches of 64), float32, as the evaluation corrupts them. Each
cell is the median over ``--repeats`` timed runs (after one warm-up run) of the
time for one batch divided by the batch size, in milliseconds per image. Random
corruptions get one generator per image, made before the clock starts (the
engine re-seeds a pool of them, which costs microseconds), as
``Corruption.sample_generators`` seeds them. Every preset's corruption runs batched
on the device except slide-artefacts' ``jpeg`` (Pillow on the CPU, in a pool of up
to 8 threads that ``--threads`` does not limit).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import corruptions

BATCHED_PRESETS = ("pathology", "small-patch", "imagenet-c", "slide-artefacts")


def demo_batches(sizes: dict[int, int], device: torch.device) -> dict[int, tuple[torch.Tensor, list[str]]]:
    """{side: (images (B, 3, side, side) float32 on device, sample ids)} from demo-ihc patches."""
    from robustpath.data import load_dataset

    dataset = load_dataset("demo-ihc")
    batches = {}
    for side, batch in sizes.items():
        chosen = np.arange(batch) % len(dataset)
        native = torch.from_numpy(np.stack([dataset.read_image(i) for i in chosen])).permute(0, 3, 1, 2).float() / 255
        images = native if side == native.shape[-1] else F.interpolate(
            native, size=(side, side), mode="bicubic", align_corners=False, antialias=True
        ).clamp(0, 1)
        batches[side] = (images.to(device), [f"{dataset.sample_ids[i]}#{k}" for k, i in enumerate(chosen)])
    return batches


def time_per_image(corr, severity: int, images: torch.Tensor, ids: list[str], repeats: int) -> float:
    """Median milliseconds per image of ``corr(images, severity)`` over ``repeats`` runs after a warm-up."""
    def run() -> float:
        generators = corr.sample_generators(0, ids, severity)
        if images.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        corr(images, severity, generator=generators)
        if images.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    run()
    return statistics.median(run() for _ in range(repeats)) / images.shape[0] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(BATCHED_PRESETS), help="comma-separated preset names")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (median); default 5")
    parser.add_argument("--all-severities", action="store_true", help="every severity, not only the highest")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--imagecorruptions", action="store_true",
                        help="also the imagecorruptions preset (per image on the CPU; batches of 16 and 4, 3 repeats)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    plans = [(preset, {40: 256, 224: 64}, args.repeats) for preset in args.presets.split(",") if preset]
    if args.imagecorruptions:
        plans.append(("imagecorruptions", {40: 16, 224: 4}, min(args.repeats, 3)))
    header = f"{'preset':<17}{'corruption':<19}{'sev':>4}{'40 px ms/img':>14}{'224 px ms/img':>15}{'224 px img/s':>14}"
    print(header)
    print("-" * len(header))
    for preset, sizes, repeats in plans:
        batches = demo_batches(sizes, device)
        for name in corruptions.list_corruptions(preset):
            corr = corruptions.get_corruption(name, preset)
            severities = range(1, corr.max_severity + 1) if args.all_severities else [corr.max_severity]
            for severity in severities:
                cells = [time_per_image(corr, severity, *batches[side], repeats) for side in (40, 224)]
                print(f"{preset:<17}{name:<19}{severity:>4}{cells[0]:>14.3f}{cells[1]:>15.3f}{1e3 / cells[1]:>14.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
