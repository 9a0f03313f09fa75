"""The robustpath command line: parse → build a spec → call the library → render.

Results go to stdout; progress bars, notices and errors go to stderr.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from robustpath import __version__
from robustpath.cli.report import FormatOption, HtmlMaxImagesOption, register as register_report
from robustpath.output.report.html import DEFAULT_MAX_IMAGES
from robustpath.cli.support import (
    CorruptionOption,
    DebugOption,
    OneLineErrorGroup,
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
from robustpath.spec.run_spec import (
    BAD_IMAGE_POLICIES,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_DATA,
    DEVICES,
    EMBEDDING_DTYPES,
    GALLERIES,
    MAX_SEED,
    POOLINGS,
    PREDICTION_MODES,
    STAGES,
)
from robustpath.embedding.distributed import is_main_process
from robustpath.errors import UsageError
from robustpath.models import DEMO_MODEL, list_model_aliases
from robustpath.run.run_config import load_run_config, run_folder_name
from robustpath.spec.run_spec import RunSpec
from robustpath.util.atomic import check_can_create

app = typer.Typer(
    name="robustpath",
    cls=OneLineErrorGroup,
    help="How much does a pathology model's performance fall when slide images are imperfect?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps at any width, keeps [@TAG] and paragraphs, shows no <bool> for flags
)


DataOption = Annotated[
    str, typer.Option("--data", "-d", help="'demo-ihc', an image folder ROOT/<class>/… or a CSV manifest (path,label[,split][,group[,pair_id]]); ROOT/group=<group>/<class>/… for groups.")
]
DeviceOption = Annotated[
    str, choice_option("--device", values=DEVICES, kind="device", envvar="ROBUSTPATH_DEVICE",
                       help="auto picks CUDA when available.")
]
SeedOption = Annotated[
    int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seeds the split of your data, markup strokes, bootstrap and training.")
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"robustpath {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """robustpath: degradation reports for pathology image models."""


def _default_out(model: str, data: str) -> Path:
    return Path("robustpath-runs") / f"{run_folder_name(data, model)}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"


# eval's command-line parameters → RunSpec fields (the rest have the same name)
_SPEC_NAMES = {"model_option": "model", "corruption": "corruptions", "severity": "severities", "task": "tasks",
               "workers": "num_workers", "compile_model": "compile"}
_NOT_SPEC = {"ctx", "config", "json_summary", "dry_run", "quiet", "debug", "formats", "html_max_images"}


def _given_options(ctx: typer.Context, options: dict) -> dict:
    """The options set on the command line or through ROBUSTPATH_* variables, as RunSpec fields."""
    given = {}
    for name, value in options.items():
        if name in _NOT_SPEC:
            continue
        source = ctx.get_parameter_source(name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        if isinstance(value, list):
            value = tuple(value)
        given[_SPEC_NAMES.get(name, name)] = value
    return given


@app.command("eval", cls=PlainUsageCommand)
@handle_errors
def eval_command(
    ctx: typer.Context,
    model: Annotated[
        Optional[str],
        typer.Argument(
            metavar="MODEL",
            help="Model alias (see `robustpath models`) or spec: customvit:DIR, open_clip:ARCH[@TAG_OR_FILE], "
            "open_clip:hf-hub:ORG/REPO, open_clip:local-dir:DIR, hf:ORG/REPO_OR_DIR, timm:NAME[@FILE], or a model "
            "folder; default: the shipped customvit-demo."
        ),
    ] = None,
    model_option: Annotated[
        Optional[str], typer.Option("--model", "-m", help="The model, as an option (same forms as MODEL).")
    ] = None,
    pooling: Annotated[
        Optional[str],
        choice_option("--pooling", values=POOLINGS, kind="pooling", help="Image-only hf:/timm: models: 'card' (the "
                      "default: the model card's embedding for a foundation-model alias, see `robustpath models "
                      "--details`; else the model's own pooled output), the cls token, the mean of the patch tokens "
                      "(class and register tokens excluded), or both concatenated."),
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Let hf: models run code from their repository (off by default).")
    ] = False,
    data: DataOption = DEFAULT_DATA,
    corruption: CorruptionOption = None,
    severity: SeverityOption = None,
    task: Annotated[
        Optional[list[str]],
        typer.Option("--task", "-t", help="linear_probe, retrieval, zeroshot, embedding_drift, identity, detectability, "
                     "fine_tune (the head of a finetuned: model) (repeatable); default: all but fine_tune that the "
                     "model supports."),
    ] = None,
    samples_per_class: Annotated[
        Optional[list[str]],
        typer.Option("--samples-per-class", "-n", help="Data-scale sweep: also train linear probes on N training images per class, e.g. 16,64,256 (repeatable)."),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Seeded subsamples per --samples-per-class value (mean ± sd in the report).")
    ] = 3,
    gallery: Annotated[
        str, choice_option("--gallery", values=GALLERIES, kind="gallery", plural="galleries",
                           help="Retrieval gallery: clean training images, or corrupted like the queries.")
    ] = "clean",
    prompts: Annotated[
        Optional[Path], typer.Option("--prompts", help="Zero-shot class names/synonyms/prompts (TOML or JSON).")
    ] = None,
    templates: Annotated[
        Optional[str], typer.Option("--templates", help="Built-in prompt template set: pathology (default), plip, ihc, clip.")
    ] = None,
    stage: Annotated[
        str, choice_option("--stage", values=STAGES, kind="stage", help="pre: corrupt at native size before the "
                           "model's resize; post: after it; both; default: pre for all, plus post for gaussian_blur.")
    ] = "default",
    preset: PresetOption = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", parser=parse_output_folder, metavar="DIR",
                                     help="Output folder; default: robustpath-runs/<data>__<model>__<time>.")
    ] = None,
    on_bad_image: Annotated[
        str,
        choice_option("--on-bad-image", values=BAD_IMAGE_POLICIES, kind="bad-image policy", plural="policies",
                      help="Files that cannot be decoded: skip them (listed in run.json and report.md) or fail."),
    ] = "skip",
    device: DeviceOption = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, envvar="ROBUSTPATH_BATCH_SIZE", help="Images per forward pass.")
    ] = DEFAULT_BATCH_SIZE,
    workers: Annotated[
        int, typer.Option("--workers", min=0, envvar="ROBUSTPATH_WORKERS", help="DataLoader worker processes for decoding.")
    ] = 0,
    seed: SeedOption = 0,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", metavar="N", help="Bootstrap resamples of the test images behind every 95% "
                          "interval and drop p-value, shared by clean and every variant (at least 40; use 10000 "
                          "for publication).")
    ] = BOOTSTRAP_RESAMPLES,
    mpp: Annotated[
        Optional[float], typer.Option("--mpp", metavar="MICRONS",
                                      help="Microns per pixel of the native images (e.g. 0.25 at 40x, 0.5 at 20x): "
                                      "spatial severities are also reported in micrometres; default: a manifest's "
                                      "mpp column, if any.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a complete run (or an unfinished one with other options) in --out; "
                           "the old run stays until the new one is complete, and files robustpath did not write stay.")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the shared embedding cache.")] = False,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option("--cache-dir", envvar="ROBUSTPATH_CACHE_DIR", help="Embedding cache folder; default ~/.cache/robustpath."),
    ] = None,
    save_embeddings: Annotated[
        bool, typer.Option("--save-embeddings", help="Also write the image and class-text embeddings of the clean set "
                           "and every variant to OUT/embeddings/ (safetensors + samples.csv).")
    ] = False,
    embeddings_dtype: Annotated[
        str, choice_option("--embeddings-dtype", values=EMBEDDING_DTYPES, kind="embeddings dtype",
                           help="dtype of the saved embeddings (float16 halves the size).")
    ] = "float32",
    predictions: Annotated[
        str, choice_option("--predictions", values=PREDICTION_MODES, kind="predictions mode",
                           help="Rows of predictions.csv: all (every task, variant and test image), changed (only "
                           "predictions that differ from the clean one) or none (no predictions.csv or "
                           "misclassified.csv).")
    ] = "all",
    compress_exports: Annotated[
        bool, typer.Option("--compress-exports", help="Write predictions.csv.gz and misclassified.csv.gz (gzip).")
    ] = False,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the encoder (falls back with a notice if it fails).")
    ] = False,
    deterministic: Annotated[
        bool,
        typer.Option("--deterministic", help="Deterministic torch algorithms, cuDNN without autotuning, no TF32, fp32 "
                     "(no mixed precision), no --compile: for reproducible GPU runs; slower on GPU (see README)."),
    ] = False,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="A TOML sweep over models and datasets (or a run.json to re-run); options given here override it."),
    ] = None,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout instead of the tables.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate data, model spec, preset and options, print the plan, load no weights.")
    ] = False,
    formats: FormatOption = None,
    html_max_images: HtmlMaxImagesOption = DEFAULT_MAX_IMAGES,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    debug: DebugOption = False,
) -> None:
    """Evaluate MODEL on clean and corrupted images.

    Prints one table per task and writes results.csv, predictions.csv, misclassified.csv,
    run.json, report.md and report.html to --out.
    """
    from robustpath.output.report.formats import check_formats
    from robustpath.tasks import DEFAULT_TASKS, parse_samples_per_class

    if model is not None and model_option is not None and model != model_option:
        raise UsageError(f"the model is given twice ('{model}' and --model '{model_option}'); give it once")
    chosen_formats = check_formats(formats or ())
    given = _given_options(ctx, dict(locals()))
    if model is not None:
        given["model"] = model
    if samples_per_class is not None:
        given["samples_per_class"] = parse_samples_per_class(samples_per_class)
    if config is not None:
        specs = load_run_config(config, given)
    else:
        values = {"model": DEMO_MODEL, "tasks": DEFAULT_TASKS, **given}
        specs = [RunSpec(**values)]
    specs = [spec if spec.out is not None else dataclasses.replace(spec, out=_default_out(spec.model, spec.data)) for spec in specs]
    summaries = [
        _run_one(spec, dry_run=dry_run, json_summary=json_summary, quiet=quiet, formats=chosen_formats,
                 html_max_images=html_max_images)
        for spec in specs
    ]
    if json_summary and is_main_process():
        typer.echo(json.dumps(summaries[0] if len(summaries) == 1 else {"runs": summaries}, indent=2))


def _run_one(spec, *, dry_run: bool, json_summary: bool, quiet: bool, formats: tuple[str, ...] = (),
             html_max_images: int | None = None) -> dict:
    """Validate or run one RunSpec; print its tables unless a JSON summary is wanted.

    Under torchrun only rank 0 prints and writes (the other ranks return {}).
    """
    main = is_main_process()
    if main:
        check_can_create(spec.out)
    if dry_run:
        from robustpath.run.plan import plan_run

        plan = plan_run(spec)
        if not json_summary and main:
            _print_plan(plan, spec.out)
        return {"dry_run": True, "out": str(spec.out), **plan.as_dict()}
    from robustpath.run.runner import evaluate_and_write
    from robustpath.output.report.writer import written_summary
    from robustpath.output.report.terminal import render_terminal
    from robustpath.results.summary import run_summary

    with RichProgress(enabled=not quiet and main) as progress:
        written = evaluate_and_write(spec, progress, formats, html_max_images)
    if written is None:  # a rank other than 0 under torchrun: rank 0 writes the outputs
        return {}
    result, paths = written
    if not json_summary:
        render_terminal(result.table, stdout_console())
    for note in result.record["notes"] + result.notices:
        stderr_console().print(f"note: {note}", highlight=False)
    stderr_console().print(f"Wrote {written_summary(paths, spec.out)} to {spec.out}", highlight=False)
    return run_summary(result, {k: str(v) for k, v in paths.items()})


def _print_plan(plan, out_dir: Path) -> None:
    console = stdout_console()
    console.print("[bold]Plan[/] (dry run: nothing loaded, nothing written)", highlight=False)
    console.print(f"  model     {plan.model}  (source {plan.source}, text encoder: {plan.text_encoder})", highlight=False)
    console.print(
        f"  data      {plan.dataset}: {plan.images} images, {plan.test_images} in the test split"
        + (f", {plan.skipped_images} undecodable files skipped" if plan.skipped_images else ""),
        highlight=False,
    )
    console.print(f"  variants  clean + {len(plan.variants)} corrupted: {', '.join(plan.variants)}", highlight=False)
    console.print(f"  tasks     {', '.join(plan.tasks)}", highlight=False)
    if plan.pooling:
        console.print(f"  pooling   {plan.pooling} ({plan.pooling_source})", highlight=False)
    console.print(f"  embedding {plan.embedding_summary()}", highlight=False)
    console.print(f"  embedded  {plan.embedded_summary()} variants already embedded (reused, not recomputed)",
                  highlight=False)
    console.print(f"  exports   {', '.join(plan.exports)}", highlight=False)
    console.print(f"  output    {out_dir}", highlight=False)


@app.command("models", cls=PlainUsageCommand)
@handle_errors
def models_command(
    details: Annotated[bool, typer.Option("--details", help="Add a description of each model, its model card and "
                                          "the card's loading recipe.")] = False,
    debug: DebugOption = False,
) -> None:
    """List the model aliases.

    Each with the spec it stands for, its licence, whether access is gated and the
    embedding its model card prescribes (the default pooling).
    """
    from rich.table import Table

    from robustpath.models.recipes.listing import alias_row

    table = Table(title="Model aliases (any spec form also works: see `robustpath eval --help`)", title_justify="left")
    columns = ("alias", "spec", "licence", "gated", "pooling", *(("description", "model card and recipe") if details else ()))
    for column in columns:
        table.add_column(column, overflow="fold")
    for alias in list_model_aliases():
        table.add_row(*alias_row(alias, details))
    stdout_console().print(table)


@app.command("cache", cls=PlainUsageCommand)
@handle_errors
def cache_command(
    clear: Annotated[bool, typer.Option("--clear", help="Delete every cached embedding entry.")] = False,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option("--cache-dir", envvar="ROBUSTPATH_CACHE_DIR",
                     help="The embedding cache folder (default ~/.cache/robustpath)."),
    ] = None,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the figures as JSON on stdout.")] = False,
    debug: DebugOption = False,
) -> None:
    """Show where the embedding cache is and its size.

    --clear empties it.
    """
    from robustpath.embedding.cache import cache_info, clear_cache

    info = clear_cache(cache_dir) if clear else cache_info(cache_dir)
    if json_summary:
        typer.echo(json.dumps({"path": str(info.path), "entries": info.entries, "bytes": info.bytes, "cleared": clear}))
    else:
        stdout_console().print(("Removed " if clear else "Embedding cache: ") + info.describe(), highlight=False)


@app.command("train", cls=PlainUsageCommand)
@handle_errors
def train_command(
    data: DataOption = DEFAULT_DATA,
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=parse_output_folder, metavar="DIR",
                           help="Folder for config.json + model.safetensors.")
    ] = Path("customvit"),
    samples_per_class: Annotated[
        Optional[int], typer.Option("--samples-per-class", "-n", min=1, help="Training images per class (seeded subsample); default: all.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 64,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")] = 1e-3,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Model input size; default: the data's native size.")] = None,
    patch_size: Annotated[int, typer.Option("--patch-size", min=1)] = 4,
    width: Annotated[int, typer.Option("--width", min=8)] = 128,
    depth: Annotated[int, typer.Option("--depth", min=1)] = 6,
    heads: Annotated[int, typer.Option("--heads", min=1)] = 4,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --out.")] = False,
    init: Annotated[
        Optional[Path], typer.Option("--init", metavar="PRETRAINED", help="Start from a CustomViT folder (e.g. from "
                                     "`robustpath pretrain`): its architecture, normalisation and weights.")
    ] = None,
    augment: Annotated[
        Optional[str], typer.Option("--augment", metavar="PRESET", help="Hardening: corrupt each training image with "
                                    "probability 0.5 by a random corruption and severity of PRESET (seeded).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    debug: DebugOption = False,
) -> None:
    """Train a CustomViT on small patches (from scratch or --init).

    The model (config.json + model.safetensors) is saved to --out.
    """
    from robustpath.models.training import TrainSpec, train_customvit

    spec = TrainSpec(
        data=data, out=out, samples_per_class=samples_per_class, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, image_size=image_size, patch_size=patch_size, width=width, depth=depth,
        heads=heads, seed=seed, device=device, overwrite=overwrite, init=init, augment=augment,
    )
    with RichProgress(enabled=not quiet) as progress:
        result = train_customvit(spec, progress=progress)
    accuracy = "n/a" if result.test_accuracy is None else f"{result.test_accuracy:.3f}"
    stdout_console().print(
        f"Saved CustomViT to {result.path} ({result.train_samples} training images, test accuracy {accuracy})"
    )


register_report(app)  # robustpath report RUN_DIR... (robustpath/cli/report.py)


def _register_corruption_commands() -> None:
    from robustpath.cli.corruptions import register as register_corruptions

    register_corruptions(app)  # robustpath corruptions / corrupt (robustpath/cli/corruptions.py)


_register_corruption_commands()


def _register_training_commands() -> None:
    from robustpath.cli.training import register as register_training

    register_training(app)  # robustpath finetune / pretrain (robustpath/cli/training.py)


_register_training_commands()
