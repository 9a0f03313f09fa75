"""Gallery of the slide-artefacts preset: an H&E-like and an IHC patch under every corruption and severity.

Uses only the stand-alone ``corruptions`` package, numpy, scikit-image's sample image,
matplotlib and Pillow::

    python examples/slide_artefacts/gallery.py --out docs/slide-artefacts-gallery.png

Rows are the preset's corruptions, columns the clean patch and severities 1-4; each
cell shows the H&E-like patch (left) and the IHC patch (right), corrupted at their
native size with the per-sample generators a run uses (seed 0). The PNG is reduced
to a 256-colour palette so that it stays small.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corruptions  # noqa: E402
from images import crops, he_like_image, ihc_image  # noqa: E402

PRESET = "slide-artefacts"
CORNERS = [(200, 110)]  # top-left corner (row, column) of the patch, the same tissue in both images


def gallery_cells(size: int, seed: int) -> tuple[list[str], list[list[np.ndarray]]]:
    """(row labels, rows of (size, 2 size + 2, 3) float cells: H&E-like | IHC), clean first in each row."""
    patches = torch.from_numpy(np.concatenate([crops(he_like_image(), size, CORNERS), crops(ihc_image(), size, CORNERS)])).float()
    ids = ["he-like", "ihc"]
    labels, rows = [], []
    for name in corruptions.list_corruptions(PRESET):
        corr = corruptions.get_corruption(name, PRESET)
        cells = []
        for severity in range(corr.max_severity + 1):
            out = corr(patches, severity, generator=corr.sample_generators(seed, ids, severity)).numpy()
            gap = np.ones((size, 2, 3))
            cells.append(np.concatenate([out[0].transpose(1, 2, 0), gap, out[1].transpose(1, 2, 0)], axis=1))
        labels.append(f"{name}\n{_short(corr.parameter(corr.max_severity))} at 4")
        rows.append(cells)
    return labels, rows


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return ", ".join(f"{k} {v:g}" for k, v in dict(value).items())


def draw(labels: list[str], rows: list[list[np.ndarray]], out: Path) -> None:
    """Save the grid as a palette PNG at ``out``."""
    columns = len(rows[0])
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.9 * columns + 1.2, 1.0 * len(rows) + 0.4), dpi=100)
    for r, (label, cells) in enumerate(zip(labels, rows)):
        for c, cell in enumerate(cells):
            axis = axes[r, c]
            axis.imshow(np.clip(cell, 0, 1), interpolation="nearest")
            axis.set_xticks([]), axis.set_yticks([])
            if r == 0:
                axis.set_title("clean" if c == 0 else f"severity {c}", fontsize=9)
            if c == 0:
                axis.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    figure.suptitle("slide-artefacts preset: H&E-like | IHC patch (96 px, corrupted at native size)", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".rgba.png")
    figure.savefig(temporary)
    plt.close(figure)
    with Image.open(temporary) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    temporary.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/slide-artefacts-gallery.png"), help="PNG to write")
    parser.add_argument("--size", type=int, default=96, help="patch side in px (default 96)")
    parser.add_argument("--seed", type=int, default=0, help="run seed of the per-sample generators (default 0)")
    arguments = parser.parse_args(argv)
    labels, rows = gallery_cells(arguments.size, arguments.seed)
    draw(labels, rows, arguments.out)
    print(f"wrote {arguments.out} ({arguments.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
