"""The training loop: weighted multi-task BCE, optional warm start and distillation, calibration.

Deterministic for a seed on a given device, however busy the host (deterministic_kernels).
Batches are index slices of contiguous tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ranker_assets.config import FeatureSpec, ModelConfig
from ranker_assets.metrics import calibration_ratio, weighted_auc
from ranker_assets.training.calibration import fit_platt
from ranker_assets.training.data import Tensors, TrainingDataError, batches, holdout_mask
from ranker_assets.training.model import Architecture, CalibratedRanker, MMoERanker


@dataclass(frozen=True)
class TrainingOutcome:
    raw: MMoERanker  # the uncalibrated model (the next teacher)
    calibrated: CalibratedRanker  # the served model
    history: list[dict[str, float]]  # per epoch: loss and holdout AUC per head
    holdout: dict[str, float]  # final: auc, raw and calibrated predicted/actual per head
    rows: dict[str, int] = field(default_factory=dict)  # per split, and rows per step
    calibration: dict[str, str] = field(default_factory=dict)  # per head: "platt" or why raw
    epoch_kept: int = -1  # the epoch whose weights the model has (early stopping's best)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def architecture(spec: FeatureSpec, cfg: ModelConfig) -> Architecture:
    seq = cfg.sequence
    sequence = (
        {
            "sequence_length": seq.length,
            "sequence_layers": seq.layers,
            "sequence_heads": seq.heads,
            "sequence_dim": seq.dim,
            "sequence_attributes": len(spec.sequence.attributes),
        }
        if spec.sequence is not None
        else {}
    )
    return Architecture(
        n_dense=len(spec.dense),
        n_categorical=len(spec.categorical),
        heads=tuple(cfg.heads),
        hash_buckets=cfg.hash_buckets,
        embedding_dim=cfg.embedding_dim,
        shared_units=tuple(cfg.shared_units),
        experts=cfg.experts,
        expert_units=tuple(cfg.expert_units),
        tower_units=tuple(cfg.tower_units),
        dropout=cfg.dropout,
        dense_std_floor=cfg.dense_std_floor,
        dense_clip=cfg.dense_clip,
        **sequence,
    )


@torch.no_grad()
def predict_logits(model: nn.Module, data: Tensors, batch_size: int = 65_536) -> torch.Tensor:
    """Batch inference in eval mode; returns logits on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    if data.sequence is not None:  # a batch's keys are (rows x actions x dim): keep it small
        batch_size = min(batch_size, 8192)
    data = data.to(device)
    out = [
        model(*data.inputs(torch.arange(i, min(i + batch_size, len(data)), device=device))).cpu()
        for i in range(0, len(data), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros((0, len(model.arch.heads)))


def _split(data: Tensors, mask: torch.Tensor) -> tuple[Tensors, Tensors]:
    """(rows where `mask`, the rest)."""
    return data.subset(torch.nonzero(mask).squeeze(1)), data.subset(torch.nonzero(~mask).squeeze(1))


def _weighted_bce(logits: torch.Tensor, targets: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-head BCE averaged with example weights `w` (shape (N, 1))."""
    return (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * w).sum(
        0
    ) / w.sum()


class EarlyStopping:
    """Keeps the weights of the epoch with the best held-out score and says when `patience`
    epochs in a row have not beaten it (patience None: never stop, keep the last epoch).

    The score is minus the task-weighted mean of the heads' held-out log losses: a proper
    score, smooth from the first steps on (an AUC on a small held-out set is noise until the
    model has learnt something), and the quantity training minimizes.
    """

    def __init__(self, patience: int | None, task_weights: dict[str, float]) -> None:
        self.patience = patience
        self.task_weights = task_weights
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since_best = 0

    def score(self, losses: dict[str, float]) -> float:
        """Minus the task-weighted mean of the heads' losses (NaN when there are none)."""
        weights = [self.task_weights.get(h, 1.0) for h in losses]
        if not losses or sum(weights) <= 0:
            return math.nan
        return -sum(w * v for w, v in zip(weights, losses.values(), strict=True)) / sum(weights)

    def stop_after(self, epoch: int, score: float, model: nn.Module) -> bool:
        """Record an epoch's score; True when training should stop."""
        if self.patience is None or not math.isfinite(score):
            return False
        if score > self.best_score:
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.since_best += 1
        return self.since_best >= self.patience

    def restore_best(self, model: nn.Module, last_epoch: int) -> int:
        """Load the best epoch's weights (if one was kept); returns the epoch the model has."""
        if self.best_state is None:
            return last_epoch
        model.load_state_dict(self.best_state)
        return self.best_epoch


def _auc_per_head(heads: tuple[str, ...], logits: torch.Tensor, data: Tensors) -> dict[str, float]:
    w = data.weights.numpy()
    return {
        h: weighted_auc(data.labels[:, i].numpy(), logits[:, i].numpy(), w)
        for i, h in enumerate(heads)
    }


@contextmanager
def deterministic_kernels() -> Iterator[None]:
    """Torch's deterministic kernels for the block (a warning, not an error, for an op that has
    none on the device), then the previous setting.

    Without them, some CPU backward kernels accumulate in an order that follows thread timing:
    the same seed and rows trained different weights when other work shared the cores (the
    demo's closed loop diverged from its first model on). With them training is reproducible,
    and on CPU no slower. Torch's debugging fill of every new tensor's memory (which these
    kernels switch on; no kernel here reads memory it did not write) stays off: it was an
    eighth of a CPU step.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


@deterministic_kernels()
def train_ranker(
    data: Tensors,
    spec: FeatureSpec,
    cfg: ModelConfig,
    teacher: nn.Module | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainingOutcome:
    """Train on `data` minus the held-out rows; calibrate on half of them, check on the rest.

    The held-out rows are a random share of requests, or the randomized-traffic rows
    (`cfg.calibrate_on`). Early stopping picks the epoch on the calibration half, so the
    check half stays untouched by every choice made in training.

    `init_state` warm-starts from a champion's weights (its normalization included);
    `teacher` (with cfg.distillation_weight > 0) adds its probabilities as soft targets.
    """
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if cfg.calibrate_on == "randomized":
        hold_mask = data.randomized.clone()
        if not bool(hold_mask.any()):
            raise TrainingDataError(
                "model.calibrate_on is 'randomized' but the window has no randomized-traffic "
                "rows (is the sampling config dropping them?)"
            )
    else:
        hold_mask = torch.from_numpy(holdout_mask(data.request_id, cfg.holdout_share, cfg.seed))
    hold, train = _split(data, hold_mask)
    if len(train) == 0 or len(hold) == 0:
        raise TrainingDataError(f"{len(data)} rows are too few to split off a holdout")
    # Half of the held-out requests pick the epoch and calibrate; the other half only measure.
    fit_mask = torch.from_numpy(holdout_mask(hold.request_id, 0.5, cfg.seed + 1))
    fit, check = _split(hold, fit_mask)
    heads = tuple(cfg.heads)
    model = MMoERanker(architecture(spec, cfg))
    if init_state is not None:
        try:
            model.load_state_dict(init_state)
        except RuntimeError as err:
            raise ValueError(
                f"cannot warm start: the champion's architecture differs: {err}"
            ) from err
    else:
        model.set_normalization(train.dense, train.weights)
    model.to(device)
    soft_targets = None
    if teacher is not None and cfg.distillation_weight > 0:
        soft_targets = torch.sigmoid(predict_logits(teacher, train))
    train_dev = train.to(device)
    task_w = torch.tensor([cfg.task_weights.get(h, 1.0) for h in heads], device=device)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True
    )
    history = []
    step_rows = cfg.step_rows(len(train))
    stopping = EarlyStopping(cfg.early_stopping_patience, cfg.task_weights)
    for epoch in range(cfg.epochs):
        model.train()
        loss_sum = torch.zeros(len(heads), dtype=torch.float64)
        groups = None if train.sequence is None else train.sequence.request_index
        for idx in batches(len(train), step_rows, generator, groups):
            idx_dev = idx.to(device)
            logits = model(*train_dev.inputs(idx_dev))
            w = train_dev.weights[idx_dev].unsqueeze(1)
            per_head = _weighted_bce(logits, train_dev.labels[idx_dev], w)
            loss = (per_head * task_w).sum()
            if soft_targets is not None:
                distill = _weighted_bce(logits, soft_targets[idx].to(device), w)
                loss = loss + cfg.distillation_weight * (distill * task_w).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += per_head.detach().cpu().double() * len(idx)
        hold_logits = predict_logits(model, hold)
        aucs = _auc_per_head(heads, hold_logits, hold)
        fit_loss = _weighted_bce(hold_logits[fit_mask], fit.labels, fit.weights.unsqueeze(1))
        score = stopping.score(dict(zip(heads, fit_loss.tolist(), strict=True)))
        history.append(
            {
                "epoch": epoch,
                **{f"loss_{h}": float(loss_sum[i] / len(train)) for i, h in enumerate(heads)},
                **{f"holdout_auc_{h}": a for h, a in aucs.items()},
                "early_stopping_score": score,
            }
        )
        if stopping.stop_after(epoch, score, model):
            break
    kept = stopping.restore_best(model, len(history) - 1)
    model.cpu().eval()
    # Calibrate on half of the held-out requests; measure on the other half.
    hold_logits = predict_logits(model, hold)
    scale, bias, calibration = fit_platt(
        hold_logits[fit_mask], fit.labels, fit.weights, heads, cfg.calibration_min_positives
    )
    calibrated = CalibratedRanker(model, scale, bias).eval()
    check_logits = hold_logits[~fit_mask]
    check_probs = {
        "raw": torch.sigmoid(check_logits),
        "calibrated": torch.sigmoid(check_logits * scale + bias),
    }
    w = check.weights.numpy()
    holdout = {f"auc_{h}": auc for h, auc in _auc_per_head(heads, hold_logits, hold).items()}
    for i, h in enumerate(heads):
        holdout[f"positives_{h}"] = float(hold.labels[:, i].sum())  # what the AUC rests on
        for kind, probs in check_probs.items():
            holdout[f"pred_over_actual_{kind}_{h}"] = calibration_ratio(
                check.labels[:, i].numpy(), probs[:, i].numpy(), w
            )
    rows = {
        "train": len(train),
        "holdout": len(hold),
        "calibration": len(fit),
        "randomized": int(data.randomized.sum()),
        "per_step": step_rows,
    }
    return TrainingOutcome(model, calibrated, history, holdout, rows, calibration, kept)
