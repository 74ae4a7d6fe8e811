"""Off-policy evaluation on logged randomized traffic: what a model's top-K would earn.

Any log that carries, for every served candidate of a request, its position and the propensity
of that placement (the probability the logging policy put this item in this slot) works here:
uniform random traffic (propensity 1/n) or a bandit policy's per-slot propensities.

The estimand is the expected number of engagements per request, per head, in the top K slots
when the model orders the request's candidates. For each slot j < K the logged item matches the
model's j-th item with the logged propensity; matched rows are re-weighted by 1/propensity
(IPS), or normalized by the sum of their weights per slot (self-normalized IPS, SNIPS: biased
in small samples, far lower variance). Assumes an item's reward depends on the item and its
slot, not on the other items shown. Only about K/n of the rows match, so at 2% randomized
traffic SNIPS needs millions of requests a day to get within a few percent.

PBM (position-based model) uses every top-K item wherever it was logged: it assumes a reward is
the item's relevance times the examination of its slot. Then E[r / propensity] of an item,
summed over its placements, is relevance x (sum of examinations over the slots it could take),
so an item's reward at target slot j is estimated by r / propensity x exam(j) / sum_q exam(q).
The examination curve comes from the randomized log itself (the propensity-weighted mean reward
per slot, since placement is independent of the item) and enters only as exam(j) of the top
slots and the sum over all slots: both are well measured, unlike a per-slot ratio
exam(j) / exam(p), whose noisy deep-slot denominators bias it upwards. This weighting (each
logged slot in proportion to its examination) is the minimum-variance combination of the
per-slot estimates. Requires every slot of a request to be reachable by every item (true of
randomized traffic). Intervals: bootstrap over requests, the examination curve re-estimated
in every replicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ranker_assets.evaluation.offline import request_multipliers, safe_ratio
from ranker_assets.metrics import ranks_within

# A target slot's examination is estimated only from at least this many positives there.
MIN_SLOT_POSITIVES = 20


def _per_request(
    codes: np.ndarray, column: np.ndarray, values: np.ndarray, n_req: int, width: int
) -> np.ndarray:
    """(n_req, width) sums of `values` by request and `column` (rows with column >= width
    are left out)."""
    keep = column < width
    flat = codes[keep] * width + column[keep]
    return np.bincount(flat, weights=values[keep], minlength=n_req * width).reshape(n_req, width)


def why_not_estimable(logged: pd.DataFrame, k: int) -> str | None:
    """Why no model's top-k value can be estimated from these randomized rows, if it cannot.

    The estimators rank every logged candidate of a request by the model's scores. When each
    request logs no more than k candidates (one shown item per slot, the usual bandit log),
    every model's top k is the logged set: an estimate would not depend on the model.
    """
    if logged.empty:
        return "no randomized rows on this day"
    most = int(logged.groupby("request_id").size().max())
    if most <= k:
        return (
            f"each randomized request logs at most {most} candidate(s) (one per slot), so any "
            f"model's top {k} is the logged set: a value of the model cannot be computed from "
            "these logs (it needs every candidate a request could have shown)"
        )
    return None


def _interval_rows(
    head: str,
    estimates: dict[str, np.ndarray],
    used: dict[str, np.ndarray],
    r: np.ndarray,
    n_req: int,
    confidence: float,
) -> list[dict[str, object]]:
    """One row per estimator: the sample's value (replicate 0) and a bootstrap interval."""
    tail = (1 - confidence) / 2
    rows = []
    for name, values in estimates.items():
        reps = values[1:][np.isfinite(values[1:])]
        low, high = np.quantile(reps, [tail, 1 - tail]) if len(reps) else (np.nan, np.nan)
        rows.append(
            {
                "head": head,
                "estimator": name,
                "value": float(values[0]),
                "ci_low": float(low),
                "ci_high": float(high),
                "matched_rows": int(used[name].sum()),
                # Below a handful of matched positives the interval is not trustworthy.
                "matched_positives": int((used[name] & (r > 0)).sum()),
                "requests": n_req,
            }
        )
    return rows


def _placements(logged: pd.DataFrame) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """(request code per row, number of requests, slot per row, 1 / propensity per row)."""
    codes = pd.factorize(logged["request_id"])[0]
    n_req = int(codes.max()) + 1 if len(codes) else 0
    position = logged["position"].to_numpy().astype(np.int64)
    return codes, n_req, position, 1.0 / logged["propensity"].to_numpy(dtype=np.float64)


def _ips_snips(
    codes: np.ndarray,
    slot_of: np.ndarray,
    matched: np.ndarray,
    inv: np.ndarray,
    r: np.ndarray,
    k: int,
    mult: np.ndarray,
) -> dict[str, np.ndarray]:
    """IPS and SNIPS per bootstrap replicate: the matched rows' reweighted rewards per slot,
    summed over the k slots (`slot_of` = k for a row that matches no slot)."""
    n_req = mult.shape[1]
    num = mult @ _per_request(codes, slot_of, np.where(matched, inv * r, 0.0), n_req, k)
    den = mult @ _per_request(codes, slot_of, np.where(matched, inv, 0.0), n_req, k)
    return {"ips": safe_ratio(num.sum(1), mult.sum(1)), "snips": safe_ratio(num, den).sum(1)}


def slot_estimates(
    logged: pd.DataFrame,
    matched: np.ndarray,
    heads: Sequence[str],
    k: int,
    samples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Per head: per-slot IPS and SNIPS of a model's top k on logs of one item per slot.

    `matched` says, per logged row, whether the model would show the logged item in the logged
    slot (action_set.slot_matches over the full action set). A slot's value is the matched rows'
    reward / propensity over all requests (IPS) or over the matched rows' 1 / propensity (SNIPS);
    the value of the top k is the sum over its slots.
    """
    codes, n_req, position, inv = _placements(logged)
    matched = matched & (position < k)
    slot_of = np.where(matched, position, k)
    mult = request_multipliers(n_req, samples, seed)
    rows = []
    for head in heads:
        r = logged[head].to_numpy(dtype=np.float64)
        estimates = _ips_snips(codes, slot_of, matched, inv, r, k, mult)
        rows += _interval_rows(
            head, estimates, dict.fromkeys(estimates, matched), r, n_req, confidence
        )
    return pd.DataFrame(rows)


def slate_estimates(
    logged: pd.DataFrame,
    scores: np.ndarray,
    heads: Sequence[str],
    k: int,
    samples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Per head: IPS, SNIPS and PBM estimates of the top-k value of ordering by `scores`, with
    bootstrap intervals.

    `logged` holds every served candidate of the randomized requests: request_id, position,
    propensity and the head labels. Work is per request sums times the bootstrap's request
    multipliers, so memory grows with requests x slots, not rows x replicates.
    """
    codes, n_req, position, inv = _placements(logged)
    rank = ranks_within(codes, scores)
    n_slots = int(position.max()) + 1 if len(position) else 0
    matched = (rank < k) & (position == rank)
    slot_of = np.where(matched, rank, k)  # k = "not matched": left out of the per-slot sums
    top = rank < k
    mult = request_multipliers(n_req, samples, seed)  # (B+1, R)
    requests = mult.sum(1)
    # Slots a request offers its items: the examinations PBM divides by.
    offered = np.zeros(n_req, dtype=np.int64)
    np.maximum.at(offered, codes, position + 1)
    per_slot_weight = mult @ _per_request(codes, position, inv, n_req, n_slots)  # (B+1, P)
    rows = []
    for head in heads:
        r = logged[head].to_numpy(dtype=np.float64)
        estimates = _ips_snips(codes, slot_of, matched, inv, r, k, mult)
        exam = safe_ratio(
            mult @ _per_request(codes, position, inv * r, n_req, n_slots), per_slot_weight
        )
        pbm = _pbm(codes, rank, inv, r, top, k, exam, offered, mult, requests, position)
        # PBM uses every top-k row, or none when it cannot estimate (NaN).
        used = {"ips": matched, "snips": matched, "pbm": top & bool(np.isfinite(pbm[0]))}
        rows += _interval_rows(head, {**estimates, "pbm": pbm}, used, r, n_req, confidence)
    return pd.DataFrame(rows)


def _pbm(
    codes: np.ndarray,
    rank: np.ndarray,
    inv: np.ndarray,
    r: np.ndarray,
    top: np.ndarray,
    k: int,
    exam: np.ndarray,
    offered: np.ndarray,
    mult: np.ndarray,
    requests: np.ndarray,
    position: np.ndarray,
) -> np.ndarray:
    """PBM value per bootstrap replicate (row 0: the sample); NaN when a target slot's
    examination rests on fewer than MIN_SLOT_POSITIVES positives."""
    n_req = len(offered)
    if (np.bincount(position[r > 0], minlength=k)[:k] < MIN_SLOT_POSITIVES).any():
        return np.full(len(mult), np.nan)
    exam = np.nan_to_num(exam)  # a slot nobody was placed in (in a replicate) examines nothing
    reached = _per_request(codes, rank, np.where(top, inv * r, 0.0), n_req, k)  # (R, k)
    gained = reached @ exam[:, :k].T  # (R, B+1): sum_j r/propensity x exam(j)
    total = np.cumsum(exam, axis=1)[:, offered - 1]  # (B+1, R): sum of exam over offered slots
    per_request = safe_ratio(gained.T, total)
    return safe_ratio((mult * np.nan_to_num(per_request)).sum(1), requests)
