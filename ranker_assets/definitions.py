"""The ranker_assets code location: `defs` is what Dagster loads (see workspace.yaml)."""

from __future__ import annotations

import warnings

import dagster as dg
from dagster._core.definitions.external_asset import create_external_asset_from_source_asset

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.logs.screening import log_specs
from ranker_assets.orchestration.assets.deployed_rankers import build_deployment_assets
from ranker_assets.orchestration.assets.logged_events import build_logged_event_assets
from ranker_assets.orchestration.assets.observations import ledger_assets, observe_sources_sensor
from ranker_assets.orchestration.assets.sampled_data import build_sampled_data_assets
from ranker_assets.orchestration.assets.trained_rankers import build_trained_ranker_assets
from ranker_assets.orchestration.assets.training_data import build_training_data_assets
from ranker_assets.orchestration.assets.validation_reports import build_validation_assets
from ranker_assets.orchestration.automation import automation_sensor
from ranker_assets.orchestration.dead_runs import dead_runs_sensor, watched_in_process_executor
from ranker_assets.orchestration.partitions import (
    daily_partitions,
    day_and_config_partitions,
    sampling_config_partitions,
)
from ranker_assets.orchestration.resources import build_resources

# We use beta APIs on purpose (observable source assets, multi-to-single partition mappings).
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(
    cfg: RankerConfig, resources: dict[str, dg.ConfigurableResource] | None = None
) -> dg.Definitions:
    """Build the whole graph for one ranker config: the typed factory behind `defs`.

    `resources` replaces the defaults (local lake, landing zone and Spark), e.g. in tests or to
    point a deployment at object-store tables and a cluster.
    """
    days = daily_partitions(cfg)
    configs = sampling_config_partitions(cfg)
    days_x_configs = day_and_config_partitions(days, configs)
    built = [
        *build_logged_event_assets(cfg, days),
        *build_training_data_assets(cfg, days),
        *build_sampled_data_assets(cfg, configs, days_x_configs),
        *build_trained_ranker_assets(cfg, days_x_configs),
        *build_validation_assets(cfg, days_x_configs),
        *build_deployment_assets(cfg, days),
        ledger_assets(cfg),
    ]

    # Who owns each asset and which ranker it belongs to, in the UI's catalog and filters.
    def owned(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(
            owners=list(cfg.owners), tags={**spec.tags, "ranker": cfg.name}
        )

    # Observable sources (landing zones, sampling configs) become the external assets Dagster
    # would make of them anyway, so they carry owners and tags too.
    assets = [
        owned(a)
        if isinstance(a, dg.AssetSpec)
        else (
            create_external_asset_from_source_asset(a) if isinstance(a, dg.SourceAsset) else a
        ).map_asset_specs(owned)
        for a in built
    ]
    return dg.Definitions(
        # Each asset links to its source in the UI.
        assets=dg.with_source_code_references(assets),
        jobs=[
            # Landed logs -> validated Delta tables, one day per run: safe to backfill by range.
            dg.define_asset_job("ingest_logs", selection=[s.name for s in log_specs(cfg)]),
        ],
        sensors=[
            automation_sensor(cfg.cadence),
            observe_sources_sensor(cfg, days),
            dead_runs_sensor,
        ],
        resources={**build_resources(cfg), **(resources or {})},
        # Spark steps share one JVM per process: on a small machine run steps in-process; the
        # executor also frees the pool slots of runs whose process died (dead_runs.py).
        executor=watched_in_process_executor,
    )


defs = build_definitions(load_config())
