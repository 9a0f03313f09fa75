"""Prov-GigaPath's tile encoder (timm ViT-g, patch 16 at 224 px, SwiGLU MLP).

Card: https://huggingface.co/prov-gigapath/prov-gigapath:
``timm.create_model("hf_hub:prov-gigapath/prov-gigapath", pretrained=True)``; the
repository config builds ``vit_giant_patch14_dinov2`` with img_size 224, patch_size 16,
width 1536, depth 40, 24 heads, init_values 1e-5, mlp_ratio 5.33334.  Transform:
Resize(256, bicubic), CenterCrop(224), ImageNet mean/std; embedding ``model(x)``, the class
token (1536-d).
"""
from robustpath.models.recipes.base import IMAGENET_MEAN, IMAGENET_STD, Recipe, square

RECIPES = (
    Recipe(
        alias="prov-gigapath", title="Prov-GigaPath tile encoder (Xu et al., Nature 2024): ViT-g/16 on 1.3B tiles",
        library="timm", repo="prov-gigapath/prov-gigapath", architecture="vit_giant_patch14_dinov2",
        config_args=(("img_size", 224), ("in_chans", 3), ("patch_size", 16), ("embed_dim", 1536), ("depth", 40),
                     ("num_heads", 24), ("init_values", 1e-5), ("mlp_ratio", 5.33334), ("num_classes", 0)),
        preprocessing=square(224, IMAGENET_MEAN, IMAGENET_STD, resize_size=256), pooling="cls", width=1536,
        prefix_tokens=1, licence="Apache-2.0 (research use only, per the access terms)", gated=True,
        card="https://huggingface.co/prov-gigapath/prov-gigapath", usage="model(x): the class token (1 x 1536)",
    ),
)
