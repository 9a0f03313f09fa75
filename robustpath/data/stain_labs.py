"""demo-ihc as if stained in three laboratories: a small multi-group dataset with pairs.

Every demo-ihc patch is rendered once per laboratory with that laboratory's fixed
stain transform (the same for every patch), built from the corruptions package's
colour-deconvolution operations (``corruptions.stain``):

| group | transform |
|---|---|
| lab-a | none (the demo image as scanned: the reference laboratory) |
| lab-b | stain concentrations × (1.3, 1.0, 0.75) for (haematoxylin, eosin, DAB): more haematoxylin, less DAB |
| lab-c | stain vectors turned by (+8°, 0°, −10°) towards / away from their partner stains, then concentrations × (0.85, 1.0, 1.2) |

The three renderings of a patch share its pair_id (the demo sample id) and class,
and keep demo-ihc's fixed train/test split (so the shipped customvit-demo, trained
on that training split, never saw a test tissue).  The files are written as
``ROOT/group=<lab>/<class>/<pair>.png`` (the group folder layout of
robustpath.data.folder) with ``ROOT/demo-ihc-labs.csv`` (path,label,split,group,pair_id).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

LABS: dict[str, dict[str, tuple[float, float, float]]] = {
    "lab-a": {"factors": (1.0, 1.0, 1.0), "angles": (0.0, 0.0, 0.0)},
    "lab-b": {"factors": (1.3, 1.0, 0.75), "angles": (0.0, 0.0, 0.0)},
    "lab-c": {"factors": (0.85, 1.0, 1.2), "angles": (8.0, 0.0, -10.0)},
}
MANIFEST_NAME = "demo-ihc-labs.csv"


def render_lab(images: np.ndarray, lab: str) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → the same images as stained in ``lab`` (N, H, W, 3) uint8."""
    import torch

    from corruptions.stain import scale_stains, turn_stains

    settings = LABS[lab]
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float64) / 255.0
    count = x.shape[0]
    angles = torch.tensor([math.radians(a) for a in settings["angles"]], dtype=torch.float64).expand(count, 3)
    if bool((angles != 0).any()):
        x = turn_stains(x, angles)
    factors = torch.tensor(settings["factors"], dtype=torch.float64).expand(count, 3)
    if bool((factors != 1).any()):
        x = scale_stains(x, factors, torch.zeros(count, 3, dtype=torch.float64))
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_stain_lab_dataset(root: Path, *, per_class: int | None = None) -> Path:
    """Write the three-laboratory demo under ``root`` → the manifest's path.

    per_class: keep the first N patches of each class and split (None: all 400).
    Files are written atomically; an existing dataset there is replaced file by file.
    """
    from PIL import Image

    from robustpath.util.atomic import write_bytes_atomic, write_text_atomic
    from robustpath.data.demo import load_demo_dataset

    demo = load_demo_dataset()
    chosen = _chosen_indices(demo, per_class)
    images = np.stack([demo.read_image(int(i)) for i in chosen])
    root = Path(root)
    rows = []
    for lab in LABS:
        rendered = render_lab(images, lab)
        for image, index in zip(rendered, chosen):
            pair = demo.sample_ids[index].split("/")[-1]
            label = demo.classes[demo.labels[index]]
            relative = Path(f"group={lab}") / label / f"{pair}.png"
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            write_bytes_atomic(root / relative, buffer.getvalue())
            rows.append([relative.as_posix(), label, str(demo.splits[index]), lab, pair])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "split", "group", "pair_id"])
    writer.writerows(rows)
    return write_text_atomic(root / MANIFEST_NAME, text.getvalue())


def _chosen_indices(demo, per_class: int | None) -> list[int]:
    if per_class is None:
        return list(range(len(demo)))
    chosen = []
    for label in range(len(demo.classes)):
        for split in ("train", "test"):
            members = np.flatnonzero((demo.labels == label) & (demo.splits == split))
            chosen += members[:per_class].tolist()
    return sorted(chosen)
