from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from ranker_assets.config import LoggingConfig
from ranker_assets.logs.logger import feature_log_rows, keep_hash, log_day
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.traffic import ServedDay, simulate_day
from ranker_assets.world.vocabulary import EVENT_TYPES
from ranker_assets_tests.conftest import SEED, START, small_config


@pytest.fixture(scope="module")
def day() -> ServedDay:
    cfg = small_config()
    pop = build_population(cfg.world, SEED)
    return simulate_day(
        cfg.world,
        pop,
        day_state(cfg.world, pop, SEED, START),
        SEED,
        START,
        8000,
        HeuristicScorer(),
        0.05,
    )


def _engaged(day: ServedDay) -> np.ndarray:
    mask = np.zeros(day.pin_id.shape, dtype=bool)
    eng = day.event_type != EVENT_TYPES.index("impression")
    mask[day.event_request[eng], day.event_slot[eng]] = True
    return mask


def _logged_mask(day: ServedDay, cfg: LoggingConfig) -> tuple[np.ndarray, np.ndarray]:
    rows, _, keep_rate, _ = feature_log_rows(day, cfg)
    mask = np.zeros(day.pin_id.size, dtype=bool)
    mask[rows] = True
    rate = np.zeros(day.pin_id.size)
    rate[rows] = keep_rate
    return mask.reshape(day.pin_id.shape), rate.reshape(day.pin_id.shape)


def test_every_engaged_pin_is_logged_with_keep_rate_one(day: ServedDay) -> None:
    logged, rate = _logged_mask(day, LoggingConfig())
    engaged = _engaged(day)
    assert engaged.sum() > 500
    assert logged[engaged].all()
    assert (rate[engaged] == 1.0).all()


def test_impression_only_keep_share_is_the_configured_rate(day: ServedDay) -> None:
    cfg = LoggingConfig(impression_keep_rate=0.1)
    logged, rate = _logged_mask(day, cfg)
    only_imp = day.impressed & ~_engaged(day) & ~day.randomized[:, None]
    n = only_imp.sum()
    share = logged[only_imp].mean()
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / n)
    assert np.allclose(rate[only_imp & logged], 0.1)


def test_nothing_unimpressed_is_logged_outside_randomized_traffic(day: ServedDay) -> None:
    logged, _ = _logged_mask(day, LoggingConfig())
    production = ~day.randomized[:, None] & np.ones_like(logged)
    assert not logged[production & ~day.impressed].any()
    # ... and on randomized traffic every served candidate is logged, impressed or not.
    assert logged[day.randomized].all()


def test_propensities_sum_to_one_per_randomized_request(day: ServedDay) -> None:
    t = log_day(day, LoggingConfig()).feature_log
    rand = t.filter(pc.equal(t["policy"], "randomized")).to_pandas()
    assert rand["request_id"].nunique() == day.randomized.sum() > 0
    sums = rand.groupby("request_id")["propensity"].sum()
    assert np.allclose(sums, 1.0)
    prod = t.filter(pc.equal(t["policy"], "production"))
    assert pc.all(pc.equal(prod["propensity"], 1.0)).as_py()


def test_impression_and_engagement_requests_are_deduplicated(day: ServedDay) -> None:
    logged = log_day(day, LoggingConfig())
    keys = logged.feature_log.select(["request_id", "pin_id"]).to_pandas()
    assert not keys.duplicated().any()
    # Multi-engagement pins and hash-kept engaged pins each requested a log more than once.
    assert logged.n_log_requests > logged.feature_log.num_rows


def test_full_mode_logs_every_served_candidate(day: ServedDay) -> None:
    full = log_day(day, LoggingConfig(mode="full"))
    hybrid = log_day(day, LoggingConfig())
    assert full.feature_log.num_rows == day.pin_id.size == full.ground_truth.num_rows
    assert hybrid.feature_log.num_rows < 0.25 * full.feature_log.num_rows
    assert set(full.feature_log["log_reason"].to_pylist()) == {"full"}


def test_keep_hash_is_uniform_stable_and_salted() -> None:
    req = np.arange(200_000, dtype=np.int64)
    pin = req * 7 % 1009
    u = keep_hash(req, pin, "s")
    assert np.array_equal(u, keep_hash(req, pin, "s"))
    assert (u >= 0).all() and (u < 1).all()
    assert abs(u.mean() - 0.5) < 0.005 and abs((u < 0.1).mean() - 0.1) < 0.003
    assert not np.array_equal(u, keep_hash(req, pin, "other"))


def test_ground_truth_covers_every_served_candidate(day: ServedDay) -> None:
    truth = log_day(day, LoggingConfig()).ground_truth.to_pandas()
    assert len(truth) == day.pin_id.size
    for col in ("p_examine", "p_closeup", "p_click", "p_repin", "p_long_click", "p_hide"):
        assert truth[col].between(0, 1).all()
    assert (truth["p_long_click"] <= truth["p_click"]).all()
