"""Partitions of the asset graph: one partition per day of logs (ds)."""

from __future__ import annotations

import dagster as dg

from ranker_assets.config import RankerConfig


def daily_partitions(cfg: RankerConfig) -> dg.DailyPartitionsDefinition:
    """Days from the ranker's start date; a day appears once it is over (UTC)."""
    return dg.DailyPartitionsDefinition(start_date=cfg.start_date, timezone="UTC")
