"""Freshness policies from the ranker config's cadence: when a stage's newest data is too old."""

from datetime import timedelta
from typing import Literal

import dagster as dg

from ranker_assets.config import CadenceConfig


def freshness_policy(
    cadence: CadenceConfig, stage: Literal["logs", "training_data", "model"]
) -> dg.FreshnessPolicy:
    """Warn, then fail, when no partition of the asset was materialized within the window."""
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=getattr(cadence, f"{stage}_fail_hours")),
        warn_window=timedelta(hours=getattr(cadence, f"{stage}_warn_hours")),
    )
