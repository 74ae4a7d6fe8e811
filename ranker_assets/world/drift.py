"""Day-to-day drift: topic appeal and user interests move, so yesterday's model goes stale.

Drift is a random walk indexed by days since the world's origin, so any single day can be
generated on its own and still agree with every other day simulated from the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from ranker_assets.config import WorldConfig
from ranker_assets.world.entities import N_INTEREST_FACTORS, Population

# Observed user-topic affinity is computed from a profile this many days old (feature staleness).
PROFILE_LAG_DAYS = 7
# Share of yesterday's drift that survives today (AR(1) coefficient).
DRIFT_PERSISTENCE = 0.95


@dataclass(frozen=True)
class DayState:
    """The hidden state of the world on one day."""

    day_index: int
    topic_appeal: np.ndarray  # (T,) additive engagement logit per topic
    user_interest: np.ndarray  # (U, T) today's true topic interest, rows sum to 1
    stale_interest: np.ndarray  # (U, T) the profile the feature store serves (lagged)
    lagged_topic_appeal: np.ndarray  # (T,) what popularity counters reflect (yesterday)


def day_index(cfg: WorldConfig, day: date) -> int:
    idx = (day - date.fromisoformat(cfg.origin)).days
    if idx < 0:
        raise ValueError(
            f"day {day} is before the world origin {cfg.origin} (world.origin in config)"
        )
    return idx


def _walk(seed: int, stream: int, steps: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Mean-reverting (AR(1)) drift for days 0..steps-1; day 0, the origin, has none.

    Mean reversion keeps the world's spread stationary however far from the origin a day is,
    while day-to-day moves stay of size `scale`.
    """
    inc = np.random.default_rng([seed, stream]).normal(0.0, scale, size=(steps, *shape))
    out = np.zeros((steps, *shape))
    for d in range(1, steps):
        out[d] = DRIFT_PERSISTENCE * out[d - 1] + inc[d]
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def day_state(cfg: WorldConfig, pop: Population, seed: int, day: date) -> DayState:
    """The world's hidden state on `day`: deterministic in (config, seed, day)."""
    d = day_index(cfg, day)
    steps = d + 1
    appeal = _walk(seed, 1, steps, (cfg.n_topics,), cfg.topic_drift)
    factors = _walk(seed, 2, steps, (N_INTEREST_FACTORS, cfg.n_topics), cfg.interest_drift)
    lag = max(d - PROFILE_LAG_DAYS, 0)
    return DayState(
        day_index=d,
        topic_appeal=appeal[d].astype(np.float32),
        user_interest=_softmax(pop.user_base_logits + pop.user_loadings @ factors[d]),
        stale_interest=_softmax(pop.user_base_logits + pop.user_loadings @ factors[lag]),
        lagged_topic_appeal=appeal[max(d - 1, 0)].astype(np.float32),
    )
