"""Owkin's Phikon (iBOT ViT-B/16) and Phikon-v2 (DINOv2 ViT-L/16), transformers models.

Cards: https://huggingface.co/owkin/phikon: ``ViTModel.from_pretrained("owkin/phikon",
add_pooling_layer=False)`` with the repository's image processor (224 x 224, ImageNet
mean/std); embedding ``outputs.last_hidden_state[:, 0, :]`` (768-d).
https://huggingface.co/owkin/phikon-v2: ``AutoModel.from_pretrained("owkin/phikon-v2")``
(a Dinov2Model) with its image processor (224 px, ImageNet mean/std); embedding
``outputs.last_hidden_state[:, 0, :]`` (1024-d).
"""
from robustpath.models.recipes.base import IMAGENET_MEAN, IMAGENET_STD, Recipe, square

_LICENCE = "other: Owkin non-commercial licence (see the card)"

RECIPES = (
    Recipe(
        alias="phikon", title="Phikon (Filiot et al., 2023): iBOT ViT-B/16 on 40M TCGA tiles", library="hf",
        repo="owkin/phikon", architecture="ViTModel", model_kwargs=(("add_pooling_layer", False),),
        config_args=(("model_type", "vit"), ("hidden_size", 768), ("num_hidden_layers", 12),
                     ("num_attention_heads", 12), ("patch_size", 16), ("image_size", 224)),
        preprocessing=square(224, IMAGENET_MEAN, IMAGENET_STD, resize_mode="bilinear", crop="none"),
        pooling="cls", width=768, prefix_tokens=1, licence=_LICENCE, gated=False,
        card="https://huggingface.co/owkin/phikon", usage="outputs.last_hidden_state[:, 0, :] (1 x 768)",
    ),
    Recipe(
        alias="phikon-v2", title="Phikon-v2 (Filiot et al., 2024): DINOv2 ViT-L/16 on 460M tiles", library="hf",
        repo="owkin/phikon-v2", architecture="Dinov2Model",
        config_args=(("model_type", "dinov2"), ("hidden_size", 1024), ("num_hidden_layers", 24),
                     ("num_attention_heads", 16), ("patch_size", 16), ("image_size", 224)),
        preprocessing=square(224, IMAGENET_MEAN, IMAGENET_STD), pooling="cls", width=1024, prefix_tokens=1,
        licence=_LICENCE, gated=False, card="https://huggingface.co/owkin/phikon-v2",
        usage="outputs.last_hidden_state[:, 0, :] (1 x 1024)",
    ),
)
