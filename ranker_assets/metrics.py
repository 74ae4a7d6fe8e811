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


def log_loss(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted mean binary cross-entropy (probabilities clipped away from 0 and 1)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.sum() == 0:
        return float("nan")
    return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum())


def ranks_within(request_codes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each row's rank (0 = best score) within its request; ties keep row order."""
    order = np.lexsort((-np.asarray(scores, dtype=np.float64), request_codes))
    codes = request_codes[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    sorted_rank = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = sorted_rank
    return rank


def top_k_mask(request_codes: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Per row: is it among the k best-scored rows of its request?"""
    return ranks_within(request_codes, scores) < k


def judged_requests(codes: np.ndarray, y: np.ndarray, n_req: int, k: int) -> np.ndarray:
    """Requests HIT@k can judge: with a positive, and with more than k rows to rank."""
    has_pos = np.bincount(codes, weights=y, minlength=n_req) > 0
    return has_pos & (np.bincount(codes, minlength=n_req) > k)


def hit_at_k(
    request_codes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    k: int,
    request_weights: np.ndarray | None = None,
) -> tuple[float, int]:
    """Share of requests with a positive whose top-k rows hold one; and how many requests count.

    A request of k rows or fewer cannot miss, whatever the scores: it does not count (logs of
    one item per slot would otherwise read HIT@k = 1 for every model).
    `request_codes` are 0..R-1; `request_weights` (length R) re-weights requests (bootstrap).
    """
    y = np.asarray(labels, dtype=bool)
    n_req = int(request_codes.max()) + 1 if len(request_codes) else 0
    has_pos = judged_requests(request_codes, y, n_req, k)
    hit = np.bincount(
        request_codes, weights=y & top_k_mask(request_codes, scores, k), minlength=n_req
    )
    rw = np.ones(n_req) if request_weights is None else request_weights
    denom = float((rw * has_pos).sum())
    value = float((rw * ((hit > 0) & has_pos)).sum() / denom) if denom else float("nan")
    return value, int(has_pos.sum())
