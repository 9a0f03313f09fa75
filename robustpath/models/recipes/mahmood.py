"""MahmoodLab's UNI and UNI2-h (timm ViTs, class token).

Cards: https://huggingface.co/MahmoodLab/UNI (``timm.create_model("hf-hub:MahmoodLab/UNI",
pretrained=True, init_values=1e-5, dynamic_img_size=True)``) and
https://huggingface.co/MahmoodLab/UNI2-h (the card's ``timm_kwargs``: ViT-H/14 built on
``vit_giant_patch14_224`` with depth 24, 24 heads, width 1536, mlp_ratio 2.66667*2,
SwiGLUPacked + SiLU, 8 register tokens, ``no_embed_class``, init_values 1e-5,
dynamic_img_size).  Transforms: Resize(224), CenterCrop(224), ImageNet mean/std;
embedding ``model(x)``: the class token after the final norm.
"""
from robustpath.models.recipes.base import IMAGENET_MEAN, IMAGENET_STD, SWIGLU, Layer, Recipe, square

_RESIZE = square(224, IMAGENET_MEAN, IMAGENET_STD, resize_mode="bilinear")  # torchvision Resize(224): bilinear
_UNI2_KWARGS = (("img_size", 224), ("patch_size", 14), ("depth", 24), ("num_heads", 24), ("init_values", 1e-5),
                ("embed_dim", 1536), ("mlp_ratio", 2.66667 * 2), ("num_classes", 0), ("no_embed_class", True),
                *SWIGLU, ("reg_tokens", 8), ("dynamic_img_size", True))

RECIPES = (
    Recipe(
        alias="uni", title="UNI (Chen et al., Nature Medicine 2024): ViT-L/16 DINOv2-trained on 100M H&E patches",
        library="timm", repo="MahmoodLab/UNI", architecture="vit_large_patch16_224",
        model_kwargs=(("init_values", 1e-5), ("dynamic_img_size", True)),
        config_args=(("img_size", 224), ("patch_size", 16), ("init_values", 1e-5), ("num_classes", 0),
                     ("dynamic_img_size", True)),
        preprocessing=_RESIZE, pooling="cls", width=1024, prefix_tokens=1, licence="CC-BY-NC-ND-4.0", gated=True,
        card="https://huggingface.co/MahmoodLab/UNI", usage="model(x): the class token (1 x 1024)",
    ),
    Recipe(
        alias="uni2-h", title="UNI2-h (MahmoodLab, 2025): ViT-H/14, SwiGLU MLP, 8 registers, 200M+ H&E and IHC tiles",
        library="timm", repo="MahmoodLab/UNI2-h", architecture="vit_giant_patch14_224", model_kwargs=_UNI2_KWARGS,
        config_args=tuple(p for p in _UNI2_KWARGS if not isinstance(p[1], Layer)), preprocessing=_RESIZE, pooling="cls", width=1536,
        prefix_tokens=9, licence="CC-BY-NC-ND-4.0", gated=True, card="https://huggingface.co/MahmoodLab/UNI2-h",
        usage="model(x): the class token (1 x 1536)",
    ),
)
