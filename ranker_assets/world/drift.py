"""Day-to-day change: topic appeal and user interests drift, topics trend and follow the week,
pins are born, peak and fade, so yesterday's model goes stale.

Everything is indexed by days since the world's origin (random walks, trends started on earlier
days, pin birth order), so any single day can be generated on its own and still agree with
every other day simulated from the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from ranker_assets.config import WorldConfig
from ranker_assets.world.entities import N_INTEREST_FACTORS, Catalogue, Population

# Observed user-topic affinity is computed from a profile this many days old (feature staleness).
PROFILE_LAG_DAYS = 7
# Share of yesterday's drift that survives today (AR(1) coefficient).
DRIFT_PERSISTENCE = 0.95


@dataclass(frozen=True)
class DayState:
    """The hidden state of the world on one day."""

    day_index: int
    topic_appeal: np.ndarray  # (T,) additive engagement logit per topic (drift, trend, weekday)
    user_interest: np.ndarray  # (U, T) today's true topic interest, rows sum to 1
    stale_interest: np.ndarray  # (U, T) the profile the feature store serves (lagged)
    lagged_topic_appeal: np.ndarray  # (T,) what popularity counters reflect (yesterday)
    catalogue: Catalogue  # the live pins today, with their ages


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


def exposure(cfg: WorldConfig, age: np.ndarray) -> np.ndarray:
    """How often candidate generation finds a pin of this age, relative to a new one."""
    return 0.5 ** (age / cfg.exposure_half_life_days)


def novelty(cfg: WorldConfig, age: np.ndarray) -> np.ndarray:
    """A pin's extra engagement logit from being new: rises over `rise_days`, then halves every
    `novelty_half_life_days`."""
    rise = 1.0 - np.exp(-(age + 0.5) / cfg.rise_days)
    return (cfg.novelty_logit * rise * 0.5 ** (age / cfg.novelty_half_life_days)).astype(np.float32)


def _trends(cfg: WorldConfig, seed: int, d: int) -> np.ndarray:
    """(T,) trend logit of each topic on day d: trends started on the last `trend_days` days,
    each a half-sine bump of height `trend_logit` (several may overlap on one topic)."""
    out = np.zeros(cfg.n_topics)
    for start in range(d - cfg.trend_days + 1, d + 1):
        rng = np.random.default_rng([seed, 11, start + cfg.trend_days])
        topics = rng.integers(0, cfg.n_topics, size=rng.poisson(cfg.trend_rate_per_day))
        phase = (d - start + 0.5) / cfg.trend_days
        np.add.at(out, topics, cfg.trend_logit * np.sin(np.pi * phase))
    return out


def _weekday(cfg: WorldConfig, seed: int, d: int) -> np.ndarray:
    """(T,) each topic's logit on the weekday of day d (zero mean over the week)."""
    table = np.random.default_rng([seed, 12]).normal(0.0, cfg.weekly_logit, (7, cfg.n_topics))
    weekday = (date.fromisoformat(cfg.origin) + timedelta(days=d)).weekday()
    return table[weekday] - table.mean(axis=0)


def day_state(cfg: WorldConfig, pop: Population, seed: int, day: date) -> DayState:
    """The world's hidden state on `day`: deterministic in (config, seed, day)."""
    d = day_index(cfg, day)
    steps = d + 1
    walk = _walk(seed, 1, steps, (cfg.n_topics,), cfg.topic_drift)
    factors = _walk(seed, 2, steps, (N_INTEREST_FACTORS, cfg.n_topics), cfg.interest_drift)
    lag = max(d - PROFILE_LAG_DAYS, 0)
    appeal = [walk[i] + _trends(cfg, seed, i) + _weekday(cfg, seed, i) for i in (d, max(d - 1, 0))]
    return DayState(
        day_index=d,
        topic_appeal=appeal[0].astype(np.float32),
        user_interest=_softmax(pop.user_base_logits + pop.user_loadings @ factors[d]),
        stale_interest=_softmax(pop.user_base_logits + pop.user_loadings @ factors[lag]),
        lagged_topic_appeal=appeal[1].astype(np.float32),
        catalogue=pop.catalogue(d, lambda age: exposure(cfg, age)),
    )
