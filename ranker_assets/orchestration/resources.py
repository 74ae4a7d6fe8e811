"""Resources: where the project reads and writes, swappable per environment by configuration.

Defaults are local (folders under RANKER_HOME, Spark local[2]); a deployment points the same
resources at object-store Delta tables and a Spark cluster. Credentials never live here:
delta-rs reads the usual environment variables (AWS_*, AZURE_*, GOOGLE_*) for object stores.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from ranker_assets.config import MlflowConfig, RankerConfig, ranker_home
from ranker_assets.infra.lake import Lake
from ranker_assets.infra.spark_session import prepare_environment


class LakeResource(dg.ConfigurableResource):
    """The Delta lake: a local folder by default (RANKER_HOME/lake), or e.g. `s3://bucket/lake`."""

    root: str = ""

    def lake(self) -> Lake:
        return Lake(self.root or str(ranker_home() / "lake"))


class LandingResource(dg.ConfigurableResource):
    """The landing zone that log files arrive in (RANKER_HOME/landing by default)."""

    path: str = ""

    def root(self) -> Path:
        return Path(self.path) if self.path else ranker_home() / "landing"


class MlflowResource(dg.ConfigurableResource):
    """Where rankers are tracked and registered.

    Ours rather than dagster-mlflow's `mlflow_tracking`: that resource opens one run per Dagster
    run and only ends it at the job's last step, so under `materialize` and partial runs it
    leaves MLflow runs RUNNING. This one opens a run per asset partition and always ends it
    FINISHED or FAILED. Empty `tracking_uri`: MLFLOW_TRACKING_URI, else sqlite in RANKER_HOME.
    """

    tracking_uri: str = ""
    experiment: str = "closeup_ranker"
    registered_model: str = "closeup_ranker"
    ui_url: str = ""

    def config(self) -> MlflowConfig:
        return MlflowConfig(
            tracking_uri=self.tracking_uri,
            experiment=self.experiment,
            registered_model=self.registered_model,
            ui_url=self.ui_url,
        )


def build_resources(cfg: RankerConfig) -> dict[str, dg.ConfigurableResource]:
    """Default resources; environment variables override locations without code changes."""
    prepare_environment()
    return {
        "lake": LakeResource(root=dg.EnvVar("RANKER_LAKE_URI").get_value("") or ""),
        "landing": LandingResource(path=dg.EnvVar("RANKER_LANDING").get_value("") or ""),
        "pyspark": LazyPySparkResource(spark_config=cfg.spark.session_config()),
        "mlflow": MlflowResource(
            tracking_uri=cfg.mlflow.tracking_uri,
            experiment=cfg.mlflow.experiment,
            registered_model=cfg.mlflow.registered_model,
            ui_url=cfg.mlflow.ui_url,
        ),
    }
