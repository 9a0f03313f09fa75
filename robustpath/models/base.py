"""The Encoder contract every model adapter satisfies.

Preprocessing is exposed as data (geometry + normalisation), never as an opaque
transform, so that corruptions can act on float images in [0, 1] before the
model's resize ("pre") or after it ("post"), and always before normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

RESIZE_MODES = ("bicubic", "bilinear", "nearest", "area")
CROP_MODES = ("center", "none")


@dataclass(frozen=True)
class Preprocessing:
    """How an image in [0, 1] becomes a model input.

    ``resize_mode`` is the interpolation used to scale the shorter side to
    ``resize_size`` (default: the larger side of ``input_size``), or the whole
    image to ``input_size`` when ``crop`` is "none"; ``crop`` "center" then takes
    the central ``input_size`` region, as CLIP-style pipelines do (DINOv2 and timm
    models with crop_pct < 1 resize to e.g. 256 and crop 224).
    """

    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "bicubic"
    crop: str = "center"
    resize_size: int | None = None

    def __post_init__(self) -> None:
        if self.resize_size is not None and (self.crop != "center" or self.resize_size < max(self.input_size)):
            raise ValueError(
                f"resize_size ({self.resize_size}) needs crop 'center' and must be >= the input size {self.input_size}"
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    def as_dict(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_mode": self.resize_mode,
            "crop": self.crop,
            "resize_size": self.resize_size,
        }


@runtime_checkable
class Encoder(Protocol):
    """An image (and optionally text) encoder with declared preprocessing.

    ``encode_image`` takes normalised images (B, 3, H, W) float on the model's
    device, with (H, W) == ``preprocessing.input_size``, and returns (B, D) float
    embeddings on the same device.  ``encode_text`` (vision-language models only)
    returns (T, D).  ``describe()`` gives the facts recorded in run.json.
    """

    name: str
    embed_dim: int
    preprocessing: Preprocessing
    has_text: bool

    def to(self, device: "torch.device") -> "Encoder": ...

    def encode_image(self, images: "torch.Tensor") -> "torch.Tensor": ...

    def encode_text(self, texts: list[str]) -> "torch.Tensor": ...

    def describe(self) -> dict: ...


@dataclass
class EncoderInfo:
    """Facts about a loaded encoder for run.json: source, weights digest, sizes."""

    source: str
    spec: str
    weights_digest: str
    extra: dict = field(default_factory=dict)
