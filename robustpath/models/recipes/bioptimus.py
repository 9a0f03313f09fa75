"""Bioptimus' H-optimus-0, H-optimus-1 (timm ViT-g/14, 4 registers) and H0-mini (ViT-B/14 distilled).

Cards: https://huggingface.co/bioptimus/H-optimus-0 and .../H-optimus-1:
``timm.create_model("hf-hub:bioptimus/H-optimus-0", pretrained=True, init_values=1e-5,
dynamic_img_size=False)`` on 224 px tiles at 0.5 µm/px; transform ToTensor + Normalize(mean
(0.707223, 0.578729, 0.703617), std (0.211883, 0.230117, 0.177517)), no resize;
embedding ``model(x)``, the class token (1536-d).  https://huggingface.co/bioptimus/H0-mini:
``mlp_layer=SwiGLUPacked, act_layer=SiLU``; the model returns every token and the card
concatenates the class token with the mean of the patch tokens
(``output[:, model.num_prefix_tokens:]``), 1536-d.
"""
from robustpath.models.recipes.base import SWIGLU, Recipe, square

MEAN, STD = (0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)
_TILES = square(224, MEAN, STD, resize_mode="bilinear")
_NO_RESIZE = ("the card's transform has no resize (224 px tiles at 0.5 µm/px); other sizes are resized "
              "(shorter side to 224, bilinear) and centre-cropped",)
_OPTIMUS = dict(
    library="timm", architecture="vit_giant_patch14_reg4_dinov2",
    model_kwargs=(("init_values", 1e-5), ("dynamic_img_size", False)),
    config_args=(("num_classes", 0), ("img_size", 224), ("global_pool", "token"), ("init_values", 1e-5),
                 ("dynamic_img_size", False)),
    preprocessing=_TILES, pooling="cls", width=1536, prefix_tokens=5, gated=True,
    usage="model(x): the class token (1 x 1536)", notes=_NO_RESIZE,
)

RECIPES = (
    Recipe(alias="h-optimus-0", title="H-optimus-0 (Bioptimus, 2024): ViT-g/14, 4 registers, 500k+ H&E WSIs",
           repo="bioptimus/H-optimus-0", licence="Apache-2.0", card="https://huggingface.co/bioptimus/H-optimus-0",
           **_OPTIMUS),
    Recipe(alias="h-optimus-1", title="H-optimus-1 (Bioptimus, 2025): ViT-g/14, 4 registers, 1M+ WSIs",
           repo="bioptimus/H-optimus-1", licence="other: Bioptimus non-commercial terms (see the card)",
           card="https://huggingface.co/bioptimus/H-optimus-1", **_OPTIMUS),
    Recipe(
        alias="h0-mini", title="H0-mini (Filiot et al., 2025): ViT-B/14, SwiGLU MLP, 4 registers, distilled from H-optimus-0",
        library="timm", repo="bioptimus/H0-mini", architecture="vit_base_patch14_reg4_dinov2", model_kwargs=SWIGLU,
        config_args=(("num_classes", 0), ("img_size", 224), ("global_pool", ""), ("mlp_ratio", 2.66667 * 2)),
        preprocessing=square(224, MEAN, STD), pooling="cls+mean", width=768, prefix_tokens=5,
        licence="CC-BY-NC-ND-4.0", gated=True, card="https://huggingface.co/bioptimus/H0-mini",
        usage="torch.cat([output[:, 0], output[:, model.num_prefix_tokens:].mean(1)], dim=-1) on output = model(x)",
    ),
)
