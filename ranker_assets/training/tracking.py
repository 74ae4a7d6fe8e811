"""MLflow tracking and registry for rankers: one run per training, two registered models.

Each training run registers the calibrated ranker (served) as `<name>` and the raw ranker (the
next distillation teacher) as `<name>_raw`, from the same run, tagged with each other's version
so they stay in sync. Runs always end FINISHED or FAILED: the context manager marks a run
FAILED when the block raises.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from torch import nn

from ranker_assets.config import FeatureSpec
from ranker_assets.training.serving import RankerPyfunc, load_module, predict_frame, save_model
from ranker_assets.training.train import TrainingOutcome

CHAMPION = "champion"
# Progress bars for every artifact download drown the logs of a pipeline run.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Only what the pyfunc needs to load; listing them saves MLflow ~10 s of dependency inference.
PIP_REQUIREMENTS = ["torch==2.13.0", "pandas", "numpy", "pyarrow", "ranker_assets"]


@dataclass(frozen=True)
class RegisteredRanker:
    """The value of a `ranker_model` partition: where its registered versions are."""

    name: str
    version: str
    raw_name: str
    raw_version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


LOCAL_UI = "http://127.0.0.1:5000"  # `make mlflow-ui` serves the local sqlite store here


def run_url(tracking_uri: str, run_id: str) -> str:
    """Where to look at a run: the tracking server's page, or the local UI for a sqlite store."""
    base = (
        tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI
    )
    experiment_id = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def raw_name(name: str) -> str:
    return f"{name}_raw"


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a sqlite store (MLflow's default is ./mlruns of the working directory);
    a tracking server chooses its own."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


@contextmanager
def tracked_run(
    tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]
) -> Iterator[str]:
    """An MLflow run that ends FINISHED, or FAILED if the block raises; yields the run id."""
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location(tracking_uri))
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        yield run.info.run_id


def log_and_register(
    outcome: TrainingOutcome,
    spec: FeatureSpec,
    name: str,
    example: pd.DataFrame,
    params: dict[str, object],
    tags: dict[str, str],
) -> RegisteredRanker:
    """Log params, per-epoch metrics, artifacts and both models in the active run; register both."""
    run_id = mlflow.active_run().info.run_id
    mlflow.log_params(
        {k: json.dumps(v) if isinstance(v, dict | list | tuple) else v for k, v in params.items()}
    )
    for row in outcome.history:
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    mlflow.log_metrics({f"holdout_{k}": v for k, v in outcome.holdout.items()})
    base = outcome.raw
    stats = {
        f: {"mean": float(m), "std": float(s)}
        for f, m, s in zip(
            spec.dense, base.dense_mean.tolist(), base.dense_std.tolist(), strict=True
        )
    }
    mlflow.log_dict(
        {"transform": "sign(x) * log1p(|x|), then (x - mean) / std", "features": stats},
        "normalization.json",
    )
    mlflow.log_dict(spec.model_dump(mode="json"), "feature_spec.json")
    versions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, reg_name in (
            ("calibrated", outcome.calibrated, name),
            ("raw", base, raw_name(name)),
        ):
            artifacts = save_model(model, spec, Path(tmp) / label)
            with warnings.catch_warnings():
                # MLflow hints that int columns cannot hold nulls; the log contract forbids them.
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                signature = infer_signature(example, predict_frame(model, example, spec))
            info = mlflow.pyfunc.log_model(
                name=label,
                python_model=RankerPyfunc(),
                artifacts=artifacts,
                input_example=example,
                signature=signature,
                pip_requirements=PIP_REQUIREMENTS,
                registered_model_name=reg_name,
            )
            versions[label] = str(info.registered_model_version)
    client = MlflowClient()
    for label, reg_name, peer in (
        ("calibrated", name, "raw"),
        ("raw", raw_name(name), "calibrated"),
    ):
        for key, value in {
            **tags,
            "run_id": run_id,
            f"{peer}_version": versions[peer],
            "kind": label,
        }.items():
            client.set_model_version_tag(reg_name, versions[label], key, value)
    return RegisteredRanker(name, versions["calibrated"], raw_name(name), versions["raw"], run_id)


def load_registered_module(model_uri: str) -> nn.Module:
    """The torch module behind a registered version or alias (e.g. for warm start, teacher)."""
    folder = mlflow.artifacts.download_artifacts(f"{model_uri}")
    artifacts_dir = Path(folder) / "artifacts"
    module, _ = load_module(
        {"meta": str(artifacts_dir / "meta.json"), "weights": str(artifacts_dir / "weights.pt")}
    )
    return module


def champion_uri(name: str, raw: bool = False) -> str:
    return f"models:/{raw_name(name) if raw else name}@{CHAMPION}"
