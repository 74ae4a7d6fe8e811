"""Off-policy estimates on fully randomized simulated traffic, against the simulator's truth."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ranker_assets.evaluation.off_policy import slate_estimates, why_not_estimable
from ranker_assets.metrics import ranks_within
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.simulator import served_days
from ranker_assets.world.truth import candidates_frame, slate_truth
from ranker_assets_tests.conftest import SEED, small_config

HEADS = ("closeup", "click", "repin", "long_click")


def randomized_day(day: date, requests: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Every served candidate of a day served in random order, with labels and truth, and the
    heuristic policy's scores for them."""
    world = small_config().world
    served = next(served_days(world, day, 1, requests, SEED, HeuristicScorer(), 1.0))
    frame = candidates_frame(served)
    return frame, HeuristicScorer().score(served.features).ravel()


@pytest.fixture(scope="module")
def days() -> list[tuple[pd.DataFrame, np.ndarray]]:
    return [randomized_day(date(2026, 11, 2 + i), 5000) for i in range(5)]


@pytest.mark.parametrize("estimator", ["snips", "pbm"])
def test_intervals_contain_the_true_value_at_their_nominal_rate(days, estimator: str) -> None:
    """95% intervals over 5 days x 4 heads: at most 3 of 20 may miss (P < 2% if they are valid),
    and pooled over days each head's estimate is within 10% of the truth."""
    world = small_config().world
    covered, estimates, truths = [], [], []
    for frame, scores in days:
        est = slate_estimates(frame, scores, HEADS, 3, 200, 0.95, 0)
        e = est[est["estimator"] == estimator].set_index("head")
        truth = slate_truth(frame, scores, HEADS, 3, world)
        covered += [e.loc[h, "ci_low"] <= truth[h] <= e.loc[h, "ci_high"] for h in HEADS]
        estimates.append(e["value"])
        truths.append(pd.Series(truth))
    assert sum(covered) >= 17, covered
    pooled = pd.concat(estimates, axis=1).mean(1) / pd.concat(truths, axis=1).mean(1)
    assert pooled.between(0.9, 1.1).all(), pooled


def test_pbm_uses_every_top_item_and_narrows_the_interval_of_snips(days) -> None:
    for frame, scores in days:
        est = slate_estimates(frame, scores, HEADS, 3, 200, 0.9, 0)
        e = est.set_index(["estimator", "head"])
        # ~3 slots x 5,000 requests / 50 candidates match exactly; PBM uses all 3 x 5,000.
        assert (e.loc["snips", "matched_rows"] > 200).all()
        assert (e.loc["pbm", "matched_rows"] == 15_000).all()
        width = e["ci_high"] - e["ci_low"]
        assert (width.loc["pbm"] < 0.8 * width.loc["snips"]).all(), width


def test_a_better_ranking_has_a_higher_true_and_estimated_value(days) -> None:
    frame, heuristic = days[0]
    world = small_config().world
    good, bad = (slate_truth(frame, s, HEADS, 3, world) for s in (heuristic, -heuristic))
    assert all(good[h] > 1.5 * bad[h] for h in HEADS)
    est = {
        name: slate_estimates(frame, s, ("repin",), 3, 50, 0.9, 0).set_index("estimator")
        for name, s in (("good", heuristic), ("bad", -heuristic))
    }
    assert est["good"].loc["snips", "value"] > est["bad"].loc["snips", "value"]


def test_ranks_are_per_request_and_ips_counts_only_matching_slots() -> None:
    logged = pd.DataFrame(
        {
            "request_id": [1, 1, 1, 2, 2, 2],
            "position": [0, 1, 2, 2, 1, 0],
            "propensity": [1 / 3] * 6,
            "click": [1, 0, 0, 0, 0, 1],
        }
    )
    scores = np.array([0.9, 0.5, 0.1, 0.9, 0.5, 0.1])
    assert ranks_within(np.array([0, 0, 0, 1, 1, 1]), scores).tolist() == [0, 1, 2, 0, 1, 2]
    est = slate_estimates(logged, scores, ("click",), 1, 20, 0.9, 0).set_index("estimator")
    # Request 1 matches slot 0 (click, weight 3); request 2 shows its top item at slot 2: no match.
    assert est.loc["ips", "value"] == pytest.approx(3 * 1 / 2)
    assert est.loc["snips", "value"] == pytest.approx(1.0)
    assert est.loc["ips", "matched_rows"] == 1


def test_pbm_is_unbiased_and_tighter_than_snips_when_rewards_follow_the_position_model() -> None:
    """Rewards = relevance x examination of the slot, items placed uniformly at random: PBM
    recovers the top-3 value from every examinable slot, with a narrower interval."""
    rng = np.random.default_rng(0)
    n, c = 4000, 20
    exam = np.r_[1.0, 0.7, 0.5, 0.35, 0.25, np.zeros(c - 5)]
    relevance = rng.beta(1, 4, (n, c))
    position = np.argsort(rng.random((n, c)), axis=1)
    click = rng.random((n, c)) < relevance * exam[position]
    logged = pd.DataFrame(
        {
            "request_id": np.repeat(np.arange(n), c),
            "position": position.ravel(),
            "propensity": 1 / c,
            "click": click.ravel().astype(np.int8),
        }
    )
    scores = relevance + rng.normal(0, 0.05, (n, c))  # a good, imperfect ranking
    top = np.argsort(-scores, axis=1)[:, :3]
    truth = float((np.take_along_axis(relevance, top, 1) * exam[:3]).sum(1).mean())
    est = slate_estimates(logged, scores.ravel(), ("click",), 3, 200, 0.9, 0)
    e = est.set_index("estimator")
    assert e.loc["pbm", "ci_low"] <= truth <= e.loc["pbm", "ci_high"]
    assert abs(e.loc["pbm", "value"] / truth - 1) < 0.05
    width = e["ci_high"] - e["ci_low"]
    assert width["pbm"] < 0.8 * width["snips"]
    assert e.loc["pbm", "matched_rows"] > 4 * e.loc["snips", "matched_rows"]


def test_logs_of_one_item_per_slot_are_refused_not_estimated() -> None:
    """With no more than k logged candidates per request, every model's top k is the logged
    set: the estimate would not depend on the model, so none is made, and the reason says why."""
    slots = pd.DataFrame({"request_id": np.repeat(np.arange(50), 3), "position": [0, 1, 2] * 50})
    reason = why_not_estimable(slots, k=3)
    assert reason is not None and "at most 3 candidate(s) (one per slot)" in reason
    assert why_not_estimable(slots.iloc[:0], k=3) == "no randomized rows on this day"
    wider = pd.concat([slots, pd.DataFrame({"request_id": [0], "position": [3]})])
    assert why_not_estimable(wider, k=3) is None
