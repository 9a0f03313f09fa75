"""Device choice, the precision used on it, and deterministic mode."""
from __future__ import annotations

import os
from contextlib import contextmanager

from robustpath.errors import UsageError, unknown_name_message


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
    from robustpath.spec.run_spec import DEVICES

    raise UsageError(unknown_name_message("device", name, DEVICES))


def autocast_dtype(device):
    """Mixed precision on CUDA only (bf16 where supported, else fp16); None = fp32.

    On CPU, bf16 autocast is several times slower than fp32, so CPU stays fp32.
    """
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextmanager
def deterministic_mode(seed: int):
    """Deterministic torch for the duration of a run; yields the settings made (for run.json).

    torch.use_deterministic_algorithms (an operation without a deterministic version
    raises instead of running), cuDNN deterministic without benchmarking, no TF32,
    CUBLAS_WORKSPACE_CONFIG=:4096:8 unless set, and torch seeded with ``seed``.  The
    previous settings are restored afterwards (the environment variable stays).
    """
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (
        torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=False)
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = True, False, False, False
    torch.manual_seed(seed)
    try:
        yield {
            "use_deterministic_algorithms": True, "cudnn_deterministic": True, "cudnn_benchmark": False,
            "tf32": False, "CUBLAS_WORKSPACE_CONFIG": os.environ["CUBLAS_WORKSPACE_CONFIG"],
            "torch_seed": seed, "amp": False, "compile": False,
        }
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before[2:]
