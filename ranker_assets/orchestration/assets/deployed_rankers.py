"""`deployed_ranker`: the deploy gate. Per day E, the best challenger validated on E (trained
through E-1) whose gates passed serves.

Moves the MLflow alias `champion` of the calibrated and raw models together (and `previous`
to the pair it replaces), and records every decision, promotion or not, in `deployments`.
"""

import dagster as dg
from mlflow import set_tracking_uri
from mlflow.tracking import MlflowClient

from ranker_assets.config import RankerConfig
from ranker_assets.deployment.decisions import DEPLOYMENTS, champion_age, deploy_day
from ranker_assets.evaluation.rows import training_day
from ranker_assets.logs.landing import day_fingerprints
from ranker_assets.orchestration.assets.metadata import table_metadata
from ranker_assets.orchestration.automation import check_champion_age, deploy_after_validation
from ranker_assets.orchestration.resources import LakeResource, LandingResource, MlflowResource


def build_deployment_assets(
    cfg: RankerConfig, days: dg.DailyPartitionsDefinition
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    @dg.asset(
        partitions_def=days,
        deps=[
            dg.AssetDep(
                "validation_report",
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping("ds"),
            )
        ],
        group_name="models",
        kinds={"mlflow", "delta"},
        # One decision at a time in the instance (and `decision_lock` across processes).
        pool="deploy",
        automation_condition=deploy_after_validation(),
        description="The champion after the day's validation reports: the best challenger by "
        f"auc_{cfg.gates.primary_head} among those whose gates all passed, compared against "
        "the champion that still serves. Every decision is appended to the deployments table.",
    )
    def deployed_ranker(
        context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        uri = mlflow.config().resolved_uri()
        set_tracking_uri(uri)
        decision = deploy_day(
            lake.lake(),
            MlflowClient(uri),
            mlflow.registered_model,
            training_day(context.partition_key),
            cfg.gates.primary_head,
            context.run.run_id,
        )
        context.log.info(f"{decision.action}: {decision.reasons}")
        rows = lake.lake().read(DEPLOYMENTS).num_rows
        return dg.MaterializeResult(
            metadata={
                "action": decision.action,
                "champion_version": decision.champion_version or "none",
                "champion_raw_version": decision.champion_raw_version or "none",
                "previous_version": decision.previous_version or "none",
                "sampling_config": decision.config or "none",
                "reasons": dg.MetadataValue.md(decision.reasons),
                **table_metadata(lake.lake(), DEPLOYMENTS, rows),
            },
        )

    @dg.asset_check(
        asset=deployed_ranker,
        name="champion_data_age",
        automation_condition=check_champion_age(),
        description="How many days the serving model's data lags the newest landed day: warns "
        "past cadence.model_warn_hours, fails past model_fail_hours (the model's real "
        "freshness, which the asset's own policy, based on run times, cannot show).",
    )
    def champion_data_age(landing: LandingResource, mlflow: MlflowResource) -> dg.AssetCheckResult:
        uri = mlflow.config().resolved_uri()
        landed = sorted(day_fingerprints(landing.root(), "feature_log"))
        age = champion_age(MlflowClient(uri), mlflow.registered_model, landed)
        hours = age.hours()
        warn, fail = cfg.cadence.model_warn_hours, cfg.cadence.model_fail_hours
        return dg.AssetCheckResult(
            passed=hours is not None and hours <= warn,
            severity=(
                dg.AssetCheckSeverity.ERROR
                if hours is None or hours > fail
                else dg.AssetCheckSeverity.WARN
            ),
            metadata={
                "champion_version": age.champion.version if age.champion else "none",
                "champion_trained_through": age.champion.ds if age.champion else "none",
                "newest_landed_day": age.newest_landed or "none",
                "data_age_days": age.days if age.days is not None else -1,
                "warn_after_hours": warn,
                "fail_after_hours": fail,
            },
        )

    return [deployed_ranker, champion_data_age]
