"""Batched model geometry and normalisation on float images in [0, 1]."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from robustpath.models.base import Preprocessing


def resize_to_input(images: "torch.Tensor", prep: "Preprocessing") -> "torch.Tensor":
    """Resize (and centre-crop) images to the model's input size.

    images: (B, 3, H, W) float in [0, 1], any device. Returns (B, 3, h, w) with
    (h, w) == prep.input_size, clamped to [0, 1] (bicubic overshoots).
    Downscaling is antialiased, as PIL's resize is.  Same size in and out is a
    no-op (the tensor is returned unchanged).
    """
    import torch.nn.functional as F

    out_h, out_w = prep.input_size
    h, w = images.shape[-2:]
    if (h, w) == (out_h, out_w) and prep.resize_size in (None, max(out_h, out_w)):
        return images
    if prep.crop == "center":
        # shorter side to the larger output side, longer side truncated (torchvision's Resize(int))
        target = prep.resize_size or max(out_h, out_w)
        if h <= w:
            new_h, new_w = target, max(out_w, int(target * w / h))
        else:
            new_h, new_w = max(out_h, int(target * h / w)), target
    else:
        new_h, new_w = out_h, out_w
    if (new_h, new_w) != (h, w):
        mode = prep.resize_mode
        kwargs = {} if mode in ("nearest", "area") else {"align_corners": False, "antialias": True}
        images = F.interpolate(images, size=(new_h, new_w), mode=mode, **kwargs)
        if mode == "bicubic":
            images = images.clamp(0.0, 1.0)
    if (new_h, new_w) != (out_h, out_w):
        top = int(round((new_h - out_h) / 2.0))
        left = int(round((new_w - out_w) / 2.0))
        images = images[..., top : top + out_h, left : left + out_w]
    return images


def normalise(images: "torch.Tensor", prep: "Preprocessing") -> "torch.Tensor":
    """(x - mean) / std per channel; images (B, 3, H, W) float in [0, 1]."""
    import torch

    mean = torch.tensor(prep.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
