"""The PathCLIP-benchmark protocol: zero-shot and image-to-image retrieval of pathology
CLIP models under the seven corruptions, four severities each.

Models: pathclip, plip, openai-clip (download them where the network is available, or
pass local copies with --model). Datasets: WSSS4LUAD (tumor vs normal) and Osteosarcoma
(non-tumor, necrotic tumor, viable tumor); you supply the images, as image folders or
CSV manifests with the labels named in the prompt files next to this script.

    python examples/pathclip_benchmark/run_protocol.py \\
        --data wsss4luad=/data/wsss4luad --data osteosarcoma=/data/osteosarcoma.csv \\
        --out runs/pathclip-protocol

Each model × dataset run writes its own folder (results.csv, report.md, run.json);
the script prints the mean drop from clean per corruption for each task.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = {
    "wsss4luad": HERE / "wsss4luad_prompts.toml",
    "osteosarcoma": HERE / "osteosarcoma_prompts.toml",
    "demo-ihc": HERE / "demo_prompts.toml",
}
MODELS = ("pathclip", "plip", "openai-clip")
TASKS = ("zeroshot", "retrieval")


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="NAME=PATH",
                        help="a dataset: wsss4luad=PATH, osteosarcoma=PATH, or demo-ihc=demo-ihc; repeatable")
    parser.add_argument("--model", action="append", help="model spec or alias; repeatable (default: %(default)s)")
    parser.add_argument("--corruption", action="append", help="limit the corruptions (default: all seven)")
    parser.add_argument("--severity", action="append", type=int, help="limit the severities (default: 1-4)")
    parser.add_argument("--out", type=Path, default=Path("runs/pathclip-protocol"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    arguments = parser.parse_args(argv)
    arguments.model = arguments.model or list(MODELS)
    return arguments


def run(arguments: argparse.Namespace) -> dict:
    """Run every model on every dataset; return {(model, dataset): results table}."""
    import robustpath

    tables = {}
    for item in arguments.data:
        name, _, path = item.partition("=")
        if name not in PROMPTS or not path:
            raise SystemExit(f"--data {item!r}: expected NAME=PATH with NAME one of {sorted(PROMPTS)}")
        for model in arguments.model:
            folder = arguments.out / f"{name}__{Path(model).name}"
            tables[(model, name)] = robustpath.evaluate(
                model, path, out=folder, tasks=TASKS, prompts=PROMPTS[name],
                corruptions=arguments.corruption or (), severities=arguments.severity or (),
                device=arguments.device, batch_size=arguments.batch_size,
            )
    return tables


def summarise(tables: dict) -> str:
    """Mean drop from clean per corruption, one block per model × dataset × task."""
    lines = []
    for (model, dataset), table in tables.items():
        primary = table[table.metric.isin(["accuracy", "top1_accuracy"]) & (table.corruption != "none")]
        for task, rows in primary.groupby("task"):
            drops = rows.groupby("corruption")["drop_from_clean"].mean().sort_values()
            text = ", ".join(f"{corruption} {drop:+.3f}" for corruption, drop in drops.items())
            lines.append(f"{model} on {dataset}, {task}: {text}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(run(parse_arguments())))
