"""Offline metrics and paired intervals: batch forms agree with the plain ones; slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranker_assets.config import EvaluationConfig, SliceSpec
from ranker_assets.evaluation.offline import (
    compare_models,
    metric_batch,
    request_multipliers,
    slice_masks,
)
from ranker_assets.metrics import calibration_ratio, hit_at_k, log_loss, weighted_auc


def _rows(n: int = 6000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 2)))).astype(np.int8)
    rows = pd.DataFrame(
        {
            "request_id": rng.integers(0, 800, n),
            "weight": rng.choice([1.0, 10.0], n),
            "click": y,
            "platform": rng.choice(["ios", "web"], n),
            "activity": rng.random(n) * 3,
        }
    )
    return rows, signal


def test_batch_metrics_equal_the_plain_definitions() -> None:
    rows, signal = _rows()
    p = 1 / (1 + np.exp(-(signal - 2)))
    y, w = rows["click"].to_numpy(float), rows["weight"].to_numpy()
    codes = pd.factorize(rows["request_id"])[0]
    got = metric_batch(y, p, w, codes, np.ones((1, codes.max() + 1)), 3)
    assert got["auc"][0] == pytest.approx(weighted_auc(y, p, w))
    assert got["log_loss"][0] == pytest.approx(log_loss(y, p, w))
    assert got["calibration"][0] == pytest.approx(calibration_ratio(y, p, w))
    assert got["hit_at_3"][0] == pytest.approx(hit_at_k(codes, y, p, 3)[0])


def test_every_bootstrap_replicate_equals_the_plain_metrics_on_its_reweighted_rows() -> None:
    """A replicate weighs each row by its request's multiplier; with tied scores too."""
    rows, signal = _rows()
    p = np.round(1 / (1 + np.exp(-(signal - 2))), 2)  # many ties
    y, w = rows["click"].to_numpy(float), rows["weight"].to_numpy()
    codes = pd.factorize(rows["request_id"])[0]
    mult = request_multipliers(codes.max() + 1, 3, seed=5)
    got = metric_batch(y, p, w, codes, mult, 3)
    for r in range(1, 4):
        rw = w * mult[r][codes]
        assert got["auc"][r] == pytest.approx(weighted_auc(y, p, rw), rel=1e-12)
        assert got["log_loss"][r] == pytest.approx(log_loss(y, p, rw), rel=1e-12)
        assert got["calibration"][r] == pytest.approx(calibration_ratio(y, p, rw), rel=1e-12)
        hit = hit_at_k(codes, y, p, 3, request_weights=mult[r])[0]
        assert got["hit_at_3"][r] == pytest.approx(hit, rel=1e-12)
    assert len({round(float(a), 12) for a in got["auc"]}) == 4  # the replicates differ


def test_hit_at_k_counts_requests_with_a_positive_in_their_top_k() -> None:
    codes = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    y = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.1, 0.9, 0.2, 0.1, 0.5, 0.4])
    assert hit_at_k(codes, y, s, 1) == (0.5, 2)  # request 2 has no positive: not counted
    assert hit_at_k(codes, y, s, 2) == (0.5, 2)
    # Three rows cannot miss a top 3, whatever the scores (one logged item per slot): no
    # request counts, and the value is n/a rather than a perfect 1.0.
    value, counted = hit_at_k(codes, y, s, 3)
    assert np.isnan(value) and counted == 0


def test_paired_intervals_separate_a_better_model_and_cover_an_identical_one() -> None:
    rows, signal = _rows()
    rng = np.random.default_rng(1)
    good = pd.DataFrame({"p_click": 1 / (1 + np.exp(-(signal - 2)))})
    noisy = pd.DataFrame(
        {"p_click": 1 / (1 + np.exp(-(signal + 2 * rng.normal(size=len(rows)) - 2)))}
    )
    cfg = EvaluationConfig(bootstrap_samples=200)
    out = compare_models(rows, {"challenger": good, "champion": noisy}, ["click"], cfg, 30)
    diff = out[(out["model"] == "difference") & (out["metric"] == "auc")].iloc[0]
    assert diff["ci_low"] > 0  # clearly better
    same = compare_models(rows, {"challenger": good, "champion": good}, ["click"], cfg, 30)
    d = same[(same["model"] == "difference") & (same["metric"] == "auc")].iloc[0]
    assert d["value"] == 0 and d["ci_low"] == 0 == d["ci_high"]


def test_slices_by_value_and_numeric_buckets_and_insufficient_positives() -> None:
    rows, signal = _rows(n=2000)
    masks = slice_masks(
        rows, [SliceSpec(column="platform"), SliceSpec(column="activity", bins=(1.0, 2.0))]
    )
    assert set(masks) == {
        "all",
        "platform=ios",
        "platform=web",
        "activity=<1",
        "activity=1-2",
        "activity=>=2",
    }
    assert sum(masks[f"activity={b}"].sum() for b in ("<1", "1-2", ">=2")) == len(rows)
    scores = {"challenger": pd.DataFrame({"p_click": signal})}
    out = compare_models(rows, scores, ["click"], EvaluationConfig(bootstrap_samples=20), 10**6)
    assert not out["sufficient"].any()
    with pytest.raises(KeyError, match="nope"):
        slice_masks(rows, [SliceSpec(column="nope")])
