"""Stain variation between laboratories, in optical density by colour deconvolution.

Light through a stained section follows Beer-Lambert: the optical density
OD = -ln(I) of each RGB channel is a sum of stain concentrations times the
stain's OD vector. With Ruifrok & Johnston's vectors for haematoxylin, eosin and
DAB (the rows of :data:`RGB_FROM_HED`, scikit-image's ``rgb_from_hed``),
concentrations are C = OD @ inv(M) and the image is exp(-C @ M) again
(``skimage.color.rgb2hed`` / ``hed2rgb``, in natural-log OD without their 1/ln(1e-6)
scaling and without clipping C at 0, so that the round trip is the identity).
Glass (I = 1) has OD 0: it stays white under any change of the stains.

* ``stain_concentration`` {scale, shift}: each stain's concentration is multiplied
  by ``scale`` or divided by it (over- or under-staining), and ``shift`` OD is added
  to or removed from it in tissue (removing never more than the stain present).
* ``stain_vector`` (degrees): each stain's OD vector is rotated by the angle in the
  plane it spans with a partner stain (haematoxylin with eosin, eosin and DAB with
  haematoxylin): towards the partner (a pinker, purple haematoxylin) or away from it
  (a bluer haematoxylin). Negative absorbances are set to 0 and the vector keeps its
  length.

Directions are random per sample and stain (one uniform number per stain: below 0.5
means less stain or a turn away from the partner), drawn from the sample's
generator, and the same at every severity: a larger value moves the same way
further, so severities are nested. Per-sample 3x3 matrices are built on the CPU in
float64; the per-pixel work is elementwise on the images' device.
"""
from __future__ import annotations

import math

import torch

from corruptions.randomness import draw_uniform
from corruptions.registry import register_operation
from corruptions.values import Field, field_defaults, field_ranges, read_value

RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
PARTNERS = (1, 0, 0)  # the stain each one turns towards or away from: H with E, E with H, DAB with H
LIGHT_FLOOR = 1e-6  # as scikit-image: intensities below it count as 1e-6 (OD 13.8)
GLASS_OD, TISSUE_OD = 0.2, 0.8  # OD summed over R, G, B: below the first glass, above the second tissue
CONCENTRATION_FIELDS = {"scale": Field(1.0, 20.0), "shift": Field(0.0, 2.0, default=0.0)}
VECTOR_FIELDS = {"angle": Field(0.0, 45.0)}


def optical_density(x: torch.Tensor) -> torch.Tensor:
    """-ln(max(x, 1e-6)), same shape, dtype and device as x (a new tensor)."""
    return x.clamp_min(LIGHT_FLOOR).log_().neg_()


def transmitted_light(density: torch.Tensor) -> torch.Tensor:
    """exp(-density) clipped to [0, 1], computed in place on ``density``."""
    return density.neg_().exp_().clamp_(0.0, 1.0)


def mix_channels(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """out[b, e] = sum_d x[b, d] * matrices[b, d, e] for x (B, 3, H, W) and matrices (B or 1, 3, 3).

    Three elementwise multiply-adds per channel, so each image's result does not
    depend on the rest of the batch.
    """
    matrices = matrices.to(dtype=x.dtype, device=x.device)
    out = x[:, 0:1] * matrices[:, 0].view(-1, 3, 1, 1)
    out.addcmul_(x[:, 1:2], matrices[:, 1].view(-1, 3, 1, 1))
    return out.addcmul_(x[:, 2:3], matrices[:, 2].view(-1, 3, 1, 1))


def stain_signs(generator, batch: int) -> torch.Tensor:
    """(batch, 3) float64 of -1 / +1 per sample and stain (H, E, DAB), one uniform number each."""
    return torch.where(draw_uniform(generator, batch, 3) < 0.5, -1.0, 1.0)


def rotated_stain_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) float64: the rows of RGB_FROM_HED turned by ``angles`` (B, 3) radians towards their partners.

    Each row v turns in the plane of v and its partner p: cos(a) v/|v| + sin(a) u, u
    the unit vector of p orthogonal to v; negative components are set to 0 and the
    row is scaled back to |v|.
    """
    rows = []
    for stain, partner in enumerate(PARTNERS):
        vector, other = RGB_FROM_HED[stain], RGB_FROM_HED[partner]
        length = vector.norm()
        unit = vector / length
        orthogonal = other - (other @ unit) * unit
        orthogonal = orthogonal / orthogonal.norm()
        angle = angles[:, stain : stain + 1]
        turned = (torch.cos(angle) * unit + torch.sin(angle) * orthogonal).clamp_min(0.0)
        rows.append(turned / turned.norm(dim=1, keepdim=True) * length)
    return torch.stack(rows, dim=1)


@register_operation(
    "stain_concentration",
    parameter="scale, shift",
    unit="scale: factor each stain's concentration is multiplied or divided by (1 = clean); "
    "shift: optical density (natural log) added to or removed from each stain in tissue",
    description="Over- or under-staining of haematoxylin, eosin and DAB by colour deconvolution; glass stays white.",
    random=True,
    nested=True,
    fields=field_defaults(CONCENTRATION_FIELDS),
    accepts_number=False,  # a severity is a table {scale, shift}
    ranges=field_ranges(CONCENTRATION_FIELDS, scale=1.0, shift=0.0),
)
def stain_concentration(x: torch.Tensor, value, *, generator=None) -> torch.Tensor:
    """Scale (and shift) the H, E and DAB concentrations of x (B, 3, H, W) in [0, 1]; same shape, dtype, device.

    Per sample and stain a sign s (from the generator): C <- C * scale**s + s * shift * w,
    w in [0, 1] the tissue weight (0 where the OD summed over channels is below
    GLASS_OD, 1 above TISSUE_OD, linear between); a negative shift never takes a
    concentration below min(C * scale**s, 0).
    """
    parameters = read_value("stain_concentration", value, CONCENTRATION_FIELDS)
    scale, shift = parameters["scale"], parameters["shift"]
    signs = stain_signs(generator, x.shape[0])
    if (scale == 1.0 and shift == 0.0) or x.shape[0] == 0:
        return x
    return scale_stains(x, scale**signs, shift * signs)


def scale_stains(x: torch.Tensor, factors: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] with C <- C * factors + shifts * w per sample and stain; factors, shifts (B, 3).

    w is the tissue weight (see :func:`stain_concentration`); a negative shift never
    takes a concentration below min(C * factor, 0). Same shape, dtype, device, in [0, 1].
    """
    density = optical_density(x)
    scaling = HED_FROM_RGB.unsqueeze(0) * factors.to(torch.float64).unsqueeze(1)  # (B, 3, 3): deconvolve, then scale
    if not bool((shifts != 0).any()):  # one matrix from optical density to optical density
        return transmitted_light(mix_channels(density, scaling @ RGB_FROM_HED))
    scaled = mix_channels(density, scaling)  # (B, 3, H, W) concentrations, scaled
    tissue = density.sum(dim=1, keepdim=True).sub_(GLASS_OD).div_(TISSUE_OD - GLASS_OD).clamp_(0.0, 1.0)
    floor = scaled.clamp(max=0.0)
    scaled.addcmul_(shifts.to(dtype=x.dtype, device=x.device).view(-1, 3, 1, 1), tissue)
    torch.maximum(scaled, floor, out=scaled)
    return transmitted_light(mix_channels(scaled, RGB_FROM_HED.unsqueeze(0)))


@register_operation(
    "stain_vector",
    parameter="angle",
    unit="degrees each stain's optical-density vector turns towards or away from its partner stain",
    description="Stain hue: haematoxylin, eosin and DAB vectors rotated in optical density; glass stays white.",
    random=True,
    nested=True,
    ranges=field_ranges(VECTOR_FIELDS, angle=0.0),
)
def stain_vector(x: torch.Tensor, value, *, generator=None) -> torch.Tensor:
    """Turn the stain vectors of x (B, 3, H, W) in [0, 1] by ``angle`` degrees; same shape, dtype, device.

    OD <- OD @ inv(M) @ M_b, M_b the stain matrix with each row turned by s * angle
    (s = -1 / +1 per sample and stain, from the generator), see :func:`rotated_stain_matrix`.
    """
    angle = read_value("stain_vector", value, VECTOR_FIELDS)["angle"]
    signs = stain_signs(generator, x.shape[0])
    if angle == 0.0 or x.shape[0] == 0:
        return x
    return turn_stains(x, signs * math.radians(angle))


def turn_stains(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] recomposed with the stain vectors turned by ``angles`` (B, 3) radians."""
    matrices = HED_FROM_RGB @ rotated_stain_matrix(angles.to(torch.float64))
    return transmitted_light(mix_channels(optical_density(x), matrices))
