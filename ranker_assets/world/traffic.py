"""One simulated day of closeup traffic: requests, candidates, serving, the client, engagements.

Vectorized over (requests x candidates): a day of 100k requests x 50 candidates is a handful of
(100k, 50) numpy arrays, with no Python loop per request or candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from ranker_assets.config import WorldConfig
from ranker_assets.world.drift import DayState, exposure, novelty
from ranker_assets.world.entities import Population
from ranker_assets.world.policies import SEQUENCE_COUNT, Features, Scorer, serve
from ranker_assets.world.recent_actions import EngagementHistory, RecentActions, recent_actions
from ranker_assets.world.vocabulary import CONTENT_TYPES, EVENT_TYPES

US_PER_S = 1_000_000
MAX_REQUESTS_PER_DAY = 10_000_000
# Position bias: the chance an impressed slot is really looked at falls as (1 + position)^-ETA.
EXAMINATION_ETA = 0.6
PLATFORM_EXAMINATION = np.array([1.0, 0.95, 0.85])  # ios, android, web
# Logit intercepts per action, set so that rates per impression look like a closeup surface.
INTERCEPTS = {"closeup": -3.4, "click": -4.0, "repin": -5.6, "long_click": -1.6, "hide": -2.8}
_PRODUCT, _VIDEO = CONTENT_TYPES.index("product"), CONTENT_TYPES.index("video")


@dataclass(frozen=True)
class ServedDay:
    """Everything that happened on a day, hidden truth included; the logger sees only a part."""

    ds: date
    request_id: np.ndarray  # (n,) int64, unique across days
    user_id: np.ndarray  # (n,) int64
    query_pin_id: np.ndarray  # (n,) int64
    request_ts_us: np.ndarray  # (n,) int64 microseconds since the Unix epoch (UTC)
    platform: np.ndarray  # (n,) index into PLATFORMS
    randomized: np.ndarray  # (n,) bool: served in uniform random order
    pin_id: np.ndarray  # (n, C) int64
    content_type: np.ndarray  # (n, C) index into CONTENT_TYPES
    position: np.ndarray  # (n, C) int16, 0 = top
    propensity: np.ndarray  # (n, C) probability of this placement under the serving policy
    impressed: np.ndarray  # (n, C) bool
    features: Features  # observed features, (n, C) each
    truth: dict[str, np.ndarray]  # hidden probabilities, (n, C) each
    event_request: np.ndarray  # (E,) request row of each client event
    event_slot: np.ndarray  # (E,) candidate slot of each client event
    event_type: np.ndarray  # (E,) index into EVENT_TYPES
    event_ts_us: np.ndarray  # (E,) int64
    recent: RecentActions | None = None  # the users' last actions before each request

    @property
    def n_requests(self) -> int:
        return len(self.request_id)

    @property
    def n_candidates(self) -> int:
        return self.pin_id.shape[1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _categorical_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a probability matrix, vectorized."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _dedupe_candidates(
    cands: np.ndarray, query: np.ndarray, n_pins: int, rng: np.random.Generator
) -> np.ndarray:
    """Replace repeated pins (and the query pin itself) in each row with fresh random pins."""
    for _ in range(50):
        order = np.argsort(cands, axis=1, kind="stable")
        s = np.take_along_axis(cands, order, axis=1)
        dup_sorted = np.zeros_like(s, dtype=bool)
        dup_sorted[:, 1:] = s[:, 1:] == s[:, :-1]
        dup = np.empty_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        dup |= cands == query[:, None]
        if not dup.any():
            return cands
        cands[dup] = rng.integers(0, n_pins, size=int(dup.sum()))
    raise RuntimeError("could not draw distinct candidates; world.n_pins is too small")


def _request_times(day_start_us: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Request timestamps with an evening peak, so some sessions run across midnight."""
    hours = np.arange(24)
    weight = 1.0 + 0.7 * np.cos(2 * np.pi * (hours - 21) / 24)
    hour = rng.choice(24, size=n, p=weight / weight.sum())
    offset_us = ((hour + rng.random(n)) * 3600 * US_PER_S).astype(np.int64)
    return np.sort(day_start_us + offset_us)


def _engagement_delays(
    shape: tuple[int, ...], late_share: float, rng: np.random.Generator
) -> np.ndarray:
    """Delay after the impression: seconds to minutes, plus rare client batch uploads (hours)."""
    delay_s = rng.lognormal(np.log(30.0), 1.5, size=shape)
    late = rng.random(shape) < late_share
    delay_s = np.where(late, delay_s + rng.random(shape) * 36 * 3600, delay_s)
    return (delay_s * US_PER_S).astype(np.int64)


def simulate_day(
    cfg: WorldConfig,
    pop: Population,
    state: DayState,
    seed: int,
    day: date,
    n_requests: int,
    scorer: Scorer,
    randomized_share: float,
    sequence_length: int = 0,
    history: EngagementHistory | None = None,
) -> ServedDay:
    """Simulate `n_requests` closeup requests on `day`; deterministic in all arguments.

    With `sequence_length`, each request carries its user's last actions (with `history`, their
    engagements of earlier days among them), and the scorer sees them (as a sequence-aware
    ranker in production would)."""
    if not 0 < n_requests <= MAX_REQUESTS_PER_DAY:
        raise ValueError(f"n_requests must be in 1..{MAX_REQUESTS_PER_DAY}, got {n_requests}")
    rng = np.random.default_rng([seed, 3, state.day_index])
    n, c = n_requests, cfg.candidates_per_request
    day_start_us = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * US_PER_S

    # Requests: who, when, on which query pin.
    user = rng.choice(pop.n_users, size=n, p=pop.user_activity / pop.user_activity.sum())
    ts = _request_times(day_start_us, n, rng)
    query_topic = _categorical_rows(state.user_interest[user], rng)
    pins = state.catalogue
    query = pins.sample_pins_in_topics(query_topic, rng)

    # Candidate generation: mostly pins of the query's topic, the rest from the user's interests.
    n_same = round(c * cfg.same_topic_share)
    other_topics = (
        np.stack([_categorical_rows(state.user_interest[user], rng) for _ in range(c - n_same)], 1)
        if c > n_same
        else np.empty((n, 0), dtype=np.int64)
    )
    cand_topics = np.concatenate(
        [np.repeat(query_topic[:, None], n_same, axis=1), other_topics], axis=1
    )
    cands = _dedupe_candidates(
        pins.sample_pins_in_topics(cand_topics, rng), query, pins.n_pins, rng
    )

    # Observed features (what the backend caches) and hidden truth.
    topic = pins.pin_topic[cands]
    ctype = pins.pin_content_type[cands]
    sim = np.zeros((n, c), dtype=np.float32)
    for k in range(cfg.embedding_dim):
        sim += pins.pin_embedding[query, k][:, None] * pins.pin_embedding[cands, k]
    interest = state.user_interest[user[:, None], topic]
    content_pref = pop.user_content_pref[user[:, None], ctype]
    quality = pins.pin_quality[cands]
    age = pins.pin_age_days[cands]
    fresh = novelty(cfg, age)
    # Popularity counters are yesterday's engagement: a pin born today has none yet.
    counted = np.where(
        age >= 1.0,
        pins.pin_base_popularity[cands]
        * exposure(cfg, age - 1.0)
        * np.exp(state.lagged_topic_appeal[topic] + novelty(cfg, age - 1.0)),
        0.0,
    )
    noise = rng.normal(size=(4, n, c)).astype(np.float32)
    features: Features = {
        "query_similarity": sim,
        "user_topic_affinity": state.stale_interest[user[:, None], topic] * np.exp(0.3 * noise[0]),
        "user_content_affinity": content_pref + 0.5 * noise[1],
        "pin_quality_score": _sigmoid(quality + 0.7 * noise[2]),
        "pin_popularity": (100.0 * counted).astype(np.float32),
        "pin_age_days": age,
        "user_activity": np.repeat(pop.user_activity[user, None], c, axis=1).astype(np.float32),
        "candidate_source_rank": np.argsort(np.argsort(-sim, axis=1), axis=1).astype(np.float32),
        "pin_id": pins.pin_id[cands],
        "user_id": np.repeat(user[:, None], c, axis=1).astype(np.int64),
        "pin_topic": topic.astype(np.int64),
        "query_topic": np.repeat(query_topic[:, None], c, axis=1).astype(np.int64),
    }
    recent = None
    served_features = features
    if sequence_length:
        seq_rng = np.random.default_rng([seed, 13, state.day_index])
        recent = recent_actions(cfg, pop, state, user, ts, sequence_length, seq_rng, history)
        served_features = {
            **features,
            **recent.columns(),
            SEQUENCE_COUNT: recent.count,
            "request_ts": ts.view("datetime64[us]"),
            # Target attention compares actions with the candidate's own content type.
            "content_type": np.asarray(CONTENT_TYPES, dtype=object)[ctype],
        }
    # The hidden engagement propensity; its spread sets how much there is to learn.
    base = (
        state.topic_appeal[topic]
        + fresh
        + 0.5 * np.log(interest * cfg.n_topics)
        + 1.0 * sim
        + 0.5 * quality
        + content_pref
        + 0.3 * quality * sim
    )
    is_product, is_video = (ctype == _PRODUCT), (ctype == _VIDEO)
    p_click = _sigmoid(INTERCEPTS["click"] + 0.8 * base + 1.0 * is_product - 0.5 * is_video)
    p_long_given_click = _sigmoid(INTERCEPTS["long_click"] + 0.8 * quality + 0.5 * is_video)
    truth = {
        "p_closeup": _sigmoid(INTERCEPTS["closeup"] + base),
        "p_click": p_click,
        "p_repin": _sigmoid(
            INTERCEPTS["repin"] + 1.1 * base + 0.5 * quality * (interest > 1.0 / cfg.n_topics)
        ),
        "p_long_click": p_click * p_long_given_click,
        "p_hide": _sigmoid(INTERCEPTS["hide"] - 0.8 * base),
    }

    # Serving, then the client: impress the first K slots, examine with position bias, engage.
    randomized = rng.random(n) < randomized_share
    position, propensity = serve(scorer.score(served_features), randomized, rng)
    depth = np.minimum(rng.geometric(1.0 / cfg.mean_impressed, size=n), c)
    impressed = position < depth[:, None]
    platform = pop.user_platform[user]
    p_examine = (
        PLATFORM_EXAMINATION[platform][:, None] * (1.0 + position) ** -EXAMINATION_ETA
    ).astype(np.float32)
    truth["p_examine"] = p_examine
    examined = impressed & (rng.random((n, c)) < p_examine)
    u = rng.random((5, n, c))
    hide = examined & (u[0] < truth["p_hide"])
    engaged = examined & ~hide
    click = engaged & (u[1] < p_click)
    actions = {
        "closeup": engaged & (u[2] < truth["p_closeup"]),
        "click": click,
        "repin": engaged & (u[3] < truth["p_repin"]),
        "long_click": click & (u[4] < p_long_given_click),
        "hide": hide,
    }

    # Client events: an impression per impressed slot, then engagements after it.
    impression_ts = (
        ts[:, None] + (position.astype(np.int64) * 400_000) + rng.integers(0, 200_000, (n, c))
    )
    delay = _engagement_delays((n, c), cfg.late_report_share, rng)
    dwell = rng.integers(10, 60, (n, c)) * US_PER_S
    event_ts = {
        "impression": impression_ts,
        "closeup": impression_ts + delay,
        "click": impression_ts + delay + US_PER_S,
        "repin": impression_ts + delay + 5 * US_PER_S,
        "long_click": impression_ts + delay + US_PER_S + dwell,
        "hide": impression_ts + delay,
    }
    masks = {"impression": impressed, **actions}
    ev_req, ev_slot, ev_type, ev_ts = [], [], [], []
    for name in EVENT_TYPES:
        r, s = np.nonzero(masks[name])
        ev_req.append(r)
        ev_slot.append(s)
        ev_type.append(np.full(len(r), EVENT_TYPES.index(name), dtype=np.int8))
        ev_ts.append(event_ts[name][r, s])

    first_id = (state.day_index + 1) * MAX_REQUESTS_PER_DAY
    return ServedDay(
        ds=day,
        request_id=np.arange(first_id, first_id + n, dtype=np.int64),
        user_id=user.astype(np.int64),
        query_pin_id=pins.pin_id[query],
        request_ts_us=ts,
        platform=platform,
        randomized=randomized,
        pin_id=pins.pin_id[cands],
        content_type=ctype,
        position=position,
        propensity=propensity,
        impressed=impressed,
        features=features,
        truth=truth,
        event_request=np.concatenate(ev_req),
        event_slot=np.concatenate(ev_slot),
        event_type=np.concatenate(ev_type),
        event_ts_us=np.concatenate(ev_ts),
        recent=recent,
    )
