"""`ranker_model`: a multi-task ranker per (day, sampling config), trained on a rolling window.

Its input is the sampled dataset of the same config for days ds-N+1..ds, declared with a
partition mapping; its value is a reference to the registered MLflow versions.
"""

import dagster as dg

from ranker_assets.config import RankerConfig
from ranker_assets.data_validation.window import DataValidationError
from ranker_assets.orchestration.automation import retrain_on_cadence
from ranker_assets.orchestration.cadence import freshness_policy
from ranker_assets.orchestration.partitions import ds_and_config
from ranker_assets.orchestration.resources import LakeResource, MlflowResource
from ranker_assets.training.pipeline import train_partition
from ranker_assets.training.tracking import RegisteredRanker, run_url


def window_mapping(days_in_window: int) -> dg.MultiPartitionMapping:
    """(ds, config) <- the same config's sampled datasets of ds-N+1..ds."""
    return dg.MultiPartitionMapping(
        {
            "ds": dg.DimensionPartitionMapping(
                "ds", dg.TimeWindowPartitionMapping(start_offset=-(days_in_window - 1))
            ),
            "config": dg.DimensionPartitionMapping("config", dg.IdentityPartitionMapping()),
        }
    )


def build_trained_ranker_assets(
    cfg: RankerConfig, partitions: dg.MultiPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions,
        deps=[
            dg.AssetDep("sampled_dataset", partition_mapping=window_mapping(cfg.model.window_days))
        ],
        group_name="models",
        kinds={"pytorch", "mlflow"},
        freshness_policy=freshness_policy(cfg.cadence, "model"),
        pool="training",
        automation_condition=retrain_on_cadence(cfg.cadence.retrain_cron),
        description=f"A multi-task MMoE ranker ({', '.join(cfg.model.heads)}) trained on "
        f"{cfg.model.window_days} days of one sampling config's data; raw and calibrated "
        "versions are registered in MLflow together.",
    )
    def ranker_model(
        context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        ds, sampling = ds_and_config(cfg, context.partition_key)
        run_cfg = cfg.model_copy(update={"mlflow": mlflow.config()})
        try:
            trained = train_partition(
                lake.lake(),
                run_cfg,
                ds,
                sampling.name,
                sampling.content_hash(),
                tags={
                    "dagster_run_id": context.run.run_id,
                    "dagster_partition": str(context.partition_key),
                },
            )
        except DataValidationError as err:
            raise dg.Failure(description=str(err), allow_retries=False) from err
        ref: RegisteredRanker = trained.registered
        holdout = trained.outcome.holdout
        return dg.MaterializeResult(
            value=ref,
            metadata={
                "registered_model": ref.name,
                "version": ref.version,
                "raw_version": ref.raw_version,
                "mlflow_run_id": ref.run_id,
                "mlflow_run": dg.MetadataValue.url(run_url(run_cfg.mlflow, ref.run_id)),
                "mlflow_tracking_uri": run_cfg.mlflow.resolved_uri(),
                "mlflow_experiment": run_cfg.mlflow.experiment,
                "window": ", ".join(trained.days),
                "data_validation": dg.MetadataValue.md(trained.data_validation.markdown()),
                "calibration": ", ".join(
                    f"{h}: {s}" for h, s in trained.outcome.calibration.items()
                ),
                **{f"rows_{k}": v for k, v in trained.outcome.rows.items()},
                # Early stopping (model.early_stopping_patience) may end before the last.
                "epochs": f"{len(trained.outcome.history)} of {cfg.model.epochs} trained, "
                f"the weights of epoch {trained.outcome.epoch_kept + 1} kept",
                **{f"holdout_{k}": round(v, 4) for k, v in holdout.items()},
                # A holdout AUC on a handful of positives is noise: say which heads rest on few.
                "holdout_insufficient": ", ".join(
                    f"{h} ({int(holdout[f'positives_{h}'])} positives < {cfg.gates.min_positives})"
                    for h in cfg.model.heads
                    if holdout[f"positives_{h}"] < cfg.gates.min_positives
                )
                or "none",
            },
        )

    return [ranker_model]
