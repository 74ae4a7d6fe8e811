"""Per-head Platt scaling: fit sigmoid(a * logit + b) to held-out labels by weighted log loss.

Fitted on rows the ranker did not train on (held-out requests, randomized traffic included),
so the calibrated model's average prediction matches the observed rate. Guarded: a head with
too few held-out positives, or whose fit would flip or flatten the ranking (a <= 0), keeps its
raw scores (scale 1, bias 0), and the reason is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

# Below this slope the calibrated scores are (nearly) constant: the ranking is lost.
MIN_SCALE = 0.05


def _fit_column(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, iterations: int
) -> tuple[float, float]:
    scale = torch.ones(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([scale, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z * scale + bias, y, weight=w, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    return float(scale.detach()), float(bias.detach())


def fit_platt(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    heads: Sequence[str],
    min_positives: int,
    iterations: int = 200,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    """Per head: (scale, bias) minimizing weighted BCE, and "platt" or why it fell back to raw."""
    z, y = logits.detach().double(), labels.double()
    w = weights.double() / weights.double().sum()
    scales, biases, status = [], [], {}
    for i, head in enumerate(heads):
        positives = int(y[:, i].sum())
        a, b = 1.0, 0.0
        if positives < min_positives:
            status[head] = f"raw: {positives} held-out positives < {min_positives}"
        else:
            a, b = _fit_column(z[:, i], y[:, i], w, iterations)
            if not (a >= MIN_SCALE and abs(b) < 1e6):
                status[head] = f"raw: fitted slope {a:.3g} would flatten or reverse the ranking"
                a, b = 1.0, 0.0
            else:
                status[head] = "platt"
        scales.append(a)
        biases.append(b)
    return torch.tensor(scales).float(), torch.tensor(biases).float(), status
