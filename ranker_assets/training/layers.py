"""Layers of the ranker, built for a small model on CPU, where a training step is mostly
per-op overhead: each does what its torch counterpart does (same parameters, names and
initialization, so saved models load unchanged) with fewer or cheaper ops.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class Dropout(nn.Module):
    """Inverted dropout whose mask is cut from random 64-bit words, 15 bits per element.

    On CPU, `nn.Dropout`'s Bernoulli sampling took a tenth of a training step and a uniform
    float per element (the generator draws one 32-bit number each) about half of that; four
    elements per 64-bit word (two draws) halve it again. The drop probability is `p` rounded to
    a multiple of 2^-15 (0.3 -> 0.29999) and the kept values are scaled by its exact inverse,
    so the expected activation is unchanged.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.threshold = round(p * 2**15)
        self.scale = 2**15 / (2**15 - self.threshold) if self.threshold < 2**15 else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
        bits = words.view(torch.int16)[:n].view(x.shape) & 0x7FFF
        return x * (bits >= self.threshold) * self.scale


class _IndexAddLookup(torch.autograd.Function):
    """Rows of a table; the gradient is summed into the table with `index_add_`, which on CPU
    is 4x faster than the embedding's own backward (a tensor op per looked-up row: 1.3 ms for
    a batch's 16k sequence tokens, a seventh of a training step) and adds in the same order."""

    @staticmethod
    def forward(weight: torch.Tensor, ids: torch.Tensor, padding_idx: int | None) -> torch.Tensor:
        return weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.shape[1])

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        weight, ids, padding_idx = inputs
        ctx.save_for_backward(ids)
        ctx.rows, ctx.padding_idx = weight.shape[0], padding_idx

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (ids,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        out = flat.new_zeros(ctx.rows, flat.shape[1]).index_add_(0, ids.reshape(-1), flat)
        if ctx.padding_idx is not None:
            out[ctx.padding_idx] = 0  # as nn.Embedding: the padding row is never trained
        return out, None, None


class Embedding(nn.Embedding):
    """nn.Embedding (same parameters and initialization) with a faster backward on CPU; other
    devices keep torch's own (index_add_ is not deterministic on CUDA)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.weight.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(ids)
        return _IndexAddLookup.apply(self.weight, ids, self.padding_idx)


class SelfAttention(nn.Module):
    """Multi-head self-attention over batch-first (B, L, d) inputs, with nn.MultiheadAttention's
    parameters and initialization (models saved with it load unchanged).

    nn.MultiheadAttention works sequence-first: with batch-first inputs it transposed, packed
    and zero-filled (3, L, B, d) copies, and its fused CPU kernel is built for long sequences;
    on 33 actions x 16 dims those were a fifth of a training step. Plain batched matmuls are
    the same attention.
    """

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        self.out_proj = nn.Linear(d, d)  # drawn first, as nn.MultiheadAttention does
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        h = self.heads
        w, bias = self.in_proj_weight, self.in_proj_bias
        # Each of query, key and value projected on its own: one packed projection split per
        # head is a copy forward and back. The scale goes on the (L x d) queries, not on the
        # (L x L) scores.
        q, k, v = (
            F.linear(x, w[i * d : (i + 1) * d], bias[i * d : (i + 1) * d])
            .view(b, length, h, d // h)
            .transpose(1, 2)  # (B, heads, L, d / heads)
            for i in range(3)
        )
        scores = torch.matmul(q * (d // h) ** -0.5, k.transpose(-1, -2))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, heads, L, d / heads)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, d))


class EncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer as this model uses it (post-norm, ReLU, no dropout), with its
    parameter names, on SelfAttention."""

    def __init__(self, d: int, heads: int, feedforward: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(d, heads)
        self.linear1 = nn.Linear(d, feedforward)
        self.linear2 = nn.Linear(feedforward, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x))
        return self.norm2(x + self.linear2(torch.relu(self.linear1(x))))


class Encoder(nn.Module):
    """`n` copies of one initialized layer (as nn.TransformerEncoder clones its layer)."""

    def __init__(self, layer: EncoderLayer, n: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def mlp(n_in: int, units: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear, ReLU and dropout per entry of `units`; returns the stack and its output width."""
    layers: list[nn.Module] = []
    for u in units:
        layers += [nn.Linear(n_in, u), nn.ReLU(), Dropout(dropout)]
        n_in = u
    return nn.Sequential(*layers), n_in


class ParallelMLP(nn.Module):
    """`k` MLPs of one shape as a batched matmul per layer: ReLU and dropout between layers,
    and with `out`, a last linear layer of `out` units. Takes one input for all (N, n_in) or
    one per MLP (k, N, n_in); returns (k, N, units). Initialized as `nn.Linear` is."""

    def __init__(
        self, k: int, n_in: int, units: Sequence[int], dropout: float, out: int | None = None
    ) -> None:
        super().__init__()
        sizes = [n_in, *units, *([out] if out is not None else [])]
        self.hidden = len(units)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in pairwise(sizes):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(
                nn.Parameter(torch.empty(k, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(k, 1, fan_out).uniform_(-bound, bound)))
        self.dropout = Dropout(dropout)
        self.units = sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.matmul(x, w) + b
            if i < self.hidden:
                x = self.dropout(torch.relu(x))
        return x
