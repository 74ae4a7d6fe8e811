"""The closed loop's holdout: stable arms per user, each arm served by its own policy."""

from __future__ import annotations

from datetime import date

import numpy as np

from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.holdout import (
    HOLDOUT,
    TREATMENT,
    HoldoutScorer,
    arm_engagement,
    holdout_arm,
)
from ranker_assets.world.policies import Features, HeuristicScorer
from ranker_assets.world.traffic import simulate_day
from ranker_assets_tests.conftest import SEED, small_config


class Reversed:
    """The heuristic upside down: a deliberately bad policy."""

    name = "reversed"

    def score(self, features: Features) -> np.ndarray:
        return -HeuristicScorer().score(features)


def test_arms_are_a_stable_share_of_users() -> None:
    users = np.arange(200_000)
    held = holdout_arm(users, 0.1)
    assert abs(held.mean() - 0.1) < 0.005
    assert np.array_equal(held, holdout_arm(users, 0.1))
    assert not holdout_arm(users, 0.0).any()


def test_each_arm_is_served_by_its_policy_and_reports_its_engagement() -> None:
    world = small_config().world
    pop = build_population(world, SEED)
    day = date(2026, 11, 3)
    policy = HoldoutScorer(HeuristicScorer(), Reversed(), 0.3)
    served = simulate_day(
        world, pop, day_state(world, pop, SEED, day), SEED, day, 3000, policy, 0.0
    )
    held = policy.arm(served.user_id)
    heuristic = HeuristicScorer().score(served.features)
    top = np.argmax(np.where(served.position == 0, 1, 0), axis=1)
    best = np.argmax(heuristic, axis=1)
    assert (top[~held] == best[~held]).all()  # the champion arm shows the best pin first
    assert (top[held] == np.argmin(heuristic, axis=1)[held]).all()
    arms = arm_engagement(served, held)
    assert arms[TREATMENT]["requests"] + arms[HOLDOUT]["requests"] == 3000
    for head in ("closeup", "repin"):
        assert arms[TREATMENT][head] > 1.2 * arms[HOLDOUT][head]
