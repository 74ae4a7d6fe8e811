"""MLflow tracking and registry for rankers: one run per training, two registered models.

Each training run registers the calibrated ranker (served) as `<name>` and the raw ranker (the
next distillation teacher) as `<name>_raw`, from the same run, tagged with each other's version
so they stay in sync. Registration is crash-consistent: both models are logged first, then both
versions are registered, and only then is each marked `pair_complete`; deployment accepts only
complete pairs, and the next registration deletes half-made versions of runs that died.
Runs end FINISHED or FAILED; a run whose process was killed is marked KILLED by the next run.
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
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema
from torch import nn

from ranker_assets.config import FeatureSpec, MlflowConfig
from ranker_assets.infra.processes import alive, this_host
from ranker_assets.training.serving import RankerPyfunc, load_module, predict_frame, save_model
from ranker_assets.training.train import TrainingOutcome

CHAMPION = "champion"
PREVIOUS = "previous"
PAIR_COMPLETE = "pair_complete"
_HOST, _PID = "ranker_assets.host", "ranker_assets.pid"
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


def run_url(mlflow_cfg: MlflowConfig, run_id: str) -> str:
    """Where to look at a run: the tracking server's page, or the configured MLflow UI."""
    uri = mlflow_cfg.resolved_uri()
    experiment_id = MlflowClient(uri).get_run(run_id).info.experiment_id
    return f"{mlflow_cfg.resolved_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


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
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    end_dead_runs(MlflowClient(tracking_uri), experiment_id)
    process = {_HOST: this_host(), _PID: str(os.getpid())}
    with mlflow.start_run(run_name=run_name, tags={**tags, **process}) as run:
        yield run.info.run_id


def end_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs started on this host by a process that no longer exists.

    Runs of other hosts are left alone: their liveness cannot be judged from here.
    """
    dead = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get(_PID, "")
        if tags.get(_HOST) == this_host() and not alive(int(pid) if pid.isdigit() else 0):
            client.set_terminated(run.info.run_id, status="KILLED")
            dead.append(run.info.run_id)
    return dead


def equals_filter(field: str, value: str) -> str:
    """An MLflow search clause `field = 'value'`, quoted so the value cannot end the string."""
    if "'" not in value:
        return f"{field} = '{value}'"
    if '"' not in value:
        return f'{field} = "{value}"'
    raise ValueError(f"{value!r} holds both quote characters: MLflow filters cannot express it")


def discard_half_made(client: MlflowClient, name: str) -> list[str]:
    """Delete versions of `name` and its raw twin that never became a complete pair and whose
    run is over (FAILED, KILLED or FINISHED without completing): they can never deploy."""
    removed = []
    for reg_name in (name, raw_name(name)):
        for mv in client.search_model_versions(equals_filter("name", reg_name)):
            if mv.tags.get(PAIR_COMPLETE) != "false":
                continue
            if mv.run_id and client.get_run(mv.run_id).info.status == "RUNNING":
                continue  # still being registered
            client.delete_model_version(reg_name, mv.version)
            removed.append(f"{reg_name}/{mv.version}")
    return removed


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
    mlflow.log_metrics({"epochs_trained": len(outcome.history), "epoch_kept": outcome.epoch_kept})
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
    mlflow.log_dict(outcome.calibration, "calibration.json")
    mlflow.set_tags({f"calibration_{h}": v for h, v in outcome.calibration.items()})
    client = MlflowClient()
    discard_half_made(client, name)
    uris = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in (("calibrated", outcome.calibrated), ("raw", base)):
            artifacts = save_model(model, spec, Path(tmp) / label)
            with warnings.catch_warnings():
                # MLflow hints that int columns cannot hold nulls; the log contract forbids them.
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                signature = lists_optional(
                    infer_signature(example, predict_frame(model, example, spec)), spec
                )
            info = mlflow.pyfunc.log_model(
                name=label,
                python_model=RankerPyfunc(),
                artifacts=artifacts,
                input_example=example,
                signature=signature,
                pip_requirements=PIP_REQUIREMENTS,
            )
            uris[label] = info.model_uri
    # Both models are logged; register both, then mark the pair complete (the commit point).
    names = {"calibrated": name, "raw": raw_name(name)}
    versions = {
        label: str(
            mlflow.register_model(
                uris[label], names[label], tags={**tags, PAIR_COMPLETE: "false"}
            ).version
        )
        for label in ("calibrated", "raw")
    }
    for label, peer in (("calibrated", "raw"), ("raw", "calibrated")):
        for key, value in {
            "run_id": run_id,
            f"{peer}_version": versions[peer],
            "kind": label,
        }.items():
            client.set_model_version_tag(names[label], versions[label], key, value)
    for label in ("raw", "calibrated"):
        client.set_model_version_tag(names[label], versions[label], PAIR_COMPLETE, "true")
    return RegisteredRanker(name, versions["calibrated"], raw_name(name), versions["raw"], run_id)


def lists_optional(signature: ModelSignature, spec: FeatureSpec) -> ModelSignature:
    """The action lists are optional per row: a request sends them once (serving.pyfunc_input)."""
    if spec.sequence is None or signature.inputs is None:
        return signature
    columns = [
        ColSpec(c.type, c.name, required=c.name not in spec.sequence.columns)
        for c in signature.inputs.inputs
    ]
    return ModelSignature(Schema(columns), signature.outputs, signature.params)


def load_registered(model_uri: str) -> tuple[nn.Module, FeatureSpec]:
    """The torch module behind a registered version or alias, with the features it reads."""
    folder = mlflow.artifacts.download_artifacts(f"{model_uri}")
    artifacts_dir = Path(folder) / "artifacts"
    return load_module(
        {"meta": str(artifacts_dir / "meta.json"), "weights": str(artifacts_dir / "weights.pt")}
    )


def load_registered_module(model_uri: str) -> nn.Module:
    """The torch module behind a registered version or alias (e.g. for warm start, teacher)."""
    return load_registered(model_uri)[0]


def champion_uri(name: str, raw: bool = False) -> str:
    return f"models:/{raw_name(name) if raw else name}@{CHAMPION}"
