"""`feature_log`, `event_log` and, for a ranker with a sequence, `sequence_log`: a landed day
-> valid Delta rows + quarantine with reasons."""

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from ranker_assets.config import RankerConfig
from ranker_assets.logs.ingestion import QUARANTINE_TABLE, IngestCounts
from ranker_assets.logs.landing import day_fingerprints
from ranker_assets.logs.reading import IngestionError
from ranker_assets.logs.screening import LogSpec, log_specs
from ranker_assets.logs.spark_ingestion import ingest_and_commit
from ranker_assets.orchestration.assets.metadata import table_metadata
from ranker_assets.orchestration.automation import ingest_when_landed
from ranker_assets.orchestration.cadence import freshness_policy
from ranker_assets.orchestration.resources import LakeResource, LandingResource


def _reasons_markdown(result: IngestCounts) -> str:
    reasons = result.reasons
    if not reasons:
        return "no rows quarantined"
    lines = ["| rule(column) | rows |", "|---|---|"] + [
        f"| `{k}` | {v} |" for k, v in reasons.items()
    ]
    return "\n".join(lines)


def _check_results(result: IngestCounts, cfg: RankerConfig, name: str) -> list[dg.AssetCheckResult]:
    share = result.quarantine_share
    warn, error = cfg.ingestion.quarantine_warn_share, cfg.ingestion.quarantine_error_share
    severity = dg.AssetCheckSeverity.ERROR if share > error else dg.AssetCheckSeverity.WARN
    return [
        dg.AssetCheckResult(
            asset_key=name,
            check_name="quarantine_share",
            passed=share <= warn,
            severity=severity,
            metadata={"quarantine_share": share, "warn_above": warn, "error_above": error},
        ),
        dg.AssetCheckResult(
            asset_key=name,
            check_name="not_empty",
            passed=result.kept > 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_kept": result.kept},
        ),
    ]


def _landing_asset(log: str, days: dg.PartitionsDefinition) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=["landing", log],
        partitions_def=days,
        group_name="landing",
        description=f"{log} files landed per day (ds); see docs/log_contract.md. The "
        "observe_sources sensor reports each landed day's version (a fingerprint of its files).",
    )
    def _observe(landing: LandingResource) -> dg.DataVersionsByPartition:
        known = set(days.get_partition_keys())
        versions = day_fingerprints(landing.root(), log)
        return dg.DataVersionsByPartition(
            {ds: dg.DataVersion(v) for ds, v in versions.items() if ds in known}
        )

    return _observe


def _ingestion_asset(
    cfg: RankerConfig, days: dg.PartitionsDefinition, spec: LogSpec
) -> dg.AssetsDefinition:
    settings = cfg.ingestion
    kind = {"auto": {"spark", "pandas"}, "spark": {"spark"}, "memory": {"pandas"}}
    engine = {
        "auto": f"in one in-process frame when the day's landed files total at most "
        f"{settings.memory_max_bytes:,} bytes, else by Spark tasks, {settings.batch_rows:,} rows "
        "at a time.",
        "spark": f"by Spark tasks, {settings.batch_rows:,} rows at a time.",
        "memory": "in one in-process frame.",
    }[settings.engine]

    @dg.asset(
        name=spec.name,
        partitions_def=days,
        deps=[dg.AssetKey(["landing", spec.name])],
        group_name="logged_events",
        kinds={"delta", *kind[settings.engine]},
        pool=None if settings.engine == "memory" else "spark",
        freshness_policy=freshness_policy(cfg.cadence, "logs"),
        automation_condition=ingest_when_landed(),
        check_specs=[
            dg.AssetCheckSpec(
                "quarantine_share",
                asset=spec.name,
                blocking=True,
                description="Share of the day's rows quarantined: warns above the warn share, "
                "blocks downstream above the error share.",
            ),
            dg.AssetCheckSpec(
                "not_empty", asset=spec.name, blocking=True, description="An empty day is an error."
            ),
        ],
        description=f"The day's {spec.name}: contract-valid rows in a Delta table; rejected rows "
        f"go to the `{QUARANTINE_TABLE}` table with the rule broken. Re-running replaces the day. "
        f"Screened {engine}",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        landing: LandingResource,
        pyspark: LazyPySparkResource,
    ) -> dg.MaterializeResult:
        ds = context.partition_key
        delta = lake.lake()
        try:  # nothing is committed unless the whole day could be read and screened
            result, version, used = ingest_and_commit(
                settings, lambda: pyspark.spark_session, delta, landing.root(), spec, ds
            )
        except IngestionError as err:
            raise dg.Failure(description=str(err), allow_retries=False) from err
        return dg.MaterializeResult(
            metadata={
                "rows_in": result.rows_in,
                "rows_kept": result.kept,
                "rows_quarantined": result.quarantined,
                "duplicates_dropped": result.duplicates,
                "reconciles": result.reconciles,
                "engine": used,
                "screened_batches": result.batches,
                "largest_batch_rows": result.largest_batch,
                "quarantine_reasons": dg.MetadataValue.md(_reasons_markdown(result)),
                "landed_bytes": result.bytes_in,
                "lake_bytes": delta.partition_bytes(spec.name, ds=ds),
                "delta_version": version,
                **table_metadata(delta, spec.name, result.kept),
            },
            check_results=_check_results(result, cfg, spec.name),
        )

    return _asset


def build_logged_event_assets(
    cfg: RankerConfig, days: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    specs = log_specs(cfg)
    return [
        *(_landing_asset(spec.name, days) for spec in specs),
        *(_ingestion_asset(cfg, days, spec) for spec in specs),
    ]
