"""Lossy JPEG compression, bit-exact with Pillow (libjpeg-turbo), run on the CPU.

``jpeg(x, quality)`` rounds x (B, 3, H, W) in [0, 1] to 8 bits (x * 255, halves to
even), encodes each image with ``PIL.Image.save(format="JPEG", quality=q)`` at
Pillow's defaults (baseline, YCbCr with 4:2:0 chroma subsampling, the standard
quantisation tables scaled by q), decodes it again and returns it as x.dtype on
x.device, in [0, 1]. The bytes are exactly Pillow's, so the pixels are exactly
what any libjpeg-turbo decoder shows for that file.

Slide scanners store their tiles as JPEG (Aperio SVS "JPEG/RGB Q=70", Hamamatsu
NDPI quality 80 by default) at the native resolution, so this corruption belongs
before any resize (stage "pre").

No GPU codec is bit-exact with libjpeg-turbo, so the batch is copied to the host
once, its images are encoded and decoded by a pool of threads (Pillow releases the
GIL while it codes), and the result is copied back once (from pinned memory,
without blocking, on CUDA). The copy to the host waits for the work already queued
on that batch; nothing else on the device waits for the codec.
"""
from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from corruptions.registry import register_operation
from corruptions.values import Field, field_ranges, read_value

QUALITY = {"quality": Field(1.0, 100.0, whole=True)}
MAX_THREADS = 8

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """The JPEG file Pillow writes for ``image`` (H, W, 3) uint8 at ``quality`` with its default settings."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (H, W, 3) uint8 encoded by :func:`jpeg_bytes` and decoded by Pillow, (H, W, 3) uint8."""
    with Image.open(io.BytesIO(jpeg_bytes(image, quality))) as decoded:
        return np.asarray(decoded.convert("RGB"))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=min(MAX_THREADS, os.cpu_count() or 1), thread_name_prefix="jpeg")
        return _POOL


def to_bytes_per_channel(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] on any device -> (B, H, W, 3) uint8 numpy: round(x * 255), halves to even."""
    return (x.detach() * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


@register_operation(
    "jpeg",
    parameter="quality",
    unit="JPEG quality 1-100 (Pillow / libjpeg-turbo scale; 100 = least loss)",
    description="Encode and decode as JPEG with Pillow's defaults (YCbCr 4:2:0) at a quality; on the CPU.",
    ranges=field_ranges(QUALITY, quality=100.0),  # lower quality is further from the clean image
)
def jpeg(x: torch.Tensor, quality: float, *, generator=None) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] as a JPEG of ``quality`` shows it; same shape, dtype, device, values k / 255."""
    level = int(read_value("jpeg", quality, QUALITY)["quality"])
    if x.shape[0] == 0:
        return x
    images = to_bytes_per_channel(x)
    decoded = np.stack(list(_pool().map(lambda image: jpeg_round_trip(image, level), images)))
    out = torch.from_numpy(decoded).permute(0, 3, 1, 2)
    if x.device.type == "cuda":
        out = out.pin_memory()
    return out.to(device=x.device, non_blocking=True).to(x.dtype).div_(255.0)
