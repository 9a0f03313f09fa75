"""A masked autoencoder (MAE) around a CustomViT encoder, for small patches.

The image is cut into patch_size × patch_size patches (the encoder's own tokens, row
by row); ``draw_masks`` hides exactly round(mask_ratio · L) of the L patches of each
image, chosen uniformly at random from a seeded generator.  The encoder (the very
CustomViT modules that are saved afterwards) sees only the visible patches with their
position embeddings; a light decoder gets the encoded visible tokens plus a learned
mask token at every hidden position and predicts the pixels of every patch.  The loss
is the mean squared error over the hidden patches, in the encoder's normalised pixel
space (He et al., 2022; small patches and low mask ratios for small objects: Gillis
et al., arXiv 2504.17935).  This module imports torch at the top: import it lazily.
"""
from __future__ import annotations

import torch
from torch import nn

from robustpath.models.customvit_net import Block, CustomViT, _init_weights


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, 3, H, W) → (B, L, p·p·3): patches row by row, each as (p, p, 3) flattened."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of ``patchify``: (B, L, p·p·3) → (B, 3, H, W)."""
    b = patches.shape[0]
    p = patch_size
    x = patches.reshape(b, height // p, width // p, p, p, 3)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, 3, height, width)


def draw_masks(batch_size: int, tokens: int, mask_ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(B, L) bool on the CPU: True = hidden; exactly round(mask_ratio · L) per row (at least 1, at most L - 1)."""
    hidden = min(tokens - 1, max(1, int(round(mask_ratio * tokens))))
    noise = torch.rand(batch_size, tokens, generator=generator)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks < hidden


def pixel_mask(mask: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """(B, L) bool patch mask → (B, H, W) bool pixel mask."""
    grid = mask.reshape(mask.shape[0], height // patch_size, width // patch_size)
    return grid.repeat_interleave(patch_size, dim=1).repeat_interleave(patch_size, dim=2)


class MaskedAutoencoder(nn.Module):
    """``encoder`` (a CustomViT without head) + a small transformer decoder."""

    def __init__(self, encoder: CustomViT, decoder_width: int = 64, decoder_depth: int = 2, decoder_heads: int = 4) -> None:
        super().__init__()
        config = encoder.config
        self.encoder = encoder
        self.patch_size = config.patch_size
        tokens = (config.image_size // config.patch_size) ** 2
        self.decoder_embed = nn.Linear(config.width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, decoder_width))
        self.decoder_blocks = nn.ModuleList(Block(decoder_width, decoder_heads, 4.0) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_width)
        self.decoder_pred = nn.Linear(decoder_width, config.patch_size ** 2 * 3)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            module.apply(_init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.decoder_pos_embed, std=0.02)

    def encode_visible(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) normalised, mask (B, L) bool → (B, 1 + visible, width) encoded tokens."""
        encoder = self.encoder
        tokens = encoder.patch_embed(images).flatten(2).transpose(1, 2) + encoder.pos_embed[:, 1:]
        visible = (~mask).sum(dim=1)
        if not bool((visible == visible[0]).all()):
            raise ValueError("every image needs the same number of visible patches")
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)[:, : int(visible[0])].to(images.device)
        kept = torch.gather(tokens, 1, order.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        cls = (encoder.cls_token + encoder.pos_embed[:, :1]).expand(images.shape[0], -1, -1)
        x = torch.cat([cls, kept], dim=1)
        for block in encoder.blocks:
            x = block(x)
        return encoder.norm(x)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) normalised, mask (B, L) bool → (B, L, p·p·3) predicted normalised pixels."""
        mask = mask.to(images.device)
        encoded = self.decoder_embed(self.encode_visible(images, mask))
        b, length = mask.shape
        full = self.mask_token.expand(b, length, -1).clone()
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)[:, : encoded.shape[1] - 1]
        full.scatter_(1, order.unsqueeze(-1).expand(-1, -1, full.shape[-1]), encoded[:, 1:])
        x = torch.cat([encoded[:, :1], full], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def loss(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the hidden patches (normalised pixels)."""
        mask = mask.to(images.device)
        error = (self.forward(images, mask) - patchify(images, self.patch_size)).pow(2).mean(dim=-1)
        return (error * mask).sum() / mask.sum()


def reconstruct(model: MaskedAutoencoder, images: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor,
                std: torch.Tensor) -> torch.Tensor:
    """images (B, 3, S, S) in [0, 1] → (B, 3, S, S) in [0, 1]: visible patches kept, hidden ones predicted."""
    size = images.shape[-1]
    normalised = (images - mean) / std
    predicted = unpatchify(model(normalised, mask), model.patch_size, size, size) * std + mean
    hidden = pixel_mask(mask.to(images.device), model.patch_size, size, size).unsqueeze(1)
    return torch.where(hidden, predicted.clamp(0, 1), images)


def masked_psnr(original: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B,) PSNR in dB over each image's hidden pixels: 10 · log10(1 / MSE), images in [0, 1], float64."""
    size = original.shape[-1]
    hidden = pixel_mask(mask, patch_size, size, size).unsqueeze(1).expand_as(original).to(original.device)
    error = (original.double() - reconstruction.double()).pow(2) * hidden
    mse = error.flatten(1).sum(dim=1) / hidden.flatten(1).sum(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
