"""CustomViT: a Vision Transformer built for small patches (e.g. 40×40 px cells).

Small patch size (default 4 px, so a 40-px patch is a 10×10 token grid), pre-norm
blocks, a class token and learned position embeddings.  The embedding is the
final-norm class token.  This module imports torch at the top: import it lazily.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CustomViTConfig:
    image_size: int = 40
    patch_size: int = 4
    width: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    training: dict = field(default_factory=dict, compare=False)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        for key in ("image_size", "patch_size", "width", "depth", "heads"):
            if int(getattr(self, key)) <= 0:
                raise ValueError(f"'{key}' must be a positive integer")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"'image_size' ({self.image_size}) must be a multiple of 'patch_size' ({self.patch_size})"
            )
        if self.width % self.heads:
            raise ValueError(f"'width' ({self.width}) must be divisible by 'heads' ({self.heads})")
        if self.num_classes < 0:
            raise ValueError("'num_classes' must be >= 0")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError("'class_names' must have 'num_classes' entries")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("'mean' and 'std' must be 3 numbers, std positive")

    def to_json_dict(self) -> dict:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return {"architecture": "customvit", "format_version": 1, **data}


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CustomViT(nn.Module):
    """ViT for small patches; ``forward_features`` gives (B, width) embeddings."""

    def __init__(self, config: CustomViTConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        grid = config.image_size // config.patch_size
        self.patch_embed = nn.Conv2d(3, config.width, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, config.width))
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.num_classes) if config.num_classes else None
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, S, S) normalised float → (B, width) class-token embedding."""
        tokens = self.patch_embed(images).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(images)
        return self.head(features) if self.head is not None else features


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
