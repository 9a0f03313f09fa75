"""`robustpath corruptions` (list a preset) and `robustpath corrupt` (galleries and corrupted copies).

Registered on the main app by ``register(app)``. Results go to stdout; progress
bars and notes go to stderr.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Optional

import typer

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
    preset_names,
    stderr_console,
    stdout_console,
)


CORRUPT_STAGES = ("pre", "post", "both")


def corruptions_command(
    preset: PresetOption = None,
    details: Annotated[bool, typer.Option("--details", help="Add each corruption's note.")] = False,
    debug: DebugOption = False,
) -> None:
    """List the corruptions of a preset.

    Operation, unit, the parameter of every severity, and its source.
    """
    import importlib.util

    from rich.table import Table

    import corruptions
    from robustpath.run.presets import load_preset_or_fail
    from robustpath.preview.gallery import format_parameter

    loaded = load_preset_or_fail(preset_names(preset))
    levels = max(len(entry.values) for entry in loaded.corruptions.values())
    table = Table(
        title=f"Preset {loaded.name}" + (f": {loaded.description}" if loaded.description else ""),
        caption=f"{loaded.path}\nSeverity 0 is the clean image. Built-in presets: {', '.join(corruptions.list_presets())}.",
        title_justify="left", caption_justify="left",
    )
    table.add_column("corruption", no_wrap=True)
    table.add_column("operation", overflow="fold", max_width=32)
    table.add_column("unit", overflow="fold")
    numbers_only = not any(isinstance(v, Mapping) for entry in loaded.corruptions.values() for v in entry.values)
    for level in range(1, levels + 1):  # plain numbers stay narrow; tables (markup) wrap
        table.add_column(str(level), justify="right", overflow="fold", no_wrap=numbers_only)
    needs_extra = False
    lines = []
    for name, entry in loaded.corruptions.items():
        needs_extra |= entry.operation.startswith("imagecorruptions.")
        values = [format_parameter(value) for value in entry.values] + [""] * (levels - len(entry.values))
        table.add_row(name, entry.operation, entry.unit, *values)
        sources = dict.fromkeys(entry.sources)  # one line when every level has the same source
        lines += [f"{name}: {source}" for source in sources]
        if details and entry.note:
            lines.append(f"{name} (note): {entry.note}")
    console = stdout_console()
    console.print(table)
    console.print("Sources" + (" and notes" if details else "") + ":", highlight=False)
    for line in lines:
        console.print(f"  {line}", highlight=False)
    if needs_extra and importlib.util.find_spec("imagecorruptions") is None:
        from corruptions.imagenet_c_compat import INSTALL_HINT

        stderr_console().print(f"note: the imagecorruptions.* operations need the optional package: {INSTALL_HINT}",
                               highlight=False)


def corrupt_command(
    source: Annotated[
        str,
        typer.Argument(metavar="IMAGE_OR_DATA", help="An image file, 'demo-ihc', an image folder ROOT/<class>/… or a CSV "
                       "manifest (path,label[,split])."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", parser=parse_output_folder, metavar="DIR", help="Output folder.")],
    preset: PresetOption = None,
    corruption: CorruptionOption = None,
    severity: SeverityOption = None,
    stage: Annotated[
        str, choice_option("--stage", values=CORRUPT_STAGES, kind="stage", help="pre: corrupt at native size (then "
                           "resize to --size if given); post: resize to --size first, then corrupt; both.")
    ] = "pre",
    size: Annotated[
        Optional[int], typer.Option("--size", min=1, help="Resize to this model input side (shorter side, centre crop, "
                                    "bicubic), as `eval` does; needed for --stage post.")
    ] = None,
    images: Annotated[
        int, typer.Option("--images", "-n", min=1, help="Gallery: how many images of a dataset (classes in turn).")
    ] = 3,
    export: Annotated[
        bool, typer.Option("--export", help="Write a corrupted copy of every image instead of a gallery: "
                           "OUT/<corruption>/<severity>/<stage>/, folder layout kept, PNG.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds markup strokes (as in `eval`) and the dataset split.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images corrupted at once (--export).")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    debug: DebugOption = False,
) -> None:
    """Show corruptions in a gallery, or export a corrupted dataset.

    The gallery (rows corruptions, columns severities) shows an image or a few images of a
    dataset; --export writes a corrupted copy of a whole dataset for other tools.
    """
    from robustpath.util.atomic import check_can_create
    from robustpath.run.presets import load_preset_or_fail
    from robustpath.preview.gallery import (
        check_geometry, export_corrupted, load_image_source, pick_gallery_images, write_galleries,
    )
    from robustpath.variants import plan_variants

    loaded = load_preset_or_fail(preset_names(preset))
    variants = plan_variants(loaded, tuple(corruption or ()), tuple(severity or ()), stage)
    check_geometry(variants, size)
    check_can_create(out)
    data = load_image_source(source, seed=seed)
    if export:
        with RichProgress(enabled=not quiet) as progress:
            result = export_corrupted(data, loaded, variants, out, size=size, seed=seed, batch_size=batch_size,
                                      progress=progress)
        stdout_console().print(
            f"Wrote {result.images} images of {data.name} in {len(result.folders)} folders "
            f"({out}/<corruption>/<severity>/<stage>/) and {result.record.name}", highlight=False,
        )
        return
    paths = write_galleries(data, loaded, variants, out, indices=pick_gallery_images(data, images), size=size, seed=seed)
    for path in paths:
        stdout_console().print(str(path), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `corruptions` and `corrupt` commands to ``app``."""
    app.command("corruptions", cls=PlainUsageCommand)(handle_errors(corruptions_command))
    app.command("corrupt", cls=PlainUsageCommand)(handle_errors(corrupt_command))
