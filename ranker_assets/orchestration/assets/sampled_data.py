"""`sampling_config` and `sampled_dataset`: one sampled dataset per (day, sampling config).

Lineage cache: each config file is observed as a data version (its content hash); a change
shows every partition of that config as stale in the UI. Materializing a partition whose config
hash and upstream training examples are unchanged reuses the stored dataset (no Spark job).
"""

import hashlib

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from ranker_assets.config import RankerConfig
from ranker_assets.config.sampling import scan_sampling_configs
from ranker_assets.orchestration.assets.metadata import lineage_metadata, table_metadata
from ranker_assets.orchestration.automation import sample_when_examples_or_config_change
from ranker_assets.orchestration.cadence import freshness_policy
from ranker_assets.orchestration.partitions import ds_and_config
from ranker_assets.orchestration.resources import LakeResource
from ranker_assets.sampling.health import health_markdown
from ranker_assets.sampling.run import SAMPLED_TABLE, run_sampler
from ranker_assets.sampling.sampler import column_lineage

# Bump when the sampler's logic changes: every sampled partition becomes stale.
SAMPLER_CODE_VERSION = "sampler-1"


def build_sampled_data_assets(
    cfg: RankerConfig,
    config_parts: dg.StaticPartitionsDefinition,
    partitions: dg.MultiPartitionsDefinition,
) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    folder = cfg.sampling.configs_path
    names = config_parts.get_partition_keys()

    @dg.observable_source_asset(
        name="sampling_config",
        partitions_def=config_parts,
        group_name="training_data",
        description=f"Sampling configs under {cfg.sampling.configs_dir}/; the data version of each "
        "is its content hash, so editing a config marks its sampled datasets stale.",
    )
    def sampling_config(context: dg.AssetExecutionContext) -> dg.DataVersionsByPartition:
        current, broken = scan_sampling_configs(folder, cfg.vocabulary)
        for name, error in broken.items():  # visible in the run's logs; its partitions fail
            context.log.error(f"sampling config {name!r} is broken: {error}")
        versions = {n: c.content_hash() for n, c in current.items()}
        versions |= {
            n: "broken-" + hashlib.sha256(e.encode()).hexdigest()[:12] for n, e in broken.items()
        }
        return dg.DataVersionsByPartition(
            {n: dg.DataVersion(versions[n]) for n in names if n in versions}
        )

    @dg.asset(
        partitions_def=partitions,
        deps=[
            dg.AssetDep(
                "training_examples",
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping("ds"),
            ),
            dg.AssetDep(
                "sampling_config",
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping("config"),
            ),
        ],
        code_version=SAMPLER_CODE_VERSION,
        group_name="training_data",
        kinds={"spark", "delta"},
        freshness_policy=freshness_policy(cfg.cadence, "training_data"),
        automation_condition=sample_when_examples_or_config_change(),
        pool="spark",
        check_specs=[
            dg.AssetCheckSpec(
                "dataset_health",
                asset="sampled_dataset",
                blocking=True,
                description="Every head has positives, and no head's positive ratio moved more "
                "than sampling.max_ratio_change times from the previous day.",
            )
        ],
        description="Training examples of one day sampled by one sampling config (Spark), with "
        "weights that keep weighted label rates equal to the full data's.",
    )
    def sampled_dataset(
        context: dg.AssetExecutionContext, lake: LakeResource, pyspark: LazyPySparkResource
    ) -> dg.MaterializeResult:
        ds, sampling = ds_and_config(cfg, context.partition_key)
        delta = lake.lake()
        # The Spark session is only started when the partition has to be recomputed.
        outcome = run_sampler(
            lambda: pyspark.spark_session,
            delta,
            ds,
            sampling,
            cfg.sampling.max_ratio_change,
            cfg.model.heads,
            cfg.vocabulary,
            cfg.sampling.broadcast_cap_groups,
        )
        h = outcome.health
        return dg.MaterializeResult(
            data_version=dg.DataVersion(outcome.lineage),
            metadata={
                "reused_by_lineage": outcome.reused,
                "config_hash": sampling.content_hash(),
                "config_description": sampling.description,
                "rows_in": h.rows_in,
                "rows_out": h.rows_out,
                "negative_keep_rate": h.negative_keep_rate,
                "top1pct_user_share": h.top1pct_user_share,
                "health": dg.MetadataValue.md(health_markdown(h, outcome.previous)),
                **table_metadata(delta, SAMPLED_TABLE, h.rows_out),
                **lineage_metadata(
                    column_lineage(delta.columns(SAMPLED_TABLE), cfg.vocabulary.label_events)
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="dataset_health",
                    passed=not outcome.problems,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"problems": "; ".join(outcome.problems) or "none"},
                )
            ],
        )

    return [sampling_config, sampled_dataset]
