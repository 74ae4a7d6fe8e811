"""The multi-task ranker: embeddings + normalized dense (+ the encoded recent actions) -> shared
layers -> MMoE -> head towers.

Normalization statistics (of signed-log dense features, computed on the training window) are
buffers of the model, so a saved model carries them and serving cannot skew from training.
The experts, the gates and the towers each run as one batched layer (not one module per expert
or head): on CPU a training step of this small model is mostly per-op overhead.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ranker_assets.training.layers import (
    Dropout,
    Embedding,
    Encoder,
    EncoderLayer,
    ParallelMLP,
    mlp,
)
from ranker_assets.training.sequences import ACTION_BUCKETS, SequenceBatch


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
    # The sequence encoder (0 layers: the ranker reads no sequence).
    sequence_length: int = 0
    sequence_layers: int = 0
    sequence_heads: int = 1
    sequence_dim: int = 0
    sequence_attributes: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Architecture:
        tuples = ("heads", "shared_units", "expert_units", "tower_units")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


def _from_module_lists(state: dict[str, Any], prefix: str, arch: Architecture) -> None:
    """Rewrite, in place, a state dict saved when experts, gates and towers were one module each
    (models registered before the batched layers) into the batched layout."""
    old = re.compile(re.escape(prefix) + r"(experts|gates|towers)\.\d+\.")
    if not any(old.match(k) for k in state):
        return
    heads, n_expert, n_tower = len(arch.heads), len(arch.expert_units), len(arch.tower_units)

    def linear(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return state.pop(f"{prefix}{name}.weight").T, state.pop(f"{prefix}{name}.bias")

    def put(module: str, layer: int, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        state[f"{prefix}{module}.weights.{layer}"] = torch.stack([w for w, _ in pairs])
        state[f"{prefix}{module}.biases.{layer}"] = torch.stack([b for _, b in pairs]).unsqueeze(1)

    for layer in range(n_expert):
        put("experts", layer, [linear(f"experts.{e}.{3 * layer}") for e in range(arch.experts)])
    gates = [linear(f"gates.{h}") for h in range(heads)]
    state[f"{prefix}gates.weight"] = torch.cat([w.T for w, _ in gates])
    state[f"{prefix}gates.bias"] = torch.cat([b for _, b in gates])
    for layer in range(n_tower):
        put("towers", layer, [linear(f"towers.{h}.0.{3 * layer}") for h in range(heads)])
    put("towers", n_tower, [linear(f"towers.{h}.1") for h in range(heads)])


def signed_log(x: torch.Tensor) -> torch.Tensor:
    """log1p that keeps the sign: tames heavy tails (counts, ages) without dropping negatives."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


class SequenceEncoder(nn.Module):
    """A transformer over the user's recent actions, then attention from each candidate to them.

    Each action is its item + type + attributes + how long ago it happened + its recency slot.
    A learned summary token is always present, so an empty history is well defined. The
    candidate's query is its own item and attributes, embedded with the actions' tables: a
    candidate like what the user just did finds those actions. Output per row, 4 x dim: the
    actions attended by softmax (what they are), that times the query (how well they match),
    the actions attended by independent gates (how many match), and the summary.
    """

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        d, buckets = arch.sequence_dim, arch.hash_buckets + 1
        self.item = Embedding(buckets, d, padding_idx=0)
        self.action = Embedding(ACTION_BUCKETS + 1, d, padding_idx=0)
        self.attributes = nn.ModuleList(
            Embedding(buckets, d, padding_idx=0) for _ in range(arch.sequence_attributes)
        )
        self.age = nn.Linear(1, d)
        self.slot = nn.Embedding(arch.sequence_length + 1, d)
        # No dropout inside the encoder: on CPU, sampling masks over every (action x dim) cost
        # a quarter of a training step. The encoder's output per row is dropped out instead.
        self.encoder = Encoder(EncoderLayer(d, arch.sequence_heads, 2 * d), arch.sequence_layers)
        self.dropout = Dropout(arch.dropout)
        self.query = nn.Linear(d, d)
        self.scale = d**-0.5

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Item + attributes of (..., 1 + A) hashed ids."""
        x = self.item(ids[..., 0])
        for j, table in enumerate(self.attributes):
            x = x + table(ids[..., 1 + j])
        return x

    def forward(self, seq: SequenceBatch) -> torch.Tensor:
        tokens = seq.tokens
        n_req, length = tokens.shape[0], tokens.shape[1]
        pad = tokens[..., 0] == 0
        # The actions' and the candidates' items and attributes in one lookup per table: one
        # gradient table each in backward, not one per use summed.
        items = torch.cat([tokens[..., :1], tokens[..., 2:]], dim=-1).reshape(
            -1, tokens.shape[-1] - 1
        )
        actions, candidates = torch.split(
            self._embed(torch.cat([items, seq.candidates])), [len(items), len(seq.candidates)]
        )
        x = (
            actions.view(n_req, length, -1)
            + self.action(tokens[..., 1])
            + self.age(signed_log(seq.age_hours).unsqueeze(-1))
            + self.slot.weight[1 : length + 1]
        )
        summary = self.slot.weight[0].expand(n_req, 1, -1)
        mask = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        # No padding mask in self-attention: padded slots are a learned "no action" input
        # (their count says how short the history is); target attention below masks them.
        h = self.encoder(torch.cat([summary, x], dim=1))
        # index_select: its gradient is an index_add_, not a sort (indexing under the
        # deterministic kernels).
        keys = h.index_select(0, seq.request_index)  # (N, 1 + L, d)
        q = self.query(candidates)  # (N, d)
        score = (keys @ q.unsqueeze(-1)).squeeze(-1) * self.scale
        masked = mask[seq.request_index]
        weights = torch.softmax(score.masked_fill(masked, -torch.inf), dim=1)
        # Softmax keeps what the matching actions are but not how many there are; gates that
        # do not sum to one keep that (DIN's point): many actions like the candidate, more signal.
        gates = torch.sigmoid(score).masked_fill(masked, 0.0) / length
        # Both weighted sums of the keys in one batched matmul: (N, 2, 1 + L) @ (N, 1 + L, d).
        attended, intensity = torch.bmm(torch.stack([weights, gates], dim=1), keys).unbind(1)
        # The candidate times what it attended to: the match itself, which the layers above
        # would otherwise have to learn as a product of two inputs.
        return self.dropout(torch.cat([attended, q * attended, intensity, keys[:, 0]], dim=1))


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
            Embedding(arch.hash_buckets, arch.embedding_dim) for _ in range(arch.n_categorical)
        )
        n_in = arch.n_dense + arch.n_categorical * arch.embedding_dim
        self.sequence = SequenceEncoder(arch) if arch.sequence_layers else None
        n_in += 4 * arch.sequence_dim if self.sequence is not None else 0
        self.shared, n_shared = mlp(n_in, arch.shared_units, arch.dropout)
        heads = len(arch.heads)
        self.experts = ParallelMLP(arch.experts, n_shared, arch.expert_units, arch.dropout)
        self.gates = nn.Linear(n_shared, heads * arch.experts)  # one softmax gate per head
        self.towers = ParallelMLP(heads, self.experts.units, arch.tower_units, arch.dropout, 1)
        self.register_load_state_dict_pre_hook(
            lambda module, state, prefix, *_: _from_module_lists(state, prefix, arch)
        )

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

    def forward(
        self,
        dense: torch.Tensor,
        categorical: torch.Tensor,
        sequence: SequenceBatch | None = None,
    ) -> torch.Tensor:
        """Logits, one column per head."""
        x = self.normalize(dense)
        embedded = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.sequence is not None:
            if sequence is None:
                raise ValueError("this ranker reads the user's recent actions: pass them")
            embedded.append(self.sequence(sequence))
        h = self.shared(torch.cat([x, *embedded], dim=1))
        experts = self.experts(h)  # (E, N, U)
        gates = torch.softmax(self.gates(h).view(len(h), len(self.arch.heads), -1), dim=-1)
        mixed = torch.einsum("nhe,enu->hnu", gates, experts)  # each head's mix of the experts
        return self.towers(mixed).squeeze(-1).T  # (N, heads)


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

    def forward(
        self,
        dense: torch.Tensor,
        categorical: torch.Tensor,
        sequence: SequenceBatch | None = None,
    ) -> torch.Tensor:
        return self.base(dense, categorical, sequence) * self.scale + self.bias
