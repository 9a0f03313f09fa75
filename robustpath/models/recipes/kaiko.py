"""kaiko.ai's ViTs (towards_large_pathology_fms, timm ports by 1aurent) and Midnight-12k (transformers).

Kaiko cards: https://huggingface.co/1aurent/vit_small_patch16_224.kaiko_ai_towards_large_pathology_fms
(and the vits8, vitb16, vitb8, vitl14 siblings; models from
https://github.com/kaiko-ai/towards_large_pathology_fms): ``timm.create_model(
"hf-hub:1aurent/<arch>.kaiko_ai_towards_large_pathology_fms", dynamic_img_size=True,
pretrained=True)``; transform Resize(224), CenterCrop(224), mean = std = (0.5, 0.5, 0.5);
embedding ``model(x)``, the class token.  The ViT-L/14 keeps DINOv2's 518 px position grid
(``img_size=518``), interpolated to 224 px inputs by ``dynamic_img_size``.

Midnight-12k card: https://huggingface.co/kaiko-ai/midnight: ``AutoModel.from_pretrained(
"kaiko-ai/midnight")`` (a DINOv2 ViT-g/14 with a SwiGLU FFN); same transform; for
classification the card concatenates the class token with the mean of the patch tokens of
``last_hidden_state`` (3072-d).
"""
from robustpath.models.recipes.base import HALF, Recipe, square

_KAIKO = square(224, HALF, HALF, resize_mode="bilinear")
_FAMILY = (  # alias suffix, timm architecture, width, prefix tokens, description
    ("vits16", "vit_small_patch16_224", 384, 1, "ViT-S/16"),
    ("vits8", "vit_small_patch8_224", 384, 1, "ViT-S/8"),
    ("vitb16", "vit_base_patch16_224", 768, 1, "ViT-B/16"),
    ("vitb8", "vit_base_patch8_224", 768, 1, "ViT-B/8"),
    ("vitl14", "vit_large_patch14_reg4_dinov2", 1024, 5, "ViT-L/14 with 4 registers"),
)


def _kaiko(suffix: str, architecture: str, width: int, prefix: int, description: str) -> Recipe:
    repo = f"1aurent/{architecture}.kaiko_ai_towards_large_pathology_fms"
    native = 518 if architecture.endswith("dinov2") else 224  # ViT-L/14's position grid is DINOv2's 37 x 37
    return Recipe(
        alias=f"kaiko-{suffix}", title=f"kaiko.ai {description} (Aben et al., 2024), DINO/DINOv2 on TCGA",
        library="timm", repo=repo, architecture=architecture,
        model_kwargs=(("img_size", native), ("dynamic_img_size", True)),
        config_args=(("num_classes", 0),), preprocessing=_KAIKO, pooling="cls", width=width, prefix_tokens=prefix,
        licence="other: kaiko.ai research terms (see the card)", gated=False, card=f"https://huggingface.co/{repo}",
        usage=f"model(x): the class token (1 x {width})",
    )


RECIPES = tuple(_kaiko(*row) for row in _FAMILY) + (
    Recipe(
        alias="midnight-12k", title="Midnight-12k (Karasikov et al., 2025): DINOv2 ViT-g/14 on 12k TCGA WSIs",
        library="hf", repo="kaiko-ai/midnight", architecture="Dinov2Model",
        config_args=(("model_type", "dinov2"), ("hidden_size", 1536), ("num_hidden_layers", 40),
                     ("num_attention_heads", 24), ("patch_size", 14), ("use_swiglu_ffn", True)),
        preprocessing=_KAIKO, pooling="cls+mean", width=1536, prefix_tokens=1, licence="MIT", gated=False,
        card="https://huggingface.co/kaiko-ai/midnight",
        usage="torch.cat([h[:, 0], h[:, 1:].mean(1)], dim=-1) on h = model(x).last_hidden_state (1 x 3072)",
    ),
)
