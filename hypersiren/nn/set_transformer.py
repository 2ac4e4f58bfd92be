"""A set transformer that reads a variable number of (coordinate, value) points and returns one latent vector.

Perceiver-style (Jaegle et al. 2021; the weight tokens of Trans-INR, Chen & Wang 2022): every context point is a
token (Fourier features of its coordinate, plus its value); a fixed number of learned query tokens attend to the
tokens of their own sample (cross-attention), then to each other (self-attention); the query tokens, flattened,
map to the latent. Cost is linear in the number of points, so 10 and 4096 points per sample share one batch.

Padding: samples of a batch hold different numbers of points, padded to the largest (``weights`` 0); padded tokens
are masked out of the attention, so they never influence the result. No positional order is used anywhere: the
latent is invariant to the order of a sample's points.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def fourier_features(coords: Tensor, octaves: int) -> Tensor:
    """coords (..., D) in [-1, 1] -> (..., D + 2 D octaves): the coordinates, then sin and cos of pi 2^k x."""
    frequencies = math.pi * 2.0 ** torch.arange(octaves, device=coords.device, dtype=coords.dtype)
    angles = (coords[..., None] * frequencies).flatten(-2)
    return torch.cat([coords, angles.sin(), angles.cos()], dim=-1)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attention(norm(x), context)`` then ``x + mlp(norm(x))``; attends to
    itself when no ``context`` (B, K, dim) is given. ``ignore`` (B, K) bool marks context tokens to leave out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor, context: Tensor | None = None, ignore: Tensor | None = None) -> Tensor:
        query = self.norm(x)
        keys = query if context is None else context
        x = x + self.attention(query, keys, keys, key_padding_mask=ignore, need_weights=False)[0]
        return x + self.mlp(x)


class SetTransformer(nn.Module):
    """Points (B, K, coord_features) with values (B, K, value_features) and weights (B, K) -> latents (B, latent_dim).

    dim: token width; queries: number of learned query tokens; layers: self-attention blocks among the queries
    after the cross-attention; heads: attention heads; octaves: Fourier-feature octaves of the coordinates.
    A sample must hold at least one point of weight 1.
    """

    def __init__(self, latent_dim: int = 256, dim: int = 128, queries: int = 16, layers: int = 2, heads: int = 4,
                 octaves: int = 6, coord_features: int = 2, value_features: int = 3):
        super().__init__()
        self.octaves = octaves
        self.embed = nn.Sequential(nn.Linear(coord_features * (1 + 2 * octaves) + value_features, dim), nn.GELU(),
                                   nn.Linear(dim, dim))
        self.token_norm = nn.LayerNorm(dim)
        self.queries = nn.Parameter(torch.randn(queries, dim) * 0.02)
        self.read = AttentionBlock(dim, heads)
        self.think = nn.ModuleList(AttentionBlock(dim, heads) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(queries * dim), nn.Linear(queries * dim, latent_dim))

    def forward(self, coords: Tensor, values: Tensor, weights: Tensor) -> Tensor:
        tokens = self.token_norm(self.embed(torch.cat([fourier_features(coords, self.octaves), values], dim=-1)))
        x = self.queries.expand(len(tokens), -1, -1)
        x = self.read(x, tokens, ignore=weights == 0)
        for block in self.think:
            x = block(x)
        return self.out(x.flatten(1))
