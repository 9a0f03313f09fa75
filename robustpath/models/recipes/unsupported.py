"""Leaderboard models whose code robustpath cannot load from a package registry (yet).

Each stays an alias so that ``robustpath models`` lists it and loading it says, in one
line, what is missing.  Facts from the cards:
- CONCH (https://huggingface.co/MahmoodLab/CONCH) and CONCH v1.5
  (https://huggingface.co/MahmoodLab/conchv1_5): need MahmoodLab's ``conch`` package,
  installed from GitHub (not on PyPI); v1.5 ships through TITAN's repository code.
- MUSK (https://huggingface.co/xiangjx/musk): needs the authors' ``musk`` package from
  GitHub (the ``musk`` on PyPI is an unrelated project) and ``fairscale``.
- KEEP (https://huggingface.co/Astaxanthin/KEEP): a vision-language model whose image and
  text encoders are repository code with their own API, which robustpath does not wrap.
- GPFM (https://huggingface.co/majiabo/GPFM): a raw DINOv2 training checkpoint
  (``GPFM.pth``) for the authors' own code, with no timm or transformers layout.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class UnsupportedModel:
    alias: str
    title: str
    repo: str
    licence: str
    gated: bool
    card: str
    missing: str  # what is missing, and what would install it


UNSUPPORTED = (
    UnsupportedModel(
        "conch", "CONCH (Lu et al., Nature Medicine 2024): CoCa ViT-B/16 vision-language model for pathology",
        "MahmoodLab/CONCH", "CC-BY-NC-ND-4.0", True, "https://huggingface.co/MahmoodLab/CONCH",
        "CONCH is not supported yet: it needs MahmoodLab's `conch` package "
        "(pip install git+https://github.com/mahmoodlab/CONCH.git; not on PyPI), which robustpath does not wrap"),
    UnsupportedModel(
        "conch-v1.5", "CONCH v1.5 (MahmoodLab, 2024): ViT-L/16 at 448 px, the patch encoder of TITAN",
        "MahmoodLab/conchv1_5", "CC-BY-NC-ND-4.0", True, "https://huggingface.co/MahmoodLab/conchv1_5",
        "CONCH v1.5 is not supported yet: it needs TITAN's repository code (trust_remote_code) or MahmoodLab's "
        "`conch` package (pip install git+https://github.com/mahmoodlab/CONCH.git; not on PyPI)"),
    UnsupportedModel(
        "musk", "MUSK (Xiang et al., Nature 2025): BEiT-3-style vision-language model, 384 px",
        "xiangjx/musk", "CC-BY-NC-ND-4.0", True, "https://huggingface.co/xiangjx/musk",
        "MUSK is not supported yet: it needs the authors' `musk` package and fairscale "
        "(pip install fairscale git+https://github.com/lilab-stanford/MUSK; the `musk` on PyPI is another project)"),
    UnsupportedModel(
        "keep", "KEEP (Zhou et al., 2024): knowledge-enhanced pathology vision-language model",
        "Astaxanthin/KEEP", "see the card", False, "https://huggingface.co/Astaxanthin/KEEP",
        "KEEP is not supported yet: its encoders are repository code with their own API "
        "(no package on PyPI), which robustpath does not wrap"),
    UnsupportedModel(
        "gpfm", "GPFM (Ma et al., 2024): generalizable pathology foundation model, DINOv2 ViT-L/14",
        "majiabo/GPFM", "see the card", False, "https://huggingface.co/majiabo/GPFM",
        "GPFM is not supported yet: its card ships a raw DINOv2 training checkpoint (GPFM.pth) for the authors' "
        "own code (github.com/birkhoffkiki/GPFM, not on PyPI), with no timm or transformers layout"),
)
