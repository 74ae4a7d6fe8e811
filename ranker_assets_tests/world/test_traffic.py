from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.traffic import US_PER_S, simulate_day
from ranker_assets.world.vocabulary import EVENT_TYPES
from ranker_assets_tests.conftest import SEED, START, small_config


@pytest.fixture(scope="module")
def world():
    cfg = small_config()
    return cfg, build_population(cfg.world, SEED)


def _day(world, ds: date = START, n: int = 3000, share: float = 0.02):
    cfg, pop = world
    return simulate_day(
        cfg.world, pop, day_state(cfg.world, pop, SEED, ds), SEED, ds, n, HeuristicScorer(), share
    )


def test_candidates_are_distinct_and_never_the_query(world) -> None:
    day = _day(world)
    srt = np.sort(day.pin_id, axis=1)
    assert not (srt[:, 1:] == srt[:, :-1]).any()
    assert not (day.pin_id == day.query_pin_id[:, None]).any()


def test_same_seed_same_day_different_seed_different_day(world) -> None:
    a, b = _day(world), _day(world)
    assert np.array_equal(a.pin_id, b.pin_id) and np.array_equal(a.event_ts_us, b.event_ts_us)
    cfg, _ = world
    other = simulate_day(
        cfg.world,
        build_population(cfg.world, SEED + 1),
        day_state(cfg.world, build_population(cfg.world, SEED + 1), SEED + 1, START),
        SEED + 1,
        START,
        3000,
        HeuristicScorer(),
        0.02,
    )
    assert not np.array_equal(a.pin_id, other.pin_id)


def test_drift_moves_topic_appeal_and_interests_day_to_day(world) -> None:
    cfg, pop = world
    d1 = day_state(cfg.world, pop, SEED, START)
    d2 = day_state(cfg.world, pop, SEED, START + timedelta(days=1))
    d30 = day_state(cfg.world, pop, SEED, START + timedelta(days=30))
    step = np.abs(d2.topic_appeal - d1.topic_appeal).mean()
    assert 0.05 < step < 0.5  # about world.topic_drift per day
    assert np.abs(d30.topic_appeal - d1.topic_appeal).mean() > step
    assert (
        np.abs(d30.user_interest - d1.user_interest).mean()
        > np.abs(d2.user_interest - d1.user_interest).mean()
    )
    # The state of a day does not depend on which other days were simulated before it.
    again = day_state(cfg.world, pop, SEED, START + timedelta(days=1))
    assert np.array_equal(again.user_interest, d2.user_interest)


def test_day_before_world_origin_is_rejected(world) -> None:
    cfg, pop = world
    with pytest.raises(ValueError, match=r"world\.origin"):
        day_state(cfg.world, pop, SEED, date(2020, 1, 1))


def test_engagements_follow_impressions_and_some_cross_midnight(world) -> None:
    day = _day(world, n=4000)
    imp = day.event_type == EVENT_TYPES.index("impression")
    first_imp = {}
    for r, s, t in zip(
        day.event_request[imp], day.event_slot[imp], day.event_ts_us[imp], strict=True
    ):
        first_imp[(r, s)] = t
    eng = ~imp
    assert all(
        t > first_imp[(r, s)]
        for r, s, t in zip(
            day.event_request[eng], day.event_slot[eng], day.event_ts_us[eng], strict=True
        )
    )
    us_per_day = 86_400 * US_PER_S
    day_end = int(day.request_ts_us.min() // us_per_day + 1) * us_per_day
    assert (day.event_ts_us[eng] >= day_end).sum() > 0
    assert day.request_ts_us.max() < day_end


def test_long_click_only_after_click(world) -> None:
    day = _day(world)
    keys = {
        t: set(
            zip(
                day.event_request[day.event_type == i],
                day.event_slot[day.event_type == i],
                strict=True,
            )
        )
        for i, t in enumerate(EVENT_TYPES)
    }
    assert keys["long_click"] and keys["long_click"] <= keys["click"]


def test_position_bias_on_randomized_traffic(world) -> None:
    """On uniform random order, the closeup rate falls with position: examination, not relevance."""
    day = _day(world, n=6000, share=1.0)
    closeup = np.zeros(day.pin_id.shape, dtype=bool)
    sel = day.event_type == EVENT_TYPES.index("closeup")
    closeup[day.event_request[sel], day.event_slot[sel]] = True
    top = closeup[day.impressed & (day.position == 0)].mean()
    deep = closeup[day.impressed & (day.position >= 5)].mean()
    assert top > 1.3 * deep


def test_engagement_rates_match_hidden_probabilities(world) -> None:
    """Realized rates agree with the ground truth the simulator records (3 sigma)."""
    day = _day(world, n=6000)
    clicked = np.zeros(day.pin_id.shape, dtype=bool)
    sel = day.event_type == EVENT_TYPES.index("click")
    clicked[day.event_request[sel], day.event_slot[sel]] = True
    # A click needs examination and no hide: its probability is p_examine * p_click * (1 - p_hide).
    expected = (day.truth["p_examine"] * day.truth["p_click"] * (1 - day.truth["p_hide"]))[
        day.impressed
    ]
    observed = clicked[day.impressed]
    sd = np.sqrt((expected * (1 - expected)).sum())
    assert abs(observed.sum() - expected.sum()) < 3 * sd


def test_new_pins_are_born_every_day_and_age(world) -> None:
    """The catalogue renews: each day has pins no earlier day had, born today (age 0), and a
    pin seen on two days is a day older on the second."""
    cfg, pop = world
    d1 = day_state(cfg.world, pop, SEED, START).catalogue
    d2 = day_state(cfg.world, pop, SEED, START + timedelta(days=1)).catalogue
    born = np.setdiff1d(d2.pin_id, d1.pin_id)
    assert len(born) == pytest.approx(cfg.world.n_pins * cfg.world.new_pin_share_per_day, abs=1)
    assert (d2.pin_age_days[np.isin(d2.pin_id, born)] == 0).all()
    assert len(d2.pin_id) == len(d1.pin_id) == cfg.world.n_pins  # as many retired
    _, i1, i2 = np.intersect1d(d1.pin_id, d2.pin_id, return_indices=True)
    assert np.allclose(d2.pin_age_days[i2] - d1.pin_age_days[i1], 1.0)
    # A pin is the same pin whichever day it is seen on.
    assert np.array_equal(d1.pin_topic[i1], d2.pin_topic[i2])
    assert np.array_equal(d1.pin_quality[i1], d2.pin_quality[i2])
    # Served traffic carries the new pins with their age, and no popularity counts yet.
    day = _day(world, START + timedelta(days=1), n=4000)
    newborn = np.isin(day.pin_id, born)
    assert newborn.any()
    assert (day.features["pin_age_days"][newborn] == 0).all()
    assert (day.features["pin_popularity"][newborn] == 0).all()


def test_a_new_pin_is_more_engaging_than_the_same_pin_later(world) -> None:
    """The lifecycle: novelty rises over the first day, then fades towards the pin's baseline."""
    from ranker_assets.world.drift import exposure, novelty

    cfg, _ = world
    age = np.array([0.0, 1.0, 3.0, 10.0, 200.0])
    boost = novelty(cfg.world, age)
    assert boost[0] > 0 and boost.max() > boost[2] > boost[3] > boost[4] >= 0
    assert boost[4] < 1e-3
    assert exposure(cfg.world, np.array([cfg.world.exposure_half_life_days]))[0] == 0.5


def test_trends_rise_and_fade_and_topics_follow_the_week() -> None:
    """A static-catalogue world with only trends (no drift) shows bumps that come and go."""
    world_cfg = small_config().world.model_copy(
        update={"topic_drift": 0.0, "weekly_logit": 0.0, "trend_rate_per_day": 1.0}
    )
    pop = build_population(world_cfg, SEED)
    appeal = np.stack(
        [day_state(world_cfg, pop, SEED, START + timedelta(days=i)).topic_appeal for i in range(40)]
    )
    assert appeal.max() > 0.5 * world_cfg.trend_logit and appeal.min() >= 0
    peak_day, topic = np.unravel_index(appeal.argmax(), appeal.shape)
    assert appeal[:, topic].min() < appeal[peak_day, topic] / 2  # it faded (or had not begun)
    weekly = world_cfg.model_copy(update={"trend_rate_per_day": 0.0, "weekly_logit": 0.3})
    pop = build_population(weekly, SEED)
    week = [day_state(weekly, pop, SEED, START + timedelta(days=i)).topic_appeal for i in range(8)]
    assert np.allclose(week[0], week[7]) and not np.allclose(week[0], week[1])


def test_a_static_catalogue_has_no_births() -> None:
    cfg = small_config()
    static = cfg.world.model_copy(update={"new_pin_share_per_day": 0.0})
    pop = build_population(static, SEED)
    d1 = day_state(static, pop, SEED, START).catalogue
    d9 = day_state(static, pop, SEED, START + timedelta(days=8)).catalogue
    assert np.array_equal(d1.pin_id, d9.pin_id)
    assert np.allclose(d9.pin_age_days - d1.pin_age_days, 8.0)
