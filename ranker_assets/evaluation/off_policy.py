"""Off-policy evaluation on logged randomized traffic: what a model's top-K would earn.

Any log that carries, for every served candidate of a request, its position and the propensity
of that placement (the probability the logging policy put this item in this slot) works here:
uniform random traffic (propensity 1/n) or a bandit policy's per-slot propensities.

The estimand is the expected number of engagements per request, per head, in the top K slots
when the model orders the request's candidates. For each slot j < K the logged item matches the
model's j-th item with the logged propensity; matched rows are re-weighted by 1/propensity
(IPS), or normalized by the sum of their weights per slot (self-normalized IPS, SNIPS: biased
in small samples, far lower variance). Assumes an item's reward depends on the item and its
slot, not on the other items shown. Intervals: bootstrap over requests.
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
    for head in heads:
        r = logged[head].to_numpy(dtype=np.float64)
        m_rows = mult[:, codes]  # (B+1, n)
        total = mult.sum(1)
        ips = (m_rows * (iw * r)).sum(1) / np.where(total > 0, total, np.nan)
        snips = np.zeros(len(mult))
        for j in range(k):
            at = slot_of == j
            num = (m_rows[:, at] * (iw[at] * r[at])).sum(1)
            den = (m_rows[:, at] * iw[at]).sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                snips += np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        for name, values in (("ips", ips), ("snips", snips)):
            reps = values[1:][np.isfinite(values[1:])]
            low, high = np.quantile(reps, [tail, 1 - tail]) if len(reps) else (np.nan, np.nan)
            rows.append(
                {
                    "head": head,
                    "estimator": name,
                    "value": float(values[0]),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "matched_rows": int(matched.sum()),
                    # Below a handful of matched positives the interval is not trustworthy.
                    "matched_positives": int((matched & (r > 0)).sum()),
                    "requests": n_req,
                }
            )
    return pd.DataFrame(rows)
