"""`validation_report`: the challenger against the champion on the next day; gates as checks.

Partitioned by (evaluation day E, sampling config): it validates the ranker trained through
E-1 on the training examples of E, both declared as inputs, so automation runs it once both
exist. Every gate family is a blocking asset check, so a failed gate stops deployment in the
same run, and the UI shows which gate failed, for which partition, and by how much.
"""

import dagster as dg
from mlflow import set_tracking_uri
from mlflow.tracking import MlflowClient

from ranker_assets.config import RankerConfig
from ranker_assets.evaluation.gates import FAMILIES
from ranker_assets.evaluation.report import (
    METRICS_TABLE,
    log_report,
    store_report,
    validate_challenger,
)
from ranker_assets.evaluation.rows import training_day
from ranker_assets.orchestration.automation import validate_new_ranker
from ranker_assets.orchestration.partitions import ds_and_config
from ranker_assets.orchestration.resources import LakeResource, LandingResource, MlflowResource
from ranker_assets.training.registry import alias_pair, complete_pair
from ranker_assets.training.tracking import RegisteredRanker, run_url


def build_validation_assets(
    cfg: RankerConfig, partitions: dg.MultiPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions,
        ins={
            "ranker_model": dg.AssetIn(
                partition_mapping=dg.MultiPartitionMapping(
                    {
                        "ds": dg.DimensionPartitionMapping(
                            "ds", dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
                        ),
                        "config": dg.DimensionPartitionMapping(
                            "config", dg.IdentityPartitionMapping()
                        ),
                    }
                )
            )
        },
        deps=[
            dg.AssetDep(
                "training_examples",
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping("ds"),
            )
        ],
        automation_condition=validate_new_ranker(),
        group_name="models",
        kinds={"mlflow", "delta"},
        check_specs=[
            dg.AssetCheckSpec(family, asset="validation_report", description=text)
            for family, text in FAMILIES.items()
        ],
        description="The ranker trained through the day before (challenger) and the serving "
        "champion scored on this day's training examples, which neither trained on: per-head "
        "AUC, log-loss, calibration and HIT@K by slice with paired bootstrap intervals, "
        "off-policy values on randomized traffic, model sanity and serving checks. Its checks "
        "are the deploy gates.",
    )
    def validation_report(
        context: dg.AssetExecutionContext,
        ranker_model: RegisteredRanker,
        lake: LakeResource,
        landing: LandingResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        eval_day, sampling = ds_and_config(cfg, context.partition_key)
        ds = training_day(eval_day)
        uri = mlflow.config().resolved_uri()
        set_tracking_uri(uri)  # models:/ URIs resolve against the global tracking URI
        client = MlflowClient(uri)
        name = ranker_model.name
        challenger = complete_pair(client, name, ranker_model.version)
        champion = alias_pair(client, name)
        report, rows, scores = validate_challenger(
            lake.lake(), cfg, name, ds, sampling.name, challenger, champion, landing.root()
        )
        store_report(lake.lake(), report)
        history = lake.lake().read(METRICS_TABLE, config=sampling.name).to_pandas()
        artifacts, plots = log_report(report, rows, scores, history)
        challenger_run = client.get_model_version(name, challenger.version).run_id
        return dg.MaterializeResult(
            metadata={
                "verdict": report.headline(),
                "report": dg.MetadataValue.md(report.markdown()),
                "passed": report.passed,
                "challenger_version": challenger.version,
                "champion_version": champion.version if champion else "none",
                "eval_day": report.eval_day,
                **{f"auc_{h}": round(report.auc(h), 4) for h in report.heads},
                "rows": report.rows,
                "mlflow_run": dg.MetadataValue.url(run_url(mlflow.config(), challenger_run)),
                "mlflow_artifacts": ", ".join(artifacts),
                "plots": dg.MetadataValue.md(plots),
                **{
                    k: round(report.serving[k], 2)
                    for k in ("cpu_p99_ms", "wall_p99_ms", "wall_spread", "latency_ratio")
                    if k in report.serving
                },
                "model_mb": round(report.serving["model_mb"], 3),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=family,
                    passed=not report.failed(family),
                    # A failed gate is a decision (the deploy gate reads it and rejects), not a
                    # broken run: WARN keeps the run green and the check marked failed.
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "partition": str(context.partition_key),
                        "failed": "; ".join(g.describe() for g in report.failed(family)) or "none",
                        "judged": len([g for g in report.gates if g.family == family]),
                    },
                )
                for family in FAMILIES
            ],
        )

    return [validation_report]
