"""Off-policy evaluation on logged randomized traffic: what a model's top-K would earn.

Any log that carries, for every served candidate of a request, its position and the propensity
of that placement (the probability the logging policy put this item in this slot) works here:
uniform random traffic (propensity 1/n) or a bandit policy's per-slot propensities.

The estimand is the expected number of engagements per request, per head, in the top K slots
when the model orders the request's candidates. For each slot j < K the logged item matches the
model's j-th item with the logged propensity; matched rows are re-weighted by 1/propensity
(IPS), or normalized by the sum of their weights per slot (self-normalized IPS, SNIPS: biased
in small samples, far lower variance). Assumes an item's reward depends on the item and its
slot, not on the other items shown.

PBM (position-based model) uses far more of the log: it assumes a reward is the item's
relevance times the examination of its slot, estimates the examination curve from the
randomized log itself (the mean reward per slot, since placement is independent of the item),
and counts every top-K item logged in any examinable slot, re-weighted by the ratio of
examinations of its target and logged slots. An exact-slot estimator keeps 1 row in n per
slot; PBM keeps about (examinable slots / n) per item: several times the rows, a much
narrower interval, at the price of the click-model assumption. Intervals: bootstrap over
requests (the examination curve re-estimated in every replicate).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ranker_assets.evaluation.metrics import ranks_within
from ranker_assets.evaluation.offline import request_multipliers


def slate_estimates(
    logged: pd.DataFrame,
    scores: np.ndarray,
    heads: Sequence[str],
    k: int,
    samples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Per head: IPS and SNIPS of the top-k value of ordering by `scores`, with intervals.

    `logged` holds every served candidate of the randomized requests: request_id, position,
    propensity and the head labels.
    """
    codes = pd.factorize(logged["request_id"])[0]
    n_req = int(codes.max()) + 1 if len(codes) else 0
    rank = ranks_within(codes, scores)
    position = logged["position"].to_numpy()
    matched = (rank < k) & (position == rank)
    iw = np.where(matched, 1.0 / logged["propensity"].to_numpy(dtype=np.float64), 0.0)
    mult = request_multipliers(n_req, samples, seed)
    tail = (1 - confidence) / 2
    rows = []
    slot_of = np.where(matched, rank, k)  # k = "not matched", dropped by the bincount below
    inv = 1.0 / logged["propensity"].to_numpy(dtype=np.float64)
    for head in heads:
        r = logged[head].to_numpy(dtype=np.float64)
        m_rows = mult[:, codes]  # (B+1, n)
        pbm, pbm_rows = _pbm(m_rows, rank, position, inv, r, k, mult.sum(1))
        total = mult.sum(1)
        ips = (m_rows * (iw * r)).sum(1) / np.where(total > 0, total, np.nan)
        snips = np.zeros(len(mult))
        for j in range(k):
            at = slot_of == j
            num = (m_rows[:, at] * (iw[at] * r[at])).sum(1)
            den = (m_rows[:, at] * iw[at]).sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                snips += np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        for name, values in (("ips", ips), ("snips", snips), ("pbm", pbm)):
            reps = values[1:][np.isfinite(values[1:])]
            low, high = np.quantile(reps, [tail, 1 - tail]) if len(reps) else (np.nan, np.nan)
            rows.append(
                {
                    "head": head,
                    "estimator": name,
                    "value": float(values[0]),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "matched_rows": pbm_rows if name == "pbm" else int(matched.sum()),
                    # Below a handful of matched positives the interval is not trustworthy.
                    "matched_positives": int((matched & (r > 0)).sum()),
                    "requests": n_req,
                }
            )
    return pd.DataFrame(rows)


# A slot counts as examinable (its examination is estimated) with at least this many positives.
MIN_SLOT_POSITIVES = 20


def _pbm(
    m_rows: np.ndarray,
    rank: np.ndarray,
    position: np.ndarray,
    inv: np.ndarray,
    r: np.ndarray,
    k: int,
    requests: np.ndarray,
) -> tuple[np.ndarray, int]:
    """PBM value per bootstrap replicate (row 0: the sample), and the rows it used.

    E[1{item at p} r / P(item at p)] = relevance x exam(p) for every examinable slot p, so
    averaging r x exam(j) / exam(p) / P(item at p) over the |E| examinable slots estimates the
    item's reward at its target slot j, relevance x exam(j).
    """
    slots = [
        p
        for p in range(int(position.max()) + 1)
        if ((position == p) & (r > 0)).sum() >= MIN_SLOT_POSITIVES
    ]
    nan = np.full(len(m_rows), np.nan)
    if not set(range(k)) <= set(slots):  # a target slot's examination is unknown
        return nan, 0
    # Examination per slot and replicate: the propensity-weighted mean reward at that slot.
    exam = np.full((len(m_rows), int(position.max()) + 1), np.nan)
    for p in slots:
        at = position == p
        exam[:, p] = (m_rows[:, at] * (inv[at] * r[at])).sum(1) / (m_rows[:, at] * inv[at]).sum(1)
    used = (rank < k) & np.isin(position, slots)
    ratio = exam[:, rank[used]] / exam[:, position[used]]  # (B+1, used rows)
    total = (m_rows[:, used] * ratio * (inv[used] * r[used])).sum(1) / len(slots)
    return total / np.where(requests > 0, requests, np.nan), int(used.sum())
