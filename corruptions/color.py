"""RGB <-> HSV for batched tensors, with the conventions of scikit-image.

Both functions take and return float tensors (B, 3, H, W) in [0, 1] on any
device; hue is a fraction of the colour circle in [0, 1). Grey pixels (max ==
min) get hue 0 and saturation 0, black pixels saturation 0, as in
``skimage.color.rgb2hsv``.
"""
from __future__ import annotations

import torch


def hue_from_rgb(rgb: torch.Tensor, value: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Hue (B, 1, H, W) in [0, 1) of rgb (B, 3, H, W); ``value`` = max and ``chroma`` = max - min over channels.

    Grey pixels (chroma 0) get hue 0, as in scikit-image.
    """
    red, green, blue = rgb.unbind(dim=1)
    value, chroma = value[:, 0], chroma[:, 0]
    is_grey = chroma == 0
    safe_chroma = torch.where(is_grey, torch.ones_like(chroma), chroma)
    # Later cases win ties, as in scikit-image (ties give the same hue anyway).
    hue = (green - blue) / safe_chroma
    hue = torch.where(green == value, 2.0 + (blue - red) / safe_chroma, hue)
    hue = torch.where(blue == value, 4.0 + (red - green) / safe_chroma, hue)
    hue = torch.remainder(hue / 6.0, 1.0)
    return torch.where(is_grey, torch.zeros_like(hue), hue).unsqueeze(1)


def rgb_from_hue(hue: torch.Tensor, value: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB from hue, value and chroma = value * saturation, each (B, 1, H, W).

    Branch-free form of the sector formula: channel n = V - C * clamp(min(k, 4 - k), 0, 1)
    with k = (n + 6 * H) mod 6 and n = 5, 3, 1 for red, green, blue.
    """
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device).view(1, 3, 1, 1)
    k = torch.remainder(offsets + 6.0 * hue, 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return value - chroma * ramp


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) HSV, channels (hue, saturation, value)."""
    value = rgb.amax(dim=1, keepdim=True)
    chroma = value - rgb.amin(dim=1, keepdim=True)
    saturation = torch.where(chroma == 0, torch.zeros_like(chroma), chroma / torch.where(value == 0, torch.ones_like(value), value))
    return torch.cat([hue_from_rgb(rgb, value, chroma), saturation, value], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) HSV (hue as a fraction of the circle) -> (B, 3, H, W) RGB in [0, 1]."""
    hue, saturation, value = hsv.split(1, dim=1)
    return rgb_from_hue(hue, value, value * saturation)
