"""The small-patch protocol: CustomViT trained from scratch at several training-set sizes
vs a DINOv2 linear probe after resizing the 40-px patches to 224, with Gaussian blur
applied before the resize (at native resolution) and after it.

    python examples/small_patch/run_protocol.py --data my_cells.csv \\
        --samples-per-class 256 1024 4096 --seeds 0 1 2 --foundation dinov2-small

Each trained CustomViT and the foundation model are evaluated by linear probe and
retrieval under Gaussian blur at both stages; the script prints clean accuracy and the
mean accuracy drop under blur before and after the resize, mean ± sd over seeds.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo-ihc", help="demo-ihc, an image folder or a CSV manifest")
    parser.add_argument("--samples-per-class", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--foundation", default="dinov2-small", help="foundation model spec or alias")
    parser.add_argument("--pooling", default="cls+mean", help="foundation pooling (DINOv2 linear evaluation: cls+mean)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("runs/small-patch"))
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


def _blur_summary(table) -> dict:
    probe = table[(table.task == "linear_probe") & (table.metric == "accuracy")]
    clean = float(probe[probe.corruption == "none"].value.iloc[0])
    blurred = probe[probe.corruption == "gaussian_blur"]
    return {
        "clean": clean,
        "drop_pre": float(blurred[blurred.stage == "pre"].drop_from_clean.mean()),
        "drop_post": float(blurred[blurred.stage == "post"].drop_from_clean.mean()),
    }


def run(arguments: argparse.Namespace) -> dict[str, list[dict]]:
    """{row label: [summary per seed]} for every CustomViT size and the foundation model."""
    import robustpath

    sweep = dict(corruptions=["gaussian_blur"], stage="both", tasks=["linear_probe", "retrieval"],
                 device=arguments.device)
    rows: dict[str, list[dict]] = {}
    for count in arguments.samples_per_class:
        for seed in arguments.seeds:
            folder = arguments.out / f"customvit-n{count}-seed{seed}"
            model = robustpath.train(
                arguments.data, folder / "model", samples_per_class=count, seed=seed, epochs=arguments.epochs,
                width=arguments.width, depth=arguments.depth, heads=arguments.heads,
                patch_size=arguments.patch_size, device=arguments.device,
            )
            table = robustpath.evaluate(f"customvit:{model}", arguments.data, out=folder / "eval", seed=seed, **sweep)
            rows.setdefault(f"CustomViT, {count}/class", []).append(_blur_summary(table))
    for seed in arguments.seeds:
        table = robustpath.evaluate(arguments.foundation, arguments.data, out=arguments.out / f"foundation-seed{seed}",
                                    pooling=arguments.pooling, seed=seed, **sweep)
        rows.setdefault(f"{arguments.foundation} linear probe", []).append(_blur_summary(table))
    return rows


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def summarise(rows: dict[str, list[dict]]) -> str:
    lines = [f"{'model':<32} {'clean accuracy':>16} {'blur drop, pre':>16} {'blur drop, post':>16}"]
    for label, summaries in rows.items():
        cells = [_mean_sd([s[key] for s in summaries]) for key in ("clean", "drop_pre", "drop_post")]
        lines.append(f"{label:<32} " + " ".join(f"{cell:>16}" for cell in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(run(parse_arguments())))
