"""The multi-task ranker: embeddings + normalized dense -> shared layers -> MMoE -> head towers.

Normalization statistics (of signed-log dense features, computed on the training window) are
buffers of the model, so a saved model carries them and serving cannot skew from training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the module from a state dict (saved with the model)."""

    n_dense: int
    n_categorical: int
    heads: tuple[str, ...]
    hash_buckets: int
    embedding_dim: int
    shared_units: tuple[int, ...]
    experts: int
    expert_units: tuple[int, ...]
    tower_units: tuple[int, ...]
    dropout: float
    dense_std_floor: float = 1e-3
    dense_clip: float = 5.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Architecture:
        tuples = ("heads", "shared_units", "expert_units", "tower_units")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


def _mlp(n_in: int, units: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for u in units:
        layers += [nn.Linear(n_in, u), nn.ReLU(), nn.Dropout(dropout)]
        n_in = u
    return nn.Sequential(*layers), n_in


def signed_log(x: torch.Tensor) -> torch.Tensor:
    """log1p that keeps the sign: tames heavy tails (counts, ages) without dropping negatives."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


class MMoERanker(nn.Module):
    """Multi-gate mixture of experts: shared experts, one softmax gate and one tower per head."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.register_buffer("dense_mean", torch.zeros(arch.n_dense))
        self.register_buffer("dense_std", torch.ones(arch.n_dense))
        # 0 for features that were constant in training: the model never learned from them.
        self.register_buffer("dense_active", torch.ones(arch.n_dense))
        self.embeddings = nn.ModuleList(
            nn.Embedding(arch.hash_buckets, arch.embedding_dim) for _ in range(arch.n_categorical)
        )
        n_in = arch.n_dense + arch.n_categorical * arch.embedding_dim
        self.shared, n_shared = _mlp(n_in, arch.shared_units, arch.dropout)
        experts = [_mlp(n_shared, arch.expert_units, arch.dropout) for _ in range(arch.experts)]
        self.experts = nn.ModuleList(e for e, _ in experts)
        n_expert = experts[0][1]
        self.gates = nn.ModuleList(nn.Linear(n_shared, arch.experts) for _ in arch.heads)
        towers = [_mlp(n_expert, arch.tower_units, arch.dropout) for _ in arch.heads]
        self.towers = nn.ModuleList(nn.Sequential(t, nn.Linear(n, 1)) for t, n in towers)

    def set_normalization(self, dense: torch.Tensor, weights: torch.Tensor) -> None:
        """Fit the dense-feature statistics on the training rows (weighted, after signed log).

        A feature whose spread is below `dense_std_floor` carried no signal in training; its
        weights were never fitted to non-constant values, so it is switched off rather than
        divided by a tiny std (which turned rare serving values into extreme inputs).
        """
        x = signed_log(dense.double())
        w = (weights.double() / weights.double().sum()).unsqueeze(1)
        mean = (w * x).sum(0)
        std = torch.sqrt((w * (x - mean) ** 2).sum(0))
        floor = self.arch.dense_std_floor
        self.dense_mean.copy_(mean.float())
        self.dense_std.copy_(std.clamp_min(floor).float())
        self.dense_active.copy_((std >= floor).float())

    def normalize(self, dense: torch.Tensor) -> torch.Tensor:
        """Signed log, z-score, clip: every model input is bounded whatever serving sends."""
        z = (signed_log(dense) - self.dense_mean) / self.dense_std
        clip = self.arch.dense_clip
        return torch.nan_to_num(z, nan=0.0).clamp(-clip, clip) * self.dense_active

    def forward(self, dense: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Logits, one column per head."""
        x = self.normalize(dense)
        embedded = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        h = self.shared(torch.cat([x, *embedded], dim=1))
        expert_out = torch.stack([e(h) for e in self.experts], dim=1)  # (N, E, U)
        logits = []
        for gate, tower in zip(self.gates, self.towers, strict=True):
            g = torch.softmax(gate(h), dim=1).unsqueeze(-1)  # (N, E, 1)
            logits.append(tower((g * expert_out).sum(dim=1)))
        return torch.cat(logits, dim=1)


class CalibratedRanker(nn.Module):
    """The served model: the raw ranker's logits through per-head Platt scaling (a * z + b)."""

    def __init__(self, base: MMoERanker, scale: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("scale", scale.detach().clone().float())
        self.register_buffer("bias", bias.detach().clone().float())

    @property
    def arch(self) -> Architecture:
        return self.base.arch

    def forward(self, dense: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.base(dense, categorical) * self.scale + self.bias
