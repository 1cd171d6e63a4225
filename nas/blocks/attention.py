"""Attention ops on token sequences [B, N, d], shared by MobileViT blocks and the Mobile-Former Former.

``mhsa``: multi-head self-attention, fused qkv projection with bias, `scaled_dot_product_attention`
(fvcore is taught to count it in nas.profile), output projection with bias.
``separable``: MobileViTv2 separable self-attention, O(N): one projection d -> 1 + 2d (context score,
key, value), softmax of the score over the N tokens, context vector = sum(score * key), output =
proj(relu(value) * context). Params: d*(1+2d) + (1+2d) + d*d + d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, *, bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x)
        if n == 1 and not torch.jit.is_tracing():
            # one token: the softmax over one key is exactly 1, so each head outputs its v (and q, k get
            # zero gradient either way). Low proxy resolutions leave MobileViT's last stages one patch;
            # SDPA's kernel costs ~1 ms per call there at batch 64. Traced runs keep SDPA, so fvcore's
            # count stays the nominal 2*N^2*d.
            return self.proj(qkv[..., 2 * d:])
        q, k, v = qkv.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class SeparableSelfAttention(nn.Module):
    def __init__(self, dim: int, *, bias: bool = True):
        super().__init__()
        self.dim = dim
        self.qkv = nn.Linear(dim, 1 + 2 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score, key, value = self.qkv(x).split([1, self.dim, self.dim], dim=-1)
        weights = score.softmax(dim=-2)  # over the N tokens
        context = (key * weights).sum(dim=-2, keepdim=True)
        return self.proj(F.relu(value) * context)


def make_attention(kind: str, dim: int, heads: int) -> nn.Module:
    if kind == "mhsa":
        return MultiHeadSelfAttention(dim, heads)
    if kind == "separable":
        return SeparableSelfAttention(dim)
    raise ValueError(f"unknown attention {kind!r}")
