"""`deployed_ranker`: the deploy gate. Per day E, the best challenger validated on E (trained
through E-1) whose gates passed serves.

Moves the MLflow alias `champion` of the calibrated and raw models together (and `previous`
to the pair it replaces), and records every decision, promotion or not, in `deployments`.
"""

import dagster as dg
from mlflow import set_tracking_uri
from mlflow.tracking import MlflowClient

from ranker_assets.assets.metadata import table_metadata
from ranker_assets.automation import deploy_after_validation
from ranker_assets.config import RankerConfig
from ranker_assets.deployment import DEPLOYMENTS, deploy_day
from ranker_assets.evaluation.report import training_day
from ranker_assets.resources import LakeResource, MlflowResource


def build_deployment_assets(
    cfg: RankerConfig, days: dg.DailyPartitionsDefinition
) -> list[dg.AssetsDefinition]:
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

    return [deployed_ranker]
