"""Per-head Platt scaling: fit sigmoid(a * logit + b) to held-out labels by weighted log loss.

Fitted on rows the ranker did not train on (held-out requests, randomized traffic included),
so the calibrated model's average prediction matches the observed rate.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fit_platt(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, iterations: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column of `logits`: the (scale, bias) minimizing weighted BCE against `labels`."""
    z, y = logits.detach().double(), labels.double()
    w = (weights.double() / weights.double().sum()).unsqueeze(1).expand_as(z)
    scale = torch.ones(z.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([scale, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z * scale + bias, y, weight=w, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    return scale.detach().float(), bias.detach().float()
