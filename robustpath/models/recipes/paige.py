"""Paige's Virchow and Virchow2 (timm ViT-H/14 with a SwiGLU MLP; Virchow2 adds 4 register tokens).

Cards: https://huggingface.co/paige-ai/Virchow and https://huggingface.co/paige-ai/Virchow2.
Both load with ``timm.create_model("hf-hub:paige-ai/...", pretrained=True,
mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU)``; the model returns every token
(``global_pool=""``), and the card's embedding is the class token concatenated with the
mean of the patch tokens (registers excluded: ``output[:, 5:]`` for Virchow2), 2560-d.
Transforms: timm's from the repository config (224 px, crop_pct 1, bicubic, ImageNet mean/std).
"""
from robustpath.models.recipes.base import IMAGENET_MEAN, IMAGENET_STD, SWIGLU, Recipe, square

_CONFIG = (("img_size", 224), ("init_values", 1e-5), ("num_classes", 0), ("mlp_ratio", 5.3375),
           ("global_pool", ""), ("dynamic_img_size", True))
_USAGE = "torch.cat([output[:, 0], output[:, {first}:].mean(1)], dim=-1) on output = model(x) (1 x {tokens} x 1280)"

RECIPES = (
    Recipe(
        alias="virchow", title="Virchow (Vorontsov et al., Nature Medicine 2024): ViT-H/14, SwiGLU MLP, 1.5M WSIs",
        library="timm", repo="paige-ai/Virchow", architecture="vit_huge_patch14_224", model_kwargs=SWIGLU,
        config_args=_CONFIG, preprocessing=square(224, IMAGENET_MEAN, IMAGENET_STD), pooling="cls+mean",
        width=1280, prefix_tokens=1, licence="Apache-2.0", gated=True, card="https://huggingface.co/paige-ai/Virchow",
        usage=_USAGE.format(first=1, tokens=257),
    ),
    Recipe(
        alias="virchow2", title="Virchow2 (Zimmermann et al., 2024): ViT-H/14, SwiGLU MLP, 4 registers, 3.1M WSIs",
        library="timm", repo="paige-ai/Virchow2", architecture="vit_huge_patch14_224", model_kwargs=SWIGLU,
        config_args=_CONFIG + (("reg_tokens", 4),), preprocessing=square(224, IMAGENET_MEAN, IMAGENET_STD),
        pooling="cls+mean", width=1280, prefix_tokens=5, licence="CC-BY-NC-ND-4.0", gated=True,
        card="https://huggingface.co/paige-ai/Virchow2", usage=_USAGE.format(first=5, tokens=261),
    ),
)
