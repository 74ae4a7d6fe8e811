"""Weighted AUC and calibration ratio, vectorized (no per-row Python)."""

from __future__ import annotations

import numpy as np


def weighted_auc(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """P(a random positive outscores a random negative), rows weighted, ties counted half.

    NaN when one class is absent.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    pos_w, neg_w = w[y].sum(), w[~y].sum()
    if pos_w == 0 or neg_w == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    # Group ties: each group's negatives are below its positives by half.
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], boundaries])
    neg_in_group = np.add.reduceat(np.where(y, 0.0, w), starts)
    pos_in_group = np.add.reduceat(np.where(y, w, 0.0), starts)
    neg_below = np.cumsum(neg_in_group) - neg_in_group
    wins = (pos_in_group * (neg_below + 0.5 * neg_in_group)).sum()
    return float(wins / (pos_w * neg_w))


def calibration_ratio(
    labels: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Predicted / actual positives (weighted): 1.0 is calibrated on average."""
    w = np.ones(len(probs)) if weights is None else np.asarray(weights, dtype=np.float64)
    actual = float((w * np.asarray(labels, dtype=np.float64)).sum())
    return (
        float((w * np.asarray(probs, dtype=np.float64)).sum() / actual) if actual else float("nan")
    )
