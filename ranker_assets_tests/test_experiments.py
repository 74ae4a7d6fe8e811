"""The experiments at a small scale: the direction of each effect where the simulator makes
it certain (bench/bench_experiments.py runs them at full scale for docs/results.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from experiments.arms import Scale
from experiments.studies import (
    cadence_experiment,
    calibration_experiment,
    logging_experiment,
    reference_experiment,
    teacher_experiment,
)

from ranker_assets.config import RankerConfig
from ranker_assets_tests.conftest import small_config

pytestmark = pytest.mark.spark
SCALE = Scale(requests=3000, days=3, eval_requests=6000, seed=3)


@pytest.fixture(scope="module")
def cfg() -> RankerConfig:
    base = small_config()
    model = base.model.model_copy(update={"epochs": 4, "batch_size": 256, "window_days": 3})
    return base.model_copy(update={"model": model})


def _auc(quality: pd.DataFrame, model: str, head: str) -> float:
    return quality[(quality["model"] == model) & (quality["head"] == head)]["auc"].item()


def test_hybrid_logging_lands_a_fraction_of_full_logging_and_trains_as_well(
    spark, cfg: RankerConfig, tmp_path: Path
) -> None:
    volume, quality = logging_experiment(spark, cfg, tmp_path, SCALE)
    volume = volume.set_index("logging")
    hybrid, full = volume.loc["hybrid"], volume.loc["full"]
    assert hybrid["feature_log_mb"] < full["feature_log_mb"] / 5
    assert hybrid["feature_log_rows"] < full["feature_log_rows"] / 5
    assert hybrid["event_log_rows"] == full["event_log_rows"]  # the client reports the same
    for head in cfg.model.heads:
        assert _auc(quality, "hybrid", head) > _auc(quality, "full", head) - 0.03, head
        assert _auc(quality, "hybrid", head) < _auc(quality, "oracle", head)


def test_the_ranker_beats_the_serving_heuristic_and_trails_the_oracle(
    spark, cfg: RankerConfig, tmp_path: Path
) -> None:
    quality = reference_experiment(spark, cfg, tmp_path, SCALE)
    for head in cfg.model.heads:
        assert _auc(quality, "heuristic", head) < _auc(quality, "mmoe", head), head
        assert _auc(quality, "mmoe", head) < _auc(quality, "oracle", head), head
        assert _auc(quality, "boosted", head) < _auc(quality, "oracle", head), head


def test_under_drift_daily_retraining_beats_a_frozen_ranker(
    spark, cfg: RankerConfig, tmp_path: Path
) -> None:
    # Strong drift (topic popularity and user interests walk 4x faster than the shipped
    # world) makes the effect certain at this small scale.
    world = cfg.world.model_copy(update={"topic_drift": 0.6, "interest_drift": 0.4})
    days = cadence_experiment(
        spark,
        cfg.model_copy(update={"world": world}),
        tmp_path,
        SCALE,
        total_days=10,
        cadences={"frozen": None, "daily": 1},
    )
    late = days[days["day"] >= SCALE.day(6)]
    mean = late.groupby("cadence")["auc"].mean()
    assert mean["daily"] > mean["frozen"]
    assert set(days[days["cadence"] == "frozen"]["trained_through"]) == {SCALE.day(2)}


def test_a_poisoned_teacher_is_caught_and_its_students_are_worse(
    spark, cfg: RankerConfig, tmp_path: Path
) -> None:
    quality = teacher_experiment(spark, cfg, tmp_path, SCALE)
    primary = cfg.gates.primary_head
    assert _auc(quality, "poisoned teacher", primary) < _auc(quality, "teacher", primary) - 0.05
    assert _auc(quality, "distilled (poisoned teacher)", primary) < _auc(
        quality, "distilled (good teacher)", primary
    )


def test_calibrating_on_randomized_rows_calibrates_the_ranker_for_randomized_traffic(
    spark, cfg: RankerConfig, tmp_path: Path
) -> None:
    """Production rows teach the ranker engagement where production places items: on a day
    served at random it is miscalibrated, and calibrating on the randomized rows fixes that.
    20% randomized traffic (10x the shipped share) gives Platt enough positives of every head
    at this scale (at 10%, long-click's fit rests on too few and misses by 0.86 of the rate)."""
    logging = cfg.logging.model_copy(update={"randomized_share": 0.2})
    table = calibration_experiment(
        spark, cfg.model_copy(update={"logging": logging}), tmp_path, SCALE
    )
    ece = table[table["traffic"] == "randomized"].groupby("model")["relative_ece"].mean()
    others = ece[["with randomized rows", "without randomized rows"]]
    assert ece["calibrated on randomized rows"] < 0.5 * others.min(), ece
