"""The ranker_assets code location: `defs` is what Dagster loads (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.partitions import daily_partitions


def build_definitions(cfg: RankerConfig) -> dg.Definitions:
    """Build the whole graph for one ranker config: the typed factory behind `defs`."""
    days = daily_partitions(cfg)
    landing = [
        dg.AssetSpec(
            key=["landing", log],
            description=f"{log} files landed per day (ds) by the serving stack or the simulator; "
            "see docs/log_contract.md.",
            group_name="landing",
            partitions_def=days,
            kinds={"parquet" if log == "feature_log" else "json"},
        )
        for log in ("feature_log", "event_log")
    ]
    return dg.Definitions(assets=landing)


defs = build_definitions(load_config())
