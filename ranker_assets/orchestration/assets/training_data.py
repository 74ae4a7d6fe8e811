"""`training_examples`: the Joiner, run by Spark, one day at a time once its labels are mature."""

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from ranker_assets.config import RankerConfig
from ranker_assets.joining.joiner import column_lineage, run_joiner
from ranker_assets.orchestration.assets.metadata import lineage_metadata, table_metadata
from ranker_assets.orchestration.automation import labels_mature
from ranker_assets.orchestration.cadence import freshness_policy
from ranker_assets.orchestration.resources import LakeResource


def build_training_data_assets(
    cfg: RankerConfig, days: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=days,
        deps=[
            dg.AssetDep("feature_log"),
            # Labels of day D need the events of D and D+1: D is joined only once D+1 exists.
            dg.AssetDep("event_log", partition_mapping=dg.TimeWindowPartitionMapping(end_offset=1)),
            *([dg.AssetDep("sequence_log")] if cfg.features.sequence else []),
        ],
        group_name="training_data",
        kinds={"spark", "delta"},
        freshness_policy=freshness_policy(cfg.cadence, "training_data"),
        automation_condition=labels_mature(cfg.joiner.labels_final_hours),
        pool="spark",
        check_specs=[
            dg.AssetCheckSpec(
                "logs_agree",
                asset="training_examples",
                blocking=True,
                description="Feature rows without an impression and engaged pins without a feature "
                "row, as a share of the day's feature rows, stay under joiner.orphan_error_share.",
            )
        ],
        description="One row per logged (request, pin) of the day: typed features, labels within "
        "the maturity window, position, policy, propensity and weight = 1 / keep_rate. Day D joins "
        "once event_log[D+1] is ingested (or joiner.labels_final_hours after D ended): a UI "
        "backfill that ends on the newest landed day fails on that day, as Dagster's launch "
        "dialog cannot see the one-day offset; end the range a day earlier, or use "
        "`ranker-assets backfill`, which skips that day with the reason.",
    )
    def training_examples(
        context: dg.AssetExecutionContext, lake: LakeResource, pyspark: LazyPySparkResource
    ) -> dg.MaterializeResult:
        ds = context.partition_key
        version, stats = run_joiner(
            pyspark.spark_session,
            lake.lake(),
            ds,
            cfg.features,
            cfg.joiner,
            cfg.timezone,
            vocab=cfg.vocabulary,
        )
        share = stats.orphan_share
        return dg.MaterializeResult(
            metadata={
                "labels_from": stats.labels_from,
                "feature_rows": stats.feature_rows,
                "rows_joined": stats.joined_rows,
                "features_without_impression": stats.features_without_impression,
                "engaged_without_features": stats.engaged_without_features,
                **{f"positives_{k}": v for k, v in stats.positives.items()},
                "delta_version": version,
                "lake_bytes": lake.lake().partition_bytes("training_examples", ds=ds),
                **table_metadata(lake.lake(), "training_examples", stats.joined_rows),
                **lineage_metadata(column_lineage(cfg.features, cfg.vocabulary)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="logs_agree",
                    passed=share <= cfg.joiner.orphan_error_share,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"orphan_share": share, "error_above": cfg.joiner.orphan_error_share},
                )
            ],
        )

    return [training_examples]
