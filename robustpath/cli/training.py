"""`robustpath finetune` and `robustpath pretrain`: the training protocols beside `train`.

Registered on the main app by ``register(app)`` (at the end of robustpath/cli/main.py, so the
shared options defined there exist).  Each command parses, builds a spec, calls the
library (robustpath.run.fine_tuning, robustpath.models.mae_training) and renders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from robustpath.cli.main import DataOption, DeviceOption, SeedOption
from robustpath.cli.report import FormatOption, HtmlMaxImagesOption
from robustpath.cli.support import (
    CorruptionOption,
    DebugOption,
    PlainUsageCommand,
    PresetOption,
    RichProgress,
    SeverityOption,
    choice_option,
    handle_errors,
    parse_output_folder,
    stderr_console,
    stdout_console,
)
from robustpath.models.mae_training import DEFAULT_MASK_RATIO, DEFAULT_PATCH_SIZE  # noqa: E402  (no torch)
from robustpath.spec.run_spec import BOOTSTRAP_RESAMPLES, DEFAULT_BATCH_SIZE, DEFAULT_DATA, DEFAULT_PRESET, POOLINGS, STAGES
from robustpath.output.report.html import DEFAULT_MAX_IMAGES

AugmentOption = Annotated[
    Optional[str],
    typer.Option("--augment", metavar="PRESET", help="Hardening: corrupt each training image with probability 0.5 by a "
                 "corruption and severity drawn at random from PRESET (seeded), at native size."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def finetune_command(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Any model `robustpath eval` takes.")] = "customvit-demo",
    data: DataOption = DEFAULT_DATA,
    out: Annotated[Path, typer.Option("--out", "-o", parser=parse_output_folder, metavar="DIR",
                                      help="Folder for fine-tuned/, fine_tune/, probe/ and comparison.csv.")] = Path("finetune"),
    blocks: Annotated[int, typer.Option("--blocks", min=0, help="Fine-tune the last N transformer blocks (and what "
                                        "follows them); 0: the whole image encoder.")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="At most this many epochs (early stopping).")] = 10,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Stop after N epochs without a better validation loss.")] = 3,
    validation_fraction: Annotated[float, typer.Option("--validation-fraction", min=0.0, max=0.9,
                                   help="Share of each class's training images held out for early stopping.")] = 0.2,
    learning_rate: Annotated[float, typer.Option("--lr", help="Encoder learning rate (AdamW).")] = 1e-4,
    head_learning_rate: Annotated[float, typer.Option("--head-lr", help="Linear head learning rate.")] = 1e-3,
    train_batch_size: Annotated[int, typer.Option("--train-batch-size", min=1, help="Images per training step.")] = 32,
    augment: AugmentOption = None,
    samples_per_class: Annotated[Optional[list[str]], typer.Option("--samples-per-class", "-n", help="Also fine-tune "
                                 "on N training images per class, e.g. 16,64 (repeatable), like the probe's sweep.")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Seeded subsamples per --samples-per-class value.")] = 3,
    pooling: Annotated[Optional[str], choice_option("--pooling", values=POOLINGS, kind="pooling",
                                                   help="Image-only hf:/timm: models: the embedding pooled.")] = None,
    corruption: CorruptionOption = None,
    severity: SeverityOption = None,
    stage: Annotated[str, choice_option("--stage", values=STAGES, kind="stage", help="As for eval.")] = "default",
    preset: PresetOption = None,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Skip the linear-probe run of MODEL.")] = False,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per forward pass of the sweeps.")] = DEFAULT_BATCH_SIZE,
    seed: SeedOption = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", metavar="N", help="Bootstrap resamples (as for eval).")] = BOOTSTRAP_RESAMPLES,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the embedding cache.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Fine-tune again and replace the runs in --out.")] = False,
    formats: FormatOption = None,
    html_max_images: HtmlMaxImagesOption = DEFAULT_MAX_IMAGES,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Fine-tune MODEL with a linear head, beside its linear probe.

    Fine-tunes on the clean training images (seeded, early stopping on a validation
    split), evaluates the fine-tuned model on the clean and every corrupted test set with
    the probe's metrics, runs the probe of MODEL, and prints both side by side.
    """
    from robustpath.spec.run_spec import RunSpec
    from robustpath.run.fine_tuning import FineTuneRequest, run_fine_tuning
    from robustpath.models.finetune import FineTuneSpec
    from robustpath.output.report.formats import check_formats
    from robustpath.tasks import parse_samples_per_class

    chosen = check_formats(formats or ())
    evaluation = RunSpec(
        model=model, data=data, corruptions=tuple(corruption or ()), severities=tuple(severity or ()), stage=stage,
        preset=tuple(preset) if preset else DEFAULT_PRESET, device=device, batch_size=batch_size, seed=seed, pooling=pooling,
        samples_per_class=parse_samples_per_class(samples_per_class), repeats=repeats, bootstrap=bootstrap,
        no_cache=no_cache, overwrite=overwrite, tasks=("fine_tune",),
    )
    training = FineTuneSpec(blocks=blocks, epochs=epochs, batch_size=train_batch_size, learning_rate=learning_rate,
                            head_learning_rate=head_learning_rate, validation_fraction=validation_fraction,
                            patience=patience, augment=augment, seed=seed)
    with RichProgress(enabled=not quiet) as progress:
        outcome = run_fine_tuning(FineTuneRequest(evaluation, training, out, probe=not no_probe), progress,
                                  formats=chosen, html_max_images=html_max_images)
    render_comparison(outcome.comparison)
    for run in outcome.runs.values():
        for note in run["notes"]:
            stderr_console().print(f"note: {note}", highlight=False)
    stderr_console().print(f"Wrote {out}/: fine-tuned/ (the model set), {', '.join(outcome.runs)} (runs), "
                           "comparison.csv", highlight=False)


def render_comparison(comparison) -> None:
    from rich.table import Table

    table = Table(title="Probe vs fine-tuning (accuracy; retention = corrupted / clean, mean over variants)",
                  title_justify="left")
    for column in ("model", "task", "per class", "clean", "mean corrupted", "mean retention"):
        table.add_column(column)
    for row in comparison.itertuples():
        spread = f" ± {row.clean_accuracy_sd:.3f}" if row.repeats > 1 else ""
        table.add_row(row.model, row.task, str(row.samples_per_class), f"{row.clean_accuracy:.3f}{spread}",
                      f"{row.mean_corrupted_accuracy:.3f}", f"{row.mean_retention:.3f}")
    stdout_console().print(table)


def pretrain_command(
    data: DataOption = DEFAULT_DATA,
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="Pretrain on every image file below "
                                                   "DIR (unlabelled, any layout) instead of --data's training split.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", parser=parse_output_folder, metavar="DIR",
                                      help="Folder for the encoder (config.json + model.safetensors).")] = Path("customvit-mae"),
    patch_size: Annotated[int, typer.Option("--patch-size", min=1, help="Patch side in pixels (small for small objects).")] = DEFAULT_PATCH_SIZE,
    mask_ratio: Annotated[float, typer.Option("--mask-ratio", min=0.0, max=1.0, help="Share of patches hidden per image.")] = DEFAULT_MASK_RATIO,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 64,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")] = 1e-3,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Model input size; default: the images' size.")] = None,
    width: Annotated[int, typer.Option("--width", min=8)] = 128,
    depth: Annotated[int, typer.Option("--depth", min=1)] = 6,
    heads: Annotated[int, typer.Option("--heads", min=1)] = 4,
    decoder_width: Annotated[int, typer.Option("--decoder-width", min=8)] = 64,
    decoder_depth: Annotated[int, typer.Option("--decoder-depth", min=1)] = 2,
    holdout_fraction: Annotated[float, typer.Option("--holdout-fraction", help="Images kept out of training for the PSNR.")] = 0.1,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --out.")] = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Pretrain a CustomViT encoder as a masked autoencoder (MAE).

    Trains on unlabelled images, reports the reconstruction PSNR of held-out images and saves the encoder to --out,
    loadable by every command like any CustomViT (`robustpath train --init DIR` fine-tunes it).
    """
    from robustpath.models.mae_training import PretrainSpec, pretrain_mae

    spec = PretrainSpec(data=data, images=images, out=out, patch_size=patch_size, mask_ratio=mask_ratio, epochs=epochs,
                        batch_size=batch_size, learning_rate=learning_rate, image_size=image_size, width=width,
                        depth=depth, heads=heads, decoder_width=decoder_width, decoder_depth=decoder_depth,
                        holdout_fraction=holdout_fraction, seed=seed, device=device, overwrite=overwrite)
    with RichProgress(enabled=not quiet) as progress:
        result = pretrain_mae(spec, progress)
    stdout_console().print(
        f"Saved the MAE encoder to {result.path} ({result.train_images} training images; held-out reconstruction "
        f"PSNR {result.holdout_psnr:.2f} dB on {result.holdout_images} images, mask ratio {mask_ratio:g}, "
        f"patch {patch_size} px)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `finetune` and `pretrain` to ``app``."""
    app.command("finetune", cls=PlainUsageCommand)(handle_errors(finetune_command))
    app.command("pretrain", cls=PlainUsageCommand)(handle_errors(pretrain_command))
