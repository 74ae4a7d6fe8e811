"""Serving policies: how the world orders a request's candidates.

A policy sees only what a real ranking service sees (the observed features), never the hidden
truth. `Scorer` is the plug: the heuristic baseline implements it today, and a trained ranker
(the deployed champion) implements it when it is put in charge of serving.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

# (n_requests, n_candidates) arrays by column; with recent actions also (n_requests, L) arrays
# by sequence-log column, right-aligned, and how many of each row are real under this key.
Features = dict[str, np.ndarray]
SEQUENCE_COUNT = "action_count"


class Scorer(Protocol):
    """Anything that scores a batch of requests: features are (n_requests, n_candidates) arrays."""

    name: str

    def score(self, features: Features) -> np.ndarray: ...


class HeuristicScorer:
    """The baseline production policy: relevance to the query pin plus popularity and quality."""

    name = "heuristic"

    def score(self, features: Features) -> np.ndarray:
        return (
            features["query_similarity"]
            + 0.15 * np.log1p(features["pin_popularity"])
            + 0.5 * features["pin_quality_score"]
        )


def serve(
    scores: np.ndarray, randomized: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Order candidates by score, except randomized requests, which get a uniform shuffle.

    Returns each candidate's position (0 = top) and the propensity of that placement: 1/n for
    a uniform random order, 1.0 for the deterministic production policy.
    """
    n, c = scores.shape
    keyed = np.where(randomized[:, None], rng.random((n, c)), -scores)
    order = np.argsort(keyed, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(c)[None, :].repeat(n, axis=0), axis=1)
    propensity = np.where(randomized[:, None], 1.0 / c, 1.0) * np.ones((1, c))
    return position.astype(np.int16), propensity.astype(np.float64)
