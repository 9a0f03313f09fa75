"""The training protocols on demo-ihc: probe vs fine-tuning, MAE mask ratios, corruption augmentation.

    python examples/training_protocols.py --out runs/training-protocols

(a) probe vs fine-tuning (``robustpath finetune``) of the shipped demo CustomViT and of a
    DINOv2 under the default preset (every corruption, every severity).  Offline, the DINOv2
    is a tiny randomly initialised one built here (``--dinov2 dinov2-small`` for the real one);
(b) MAE pretraining (``robustpath pretrain``) with patch 4 on the 40 px patches, mask ratio
    0.25 vs 0.75: held-out PSNR, and linear-probe accuracy at 16 and 64 images per class
    (mean ± sd over 3 subsamples), against the same encoder untrained, trained from scratch
    with labels on 16 / 64 per class (its own head), and the MAE encoder fine-tuned on them
    (``robustpath train --init``);
(c) corruption augmentation (``--augment pathology``) on vs off, for a CustomViT trained from
    scratch and for fine-tuning the demo model: mean retention and mCE (baseline: off) under
    the default preset, as ``robustpath report`` computes them.

Every step is seeded (``--seed``); epochs are small so that the script runs in minutes on a
CPU (the figures in README.md came from the defaults here, 2 CPU cores).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

PARTS = ("a", "b", "c")


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/training-protocols"))
    parser.add_argument("--dinov2", default=None, help="a DINOv2 spec (default: a tiny random one built in --out)")
    parser.add_argument("--fine-tune-epochs", type=int, default=8)
    parser.add_argument("--mae-epochs", type=int, default=30)
    parser.add_argument("--train-epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--samples-per-class", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corruption", action="append", default=None, help="restrict the preset (tests)")
    parser.add_argument("--severity", type=int, action="append", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--part", choices=PARTS, action="append", default=None,
                        help="run only this part (repeatable; parts run separately share --out, and the table "
                        "prints every part found there)")
    return parser.parse_args(argv)


def build_tiny_dinov2(folder: Path) -> str:
    """A randomly initialised transformers Dinov2Model (width 64, 2 layers, patch 8, 56 px input)."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        config = Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                              image_size=56, patch_size=8)
        Dinov2Model(config).save_pretrained(str(folder))
        BitImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}, resample=3,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(str(folder))
    return f"hf:{folder}"


def _sweep(arguments) -> dict:
    return dict(corruptions=tuple(arguments.corruption or ()), severities=tuple(arguments.severity or ()),
                device=arguments.device, seed=arguments.seed, no_cache=True, bootstrap=200)


def fine_tuning_comparison(arguments, model: str, out: Path, augment: str | None = None, probe: bool = True):
    """``robustpath finetune MODEL`` → its FineTuneOutcome (``.comparison``: the side-by-side table)."""
    from robustpath.spec.run_spec import RunSpec
    from robustpath.run.fine_tuning import FineTuneRequest, run_fine_tuning
    from robustpath.models.finetune import FineTuneSpec

    spec = RunSpec(model=model, tasks=("fine_tune",), overwrite=True, **_sweep(arguments))
    training = FineTuneSpec(epochs=arguments.fine_tune_epochs, augment=augment, seed=arguments.seed)
    return run_fine_tuning(FineTuneRequest(spec, training, out, probe=probe), formats=("csv",))


def part_a(arguments) -> list[dict]:
    rows = []
    dinov2 = arguments.dinov2 or build_tiny_dinov2(arguments.out / "tiny-dinov2")
    for label, model in (("customvit-demo", "customvit-demo"), ("DINOv2" if arguments.dinov2 else "tiny DINOv2 (random init)", dinov2)):
        comparison = fine_tuning_comparison(arguments, model, arguments.out / "a" / label.split()[0]).comparison
        for row in comparison.itertuples():
            rows.append({"model": label, "protocol": "linear probe" if row.task == "linear_probe" else "fine-tuning",
                         "clean": row.clean_accuracy, "corrupted": row.mean_corrupted_accuracy,
                         "retention": row.mean_retention})
    return rows


def _probe_accuracies(arguments, model: str) -> dict[int, list[float]]:
    """Clean linear-probe accuracy of ``model`` for each --samples-per-class, one value per repeat."""
    import robustpath

    table = robustpath.evaluate(model, out=None, tasks=("linear_probe",), corruptions=("gaussian_blur",),
                                severities=(1,), stage="pre", samples_per_class=tuple(arguments.samples_per_class),
                                repeats=arguments.repeats, device=arguments.device, seed=arguments.seed,
                                no_cache=True, bootstrap=40)
    clean = table[(table.metric == "accuracy") & (table.corruption == "none")]
    return {n: clean[clean.samples_per_class == n].value.tolist() for n in arguments.samples_per_class}


def _trained_accuracies(arguments, out: Path, init: Path | None) -> dict[int, list[float]]:
    """Test accuracy of CustomViTs trained with labels on N per class (own head), one per repeat seed;
    [] for an N above the smallest class (``train`` needs N images of every class)."""
    import numpy as np

    from robustpath.data import load_dataset
    from robustpath.models.training import TrainSpec, train_customvit

    dataset = load_dataset("demo-ihc")
    smallest = int(np.bincount(dataset.labels[dataset.indices("train")]).min())
    accuracies: dict[int, list[float]] = {}
    for n in arguments.samples_per_class:
        accuracies[n] = []
        for repeat in range(arguments.repeats if n <= smallest else 0):
            spec = TrainSpec(out=out / f"n{n}-r{repeat}", samples_per_class=n, epochs=arguments.train_epochs,
                             width=arguments.width, depth=arguments.depth, heads=arguments.heads,
                             seed=arguments.seed + repeat, device=arguments.device, overwrite=True, init=init)
            accuracies.setdefault(n, []).append(train_customvit(spec).test_accuracy)
    return accuracies


def _pretrained_psnr(spec) -> float | None:
    """The held-out PSNR of an encoder already in ``spec.out`` pretrained with ``spec``'s settings, else None."""
    config = spec.out / "config.json"
    if not config.is_file():
        return None
    training = json.loads(config.read_text()).get("training", {})
    keys = ("patch_size", "mask_ratio", "epochs", "width", "depth", "heads", "seed", "data")
    same = all(training.get(key) == getattr(spec, key) for key in keys)
    return training.get("holdout_psnr_db") if same else None


def part_b(arguments) -> list[dict]:
    import torch

    from robustpath.models.customvit import load_customvit, save_customvit
    from robustpath.models.customvit_net import CustomViT, CustomViTConfig
    from robustpath.models.mae_training import PretrainSpec, pretrain_mae

    out = arguments.out / "b"
    rows = []
    mae_folders = {}
    for ratio in (0.25, 0.75):
        spec = PretrainSpec(out=out / f"mae-{ratio}", patch_size=4, mask_ratio=ratio, epochs=arguments.mae_epochs,
                            width=arguments.width, depth=arguments.depth, heads=arguments.heads, seed=arguments.seed,
                            device=arguments.device, overwrite=True)
        psnr = _pretrained_psnr(spec)  # an encoder pretrained with these settings is reused
        if psnr is None:
            psnr = pretrain_mae(spec).holdout_psnr
        mae_folders[ratio] = spec.out
        rows.append({"encoder": f"MAE, mask {ratio}, patch 4", "psnr": psnr,
                     "probe": _probe_accuracies(arguments, f"customvit:{spec.out}")})
    untrained = out / "untrained"  # the same architecture and normalisation, random weights
    torch.manual_seed(arguments.seed)
    config = load_customvit(mae_folders[0.25]).config
    save_customvit(CustomViT(CustomViTConfig(width=config.width, depth=config.depth, heads=config.heads,
                                             mean=config.mean, std=config.std)), untrained)
    rows.insert(0, {"encoder": "untrained (random init)", "psnr": None,
                    "probe": _probe_accuracies(arguments, f"customvit:{untrained}")})
    rows.append({"encoder": "from scratch, trained with labels (own head)", "psnr": None,
                 "trained": _trained_accuracies(arguments, out / "scratch", None)})
    for ratio, folder in mae_folders.items():
        rows.append({"encoder": f"MAE {ratio} → train --init (own head)", "psnr": None,
                     "trained": _trained_accuracies(arguments, out / f"init-{ratio}", folder)})
    return rows


def _robustness(run_dirs: list[Path], baseline: str) -> list[dict]:
    from robustpath.output.report.inputs import load_runs
    from robustpath.results.robustness import summarise_results

    runs = load_runs(run_dirs)
    summary = summarise_results(runs.table, runs.records, baseline)
    models = summary.models[summary.models.metric == "accuracy"]
    return [{"model": row.model, "task": row.task, "clean": row.clean_value, "retention": row.mean_retention,
             "mce": row.mce} for row in models.itertuples()]


def part_c(arguments) -> list[dict]:
    from robustpath.spec.run_spec import RunSpec
    from robustpath.output.report.files import write_run_outputs
    from robustpath.run.runner import run_evaluation
    from robustpath.models.training import TrainSpec, train_customvit

    out = arguments.out / "c"
    runs = []
    for name, augment in (("no-augment", None), ("augment-pathology", "pathology")):
        model = out / name
        train_customvit(TrainSpec(out=model, epochs=arguments.train_epochs, width=arguments.width,
                                  depth=arguments.depth, heads=arguments.heads, seed=arguments.seed,
                                  device=arguments.device, overwrite=True, augment=augment))
        spec = RunSpec(model=f"customvit:{model}", out=out / f"eval-{name}", tasks=("linear_probe",), overwrite=True,
                       **_sweep(arguments))
        result = run_evaluation(spec)
        write_run_outputs(result, spec.out, ("csv",))
        runs.append(out / f"eval-{name}")
    rows = [{"setting": "CustomViT from scratch", **row} for row in _robustness(runs, "customvit:no-augment")]
    fine_tuned = []
    for name, augment in (("no-augment", None), ("augment-pathology", "pathology")):
        fine_tuning_comparison(arguments, "customvit-demo", out / f"ft-{name}", augment, probe=False)
        fine_tuned.append(out / f"ft-{name}" / "fine_tune")
    rows += [{"setting": "fine-tuning customvit-demo", **row}
             for row in _robustness(fine_tuned, "finetuned:customvit-demo@ft-no-augment")]
    return rows


def run(arguments) -> dict:
    """Run the chosen parts (each saved as OUT/part-X.json) → every part's rows found in OUT."""
    arguments.out.mkdir(parents=True, exist_ok=True)
    functions = {"a": part_a, "b": part_b, "c": part_c}
    for part in arguments.part or PARTS:
        rows = functions[part](arguments)
        (arguments.out / f"part-{part}.json").write_text(json.dumps(rows, indent=1, default=float))
    found = {part: arguments.out / f"part-{part}.json" for part in PARTS}
    return {part: _with_int_keys(json.loads(path.read_text())) for part, path in found.items() if path.is_file()}


def _with_int_keys(rows: list[dict]) -> list[dict]:
    """JSON object keys are strings: the per-size dicts of part (b) get their int sizes back."""
    for row in rows:
        for key in ("probe", "trained"):
            if isinstance(row.get(key), dict):
                row[key] = {int(size): values for size, values in row[key].items()}
    return rows


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def summarise(results: dict) -> str:
    return "\n\n".join(WRITERS[part](rows) for part, rows in results.items())


def _summary_a(rows: list[dict]) -> str:
    lines = ["(a) probe vs fine-tuning, default preset (accuracy; retention = corrupted / clean, mean over variants)",
             "| model | protocol | clean | mean corrupted | mean retention |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['protocol']} | {r['clean']:.3f} | {r['corrupted']:.3f} | {r['retention']:.3f} |"
              for r in rows]
    return "\n".join(lines)


def _summary_b(rows: list[dict]) -> str:
    sizes = sorted({n for r in rows for n in (r.get("probe") or r.get("trained"))})
    lines = ["(b) MAE with patch 4 on 40 px patches: held-out PSNR; clean accuracy (mean ± sd over repeats)",
             "| encoder | PSNR (dB) | " + " | ".join(f"{n}/class" for n in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for r in rows:
        values = r.get("probe") or r.get("trained")
        kind = "probe" if "probe" in r else "trained"
        psnr = f"{r['psnr']:.2f}" if r["psnr"] is not None else "–"
        lines.append(f"| {r['encoder']} ({kind}) | {psnr} | " + " | ".join(_mean_sd(values[n]) for n in sizes) + " |")
    lines.append("(–: demo-ihc has fewer training images of a class than N, which `train` refuses; "
                 "the probe takes all the class has)")
    return "\n".join(lines)


def _summary_c(rows: list[dict]) -> str:
    lines = ["(c) corruption augmentation (pathology preset) on vs off; mCE relative to 'off' (1.0 = as robust)",
             "| setting | model | task | clean | mean retention | mCE |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['model']} | {r['task']} | {r['clean']:.3f} | {r['retention']:.3f} | {r['mce']:.3f} |"
              for r in rows]
    return "\n".join(lines)


WRITERS = {"a": _summary_a, "b": _summary_b, "c": _summary_c}


if __name__ == "__main__":
    print(summarise(run(parse_arguments())))
