"""The simulator's ground truth of a ranking: what a top-K would really earn, in expectation.

Mirrors the client in traffic.py: slot j is impressed when the geometric impression depth
exceeds j, examined with the request's position-bias curve, and an examined pin is hidden with
p_hide, else engaged per head with that head's hidden probability (long-click = click x
long-given-click, already folded into p_long_click). Only the simulator can compute this;
the off-policy estimates are judged against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ranker_assets.config import WorldConfig
from ranker_assets.metrics import ranks_within
from ranker_assets.world.recent_actions import per_request_lists
from ranker_assets.world.traffic import ServedDay
from ranker_assets.world.vocabulary import CONTENT_TYPES, EVENT_TYPES


def candidates_frame(served: ServedDay) -> pd.DataFrame:
    """Every served candidate of a day, one row each: request, position, propensity, observed
    features, the engagements that happened (0/1 per type) and the hidden probabilities."""
    n, c = served.pin_id.shape
    frame = pd.DataFrame(
        {
            "request_id": np.repeat(served.request_id, c),
            "position": served.position.ravel(),
            "propensity": served.propensity.ravel(),
            "impressed": served.impressed.ravel(),
            "content_type": np.asarray(CONTENT_TYPES, dtype=object)[served.content_type.ravel()],
            **{name: values.ravel() for name, values in served.features.items()},
        }
    )
    for code, name in enumerate(EVENT_TYPES[1:], start=1):
        hit = np.zeros((n, c), dtype=bool)
        sel = served.event_type == code
        hit[served.event_request[sel], served.event_slot[sel]] = True
        frame[name] = hit.ravel().astype(np.int8)
    for name, values in served.truth.items():
        frame[name] = values.ravel()
    if served.recent is not None:  # each candidate row refers to its request's action lists
        frame["request_ts"] = np.repeat(served.request_ts_us.view("datetime64[us]"), c)
        lists = per_request_lists(served.recent.columns(), served.recent.count)
        for name, values in lists.items():
            frame[name] = np.repeat(values, c)
    return frame


def slate_truth(
    truth: pd.DataFrame, scores: np.ndarray, heads: Sequence[str], k: int, world: WorldConfig
) -> dict[str, float]:
    """Per head: expected engagements per request in the top k of ordering `truth` by `scores`.

    `truth` holds every served candidate of the requests (ground-truth columns: request_id,
    position, p_examine, p_hide and p_<head>); `scores` is aligned with it.
    """
    codes = pd.factorize(truth["request_id"])[0]
    n_req = int(codes.max()) + 1 if len(codes) else 0
    rank = ranks_within(codes, scores)
    position = truth["position"].to_numpy()
    # The examination curve of each request, read at the logged slot j (it depends on slot only).
    examine = np.zeros((n_req, k))
    at_top = position < k
    examine[codes[at_top], position[at_top]] = truth["p_examine"].to_numpy()[at_top]
    shown = (1.0 - 1.0 / world.mean_impressed) ** np.arange(k)  # P(depth > j)
    chosen = rank < k
    reach = shown[rank[chosen]] * examine[codes[chosen], rank[chosen]]
    p_hide = truth["p_hide"].to_numpy()[chosen]
    out = {}
    for head in heads:
        p = truth[f"p_{head}"].to_numpy()[chosen]
        per_slot = reach * (p if head == "hide" else (1.0 - p_hide) * p)
        out[head] = float(per_slot.sum() / n_req) if n_req else float("nan")
    return out
