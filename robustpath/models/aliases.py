"""Model aliases: short names for checkpoints the pathology robustness literature uses.

Each alias is a spec plus the adapter options its weights need (e.g. QuickGELU
for weights trained with OpenAI's activation).  Licences are those stated on
the model cards; "gated" means the Hub asks you to accept terms and set HF_TOKEN.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_MODEL = "customvit-demo"
_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelAlias:
    """A named model: ``spec`` is loaded with ``options`` (adapter keyword arguments)."""

    name: str
    spec: str
    licence: str
    gated: bool
    description: str
    options: tuple[tuple[str, object], ...] = ()
    supported: bool = True
    install_hint: str = ""

    @property
    def source(self) -> str:
        """The source part of the spec (customvit, open_clip, hf, timm, …)."""
        return self.spec.partition(":")[0]


_DINOV2 = tuple(
    ModelAlias(
        f"dinov2-{size}", f"hf:facebook/dinov2-{size}", "Apache-2.0", False,
        f"DINOv2 ViT-{letter}/14 (Meta, self-supervised on LVD-142M); image only, CLS token by default",
    )
    for size, letter in (("small", "S"), ("base", "B"), ("large", "L"), ("giant", "g"))
)

ALIASES: tuple[ModelAlias, ...] = (
    ModelAlias(
        DEMO_MODEL, f"customvit:{_PACKAGE_DIR / 'checkpoints' / DEMO_MODEL}", "same as robustpath", False,
        "CustomViT (40 px, patch 4) trained from scratch on demo-ihc; ships with robustpath",
    ),
    ModelAlias(
        "pathclip", "open_clip:ViT-B-16@hf-hub:jamessyx/pathclip/pathclip-base.pt", "CC-BY-NC-4.0", False,
        "PathCLIP (Sun et al.): open_clip ViT-B-16 fine-tuned on pathology image-text pairs; QuickGELU",
        options=(("quick_gelu", True),),
    ),
    ModelAlias(
        "plip", "hf:vinid/plip", "see model card (research use)", False,
        "PLIP (Huang et al., Nature Medicine 2023): CLIP ViT-B/32 fine-tuned on OpenPath (Twitter)",
    ),
    ModelAlias(
        "openai-clip", "open_clip:ViT-B-16@openai", "MIT", False,
        "OpenAI CLIP ViT-B/16 (QuickGELU, as trained)", options=(("quick_gelu", True),),
    ),
    ModelAlias(
        "openai-clip-b32", "open_clip:ViT-B-32@openai", "MIT", False,
        "OpenAI CLIP ViT-B/32 (QuickGELU, as trained)", options=(("quick_gelu", True),),
    ),
    ModelAlias(
        "quiltnet", "open_clip:hf-hub:wisdomik/QuiltNet-B-32", "MIT", False,
        "QuiltNet-B-32 (Ikezogwo et al., NeurIPS 2023): CLIP ViT-B/32 trained on Quilt-1M",
    ),
    *_DINOV2,
    ModelAlias(
        "uni", "timm:hf-hub:MahmoodLab/UNI", "CC-BY-NC-ND-4.0", True,
        "UNI (Chen et al., Nature Medicine 2024): ViT-L/16 DINOv2-trained on 100M H&E patches; image only",
        options=(("model_kwargs", (("init_values", 1e-5), ("dynamic_img_size", True))),),
    ),
    ModelAlias(
        "conch", "conch:hf-hub:MahmoodLab/CONCH", "CC-BY-NC-ND-4.0", True,
        "CONCH (Lu et al., Nature Medicine 2024): CoCa ViT-B/16 vision-language model for pathology",
        supported=False,
        install_hint=("CONCH is not supported yet: it needs MahmoodLab's `conch` package "
                      "(pip install git+https://github.com/mahmoodlab/CONCH.git), which robustpath does not wrap"),
    ),
)
