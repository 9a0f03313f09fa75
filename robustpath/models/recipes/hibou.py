"""HistAI's Hibou-B and Hibou-L: DINOv2 ViTs with 4 register tokens, shipped as repository code.

Cards: https://huggingface.co/histai/hibou-b and https://huggingface.co/histai/hibou-L:
``AutoModel.from_pretrained("histai/hibou-b", trust_remote_code=True)`` with
``AutoImageProcessor`` (also repository code): 224 px, mean (0.7068, 0.5755, 0.722),
std (0.195, 0.2316, 0.1816); embedding ``outputs.pooler_output``, the class token after
the final norm.  The repository's code runs only with ``--trust-remote-code``.
"""
from robustpath.models.recipes.base import Recipe, square

MEAN, STD = (0.7068, 0.5755, 0.722), (0.195, 0.2316, 0.1816)


def _hibou(size: str, width: int, layers: int, heads: int) -> Recipe:
    repo = f"histai/hibou-{size}"
    return Recipe(
        alias=f"hibou-{size.lower()}", title=f"Hibou-{size.upper()} (Nechaev et al., 2024): DINOv2 ViT-{size.upper()}/14 "
        "with 4 registers, 1M+ WSIs", library="hf", repo=repo, architecture="AutoModel",
        config_args=(("hidden_size", width), ("num_hidden_layers", layers), ("num_attention_heads", heads),
                     ("patch_size", 14), ("image_size", 224), ("num_register_tokens", 4)),
        preprocessing=square(224, MEAN, STD), pooling="cls", width=width, prefix_tokens=5, licence="Apache-2.0",
        gated=False, card=f"https://huggingface.co/{repo}", usage=f"outputs.pooler_output: the class token (1 x {width})",
        trust_remote_code=True,
    )


RECIPES = (_hibou("b", 768, 12, 12), _hibou("L", 1024, 24, 16))
