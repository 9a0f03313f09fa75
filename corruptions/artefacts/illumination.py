"""Uneven illumination: a smooth multiplicative field of light over the tile.

The lamp and the optics of a scanner light the field of view unevenly (vignetting:
darker away from the optical centre), and tiles keep that shading. Modelled as a
radial fall-off from a random centre, scaled to the image:

    field = 1 - amplitude * g,   g = (d^2 - min d^2) / (max d^2 - min d^2) over the image,

d the distance of each pixel centre from the centre (cx, cy) = ((2 u0 - 0.5) W,
(2 u1 - 0.5) H), from 2 uniform numbers of the sample's generator (the centre may lie
outside the image, which then sees a gradient). The field's brightest pixel is 1 and
its darkest exactly 1 - amplitude, whatever the image size; a 1 x 1 image is unchanged.
All channels are multiplied by the field (x <- x * field), white glass included.
Severities share the centre and only the amplitude grows (nested).
"""
from __future__ import annotations

import torch

from corruptions.artefacts.geometry import distance_to_points
from corruptions.registry import register_operation
from corruptions.values import Field, field_ranges, read_random_value

AMPLITUDE = {"amplitude": Field(0.0, 1.0)}


def illumination_field(uniform: torch.Tensor, amplitude: float, height: int, width: int,
                       *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(B, 1, H, W) field in [1 - amplitude, 1]; uniform (B, 2) float64 places the centre."""
    centres = torch.stack([(2 * uniform[:, 0] - 0.5) * width, (2 * uniform[:, 1] - 0.5) * height], dim=1)
    squared = distance_to_points(centres.to(device), height, width, torch.float64).square()
    low = squared.amin(dim=(1, 2), keepdim=True)
    span = squared.amax(dim=(1, 2), keepdim=True) - low
    shape = torch.where(span > 0, (squared - low) / span.clamp_min(1e-300), torch.zeros_like(squared))
    return (1.0 - amplitude * shape).to(dtype).unsqueeze(1)


@register_operation(
    "illumination",
    parameter="amplitude",
    unit="fraction of the light lost at the darkest pixel of the field (0 = clean); the brightest keeps all",
    description="Uneven illumination: a radial fall-off of light from a random centre, multiplied over the tile.",
    random=True,
    nested=True,
    ranges=field_ranges(AMPLITUDE, amplitude=0.0),
)
def illumination(x: torch.Tensor, amplitude: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] times a smooth field from 1 down to 1 - ``amplitude``; same shape, dtype, device."""
    batch, _, height, width = x.shape
    parameters, uniform = read_random_value("illumination", amplitude, AMPLITUDE, generator, batch, 2)
    amplitude = parameters["amplitude"]
    if amplitude == 0.0 or batch == 0:
        return x
    return x * illumination_field(uniform, amplitude, height, width, dtype=x.dtype, device=x.device)
