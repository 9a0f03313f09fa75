"""RGB <-> HSV for batched tensors, with the conventions of scikit-image.

Both functions take and return float tensors (B, 3, H, W) in [0, 1] on any
device; hue is a fraction of the colour circle in [0, 1). Grey pixels (max ==
min) get hue 0 and saturation 0, black pixels saturation 0, as in
``skimage.color.rgb2hsv``.
"""
from __future__ import annotations

import torch


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) HSV, channels (hue, saturation, value)."""
    red, green, blue = rgb.unbind(dim=1)
    value, _ = rgb.max(dim=1)
    minimum, _ = rgb.min(dim=1)
    delta = value - minimum
    is_grey = delta == 0
    safe_delta = torch.where(is_grey, torch.ones_like(delta), delta)
    saturation = torch.where(is_grey, torch.zeros_like(delta), delta / torch.where(value == 0, torch.ones_like(value), value))
    # Later cases win ties, as in scikit-image (ties give the same hue anyway).
    hue = (green - blue) / safe_delta
    hue = torch.where(green == value, 2.0 + (blue - red) / safe_delta, hue)
    hue = torch.where(blue == value, 4.0 + (red - green) / safe_delta, hue)
    hue = torch.remainder(hue / 6.0, 1.0)
    hue = torch.where(is_grey, torch.zeros_like(hue), hue)
    return torch.stack([hue, saturation, value], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) HSV (hue as a fraction of the circle) -> (B, 3, H, W) RGB in [0, 1].

    Branch-free form of the sector formula: channel n = V - V*S*clamp(min(k, 4-k), 0, 1)
    with k = (n + 6*H) mod 6 and n = 5, 3, 1 for red, green, blue.
    """
    hue, saturation, value = hsv.unbind(dim=1)
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(1, 3, 1, 1)
    k = torch.remainder(offsets + 6.0 * hue.unsqueeze(1), 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return value.unsqueeze(1) * (1.0 - saturation.unsqueeze(1) * ramp)
