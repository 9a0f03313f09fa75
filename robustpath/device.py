"""Device choice and the precision used on it."""
from __future__ import annotations

from robustpath.errors import UsageError


def resolve_device(name: str):
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is a usage error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was requested but no CUDA device is available; use --device cpu or auto")
        return torch.device(name)
    raise UsageError(f"--device must be auto, cpu or cuda, got '{name}'")


def autocast_dtype(device):
    """Mixed precision on CUDA only (bf16 where supported, else fp16); None = fp32.

    On CPU, bf16 autocast is several times slower than fp32, so CPU stays fp32.
    """
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
