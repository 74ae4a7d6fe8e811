"""Partitions of the asset graph: days (ds), and days x sampling configs for training data."""

from __future__ import annotations

import dagster as dg

from ranker_assets.config import RankerConfig
from ranker_assets.config.sampling import SamplingConfig, sampling_config, scan_sampling_configs


def daily_partitions(cfg: RankerConfig) -> dg.DailyPartitionsDefinition:
    """Days from the ranker's start date; a day appears once it is over (in cfg.timezone)."""
    return dg.DailyPartitionsDefinition(start_date=cfg.start_date, timezone=cfg.timezone)


def sampling_config_partitions(cfg: RankerConfig) -> dg.StaticPartitionsDefinition:
    """One partition per sampling config file (the code location reloads to pick up new ones);
    a broken file keeps its partitions, whose runs fail with its error."""
    valid, broken = scan_sampling_configs(cfg.sampling.configs_path, cfg.vocabulary)
    return dg.StaticPartitionsDefinition(sorted({*valid, *broken}))


def day_and_config_partitions(
    days: dg.DailyPartitionsDefinition, configs: dg.StaticPartitionsDefinition
) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({"ds": days, "config": configs})


def ds_and_config(cfg: RankerConfig, key: dg.MultiPartitionKey) -> tuple[str, SamplingConfig]:
    """The day and the sampling config (read fresh from its file) of a day x config partition."""
    keys = key.keys_by_dimension
    return keys["ds"], sampling_config(cfg.sampling.configs_path, keys["config"], cfg.vocabulary)
