"""Challenger against champion on the same held-out rows: metrics per head and slice, with
paired bootstrap intervals over requests for every challenger-minus-champion difference.

All metrics for all bootstrap replicates are computed at once: a replicate is a row of request
multipliers (Poisson(1), the usual large-sample bootstrap), so each model's rows are sorted once
per head and every replicate is a weighted pass over the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from ranker_assets.config import EvaluationConfig, SliceSpec
from ranker_assets.metrics import judged_requests, top_k_mask

CHALLENGER, CHAMPION, DIFFERENCE = "challenger", "champion", "difference"
ALL = "all"
_CHUNK = 64  # bootstrap replicates per vectorized block (bounds memory on large days)


def metric_names(k: int) -> tuple[str, ...]:
    return ("auc", "log_loss", "calibration", f"hit_at_{k}")


def request_multipliers(n_requests: int, samples: int, seed: int) -> np.ndarray:
    """(samples + 1, R): row 0 is all ones (the point estimate), then Poisson(1) replicates."""
    rng = np.random.default_rng(seed)
    return np.vstack([np.ones(n_requests), rng.poisson(1.0, (samples, n_requests))])


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is not positive (no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def metric_batch(
    y: np.ndarray, p: np.ndarray, w: np.ndarray, codes: np.ndarray, mult: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Each metric for every row of `mult` (request multipliers): arrays of length len(mult).

    A replicate weighs row i by w_i * mult[codes_i], so the sums the log loss and calibration
    need are request sums times the multipliers (a matmul over requests, not rows), and the
    AUC's pass gathers each replicate's weights once, straight in score order.
    """
    out: dict[str, list[np.ndarray]] = {name: [] for name in metric_names(k)}
    order = np.argsort(p, kind="mergesort")
    ys, ps, ws_row, cs = y[order], p[order], w[order], codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1] if len(ps) else np.zeros(0, dtype=int)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    row_loss = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    n_req = mult.shape[1]

    weight = np.bincount(codes, weights=w, minlength=n_req)
    loss, pred, label = (
        np.bincount(codes, weights=w * v, minlength=n_req) for v in (row_loss, p, y)
    )
    has_pos = judged_requests(codes, y, n_req, k)
    hit = (np.bincount(codes, weights=y * top_k_mask(codes, p, k), minlength=n_req) > 0) & has_pos
    for lo in range(0, len(mult), _CHUNK):
        m = mult[lo : lo + _CHUNK]
        if len(ps):
            ws = ws_row[None, :] * m[:, cs]
            pos = ws * ys
            if len(starts) < len(ps):  # tied scores: one group each (a tie counts half)
                ws, pos = np.add.reduceat(ws, starts, axis=1), np.add.reduceat(pos, starts, axis=1)
            neg = ws - pos
            below = np.cumsum(neg, axis=1)  # negatives scored at most as high
            # Each positive beats the negatives below it and ties half of those level with it.
            wins = np.einsum("ij,ij->i", pos, below) - 0.5 * np.einsum("ij,ij->i", pos, neg)
            auc = safe_ratio(wins, pos.sum(1) * below[:, -1])
        else:
            auc = np.full(len(m), np.nan)
        out["auc"].append(auc)
        out["log_loss"].append(safe_ratio(m @ loss, m @ weight))
        out["calibration"].append(safe_ratio(m @ pred, m @ label))
        out[f"hit_at_{k}"].append(safe_ratio(m @ hit, m @ has_pos))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def slice_masks(frame: pd.DataFrame, slices: Sequence[SliceSpec]) -> dict[str, np.ndarray]:
    """`all` plus one boolean mask per `column=value` (or numeric bucket) of each slice."""
    masks = {ALL: np.ones(len(frame), dtype=bool)}
    for spec in slices:
        if spec.column not in frame.columns:
            raise KeyError(f"evaluation.slices names {spec.column!r}, which the rows do not have")
        values = frame[spec.column]
        if spec.bins:
            edges = list(spec.bins)
            bucket = np.digitize(values.to_numpy(dtype=np.float64), edges)
            names = [
                f"<{edges[0]:g}",
                *[f"{a:g}-{b:g}" for a, b in pairwise(edges)],
            ]
            names.append(f">={edges[-1]:g}")
            for i, name in enumerate(names):
                masks[f"{spec.column}={name}"] = bucket == i
        else:
            for value in sorted(values.astype(str).unique()):
                masks[f"{spec.column}={value}"] = (values.astype(str) == value).to_numpy()
    return {name: mask for name, mask in masks.items() if mask.any()}


def bootstrap_interval(values: np.ndarray, tail: float) -> tuple[float, float]:
    """The (tail, 1 - tail) quantiles of the replicates (values[1:]; values[0] is the point)."""
    replicates = values[1:][np.isfinite(values[1:])]
    if not len(replicates):
        return float("nan"), float("nan")
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


def compare_models(
    rows: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    heads: Sequence[str],
    cfg: EvaluationConfig,
    min_positives: int,
) -> pd.DataFrame:
    """Metric rows (model, head, slice, metric, value, positives, sufficient, ci_low, ci_high).

    `scores` maps "challenger" (and "champion" when there is one) to frames of `p_<head>`
    aligned with `rows`. Every value gets a bootstrap interval over requests; differences
    (challenger - champion) a paired one.
    """
    codes = pd.factorize(rows["request_id"])[0]
    mult = request_multipliers(
        int(codes.max()) + 1 if len(codes) else 0, cfg.bootstrap_samples, cfg.seed
    )
    tail = (1 - cfg.confidence) / 2
    w = rows["weight"].to_numpy(dtype=np.float64)
    out = []
    for name, mask in slice_masks(rows, cfg.slices).items():
        for head in heads:
            y = rows[head].to_numpy(dtype=np.float64)[mask]
            positives = int(y.sum())
            batches = {
                model: metric_batch(
                    y,
                    s[f"p_{head}"].to_numpy(dtype=np.float64)[mask],
                    w[mask],
                    codes[mask],
                    mult,
                    cfg.top_k,
                )
                for model, s in scores.items()
            }
            for metric in metric_names(cfg.top_k):
                base = {
                    "head": head,
                    "slice": name,
                    "metric": metric,
                    "positives": positives,
                    "sufficient": positives >= min_positives,
                }
                for model, values in batches.items():
                    low, high = bootstrap_interval(values[metric], tail)
                    out.append(
                        {
                            **base,
                            "model": model,
                            "value": float(values[metric][0]),
                            "ci_low": low,
                            "ci_high": high,
                        }
                    )
                if CHAMPION in batches:
                    diff = batches[CHALLENGER][metric] - batches[CHAMPION][metric]
                    low, high = bootstrap_interval(diff, tail)
                    out.append(
                        {
                            **base,
                            "model": DIFFERENCE,
                            "value": float(diff[0]),
                            "ci_low": low,
                            "ci_high": high,
                        }
                    )
    frame = pd.DataFrame(out)
    for col in ("ci_low", "ci_high"):
        if col not in frame:
            frame[col] = np.nan
    return frame
