"""Train one ranker partition: window of sampled days -> tensors -> model -> MLflow versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import mlflow
import pyarrow as pa
from mlflow.exceptions import MlflowException
from torch import nn

from ranker_assets.config import RankerConfig
from ranker_assets.data_validation.window import (
    DataValidationError,
    WindowValidation,
    validate_window,
)
from ranker_assets.infra.lake import Lake
from ranker_assets.training.data import Tensors, TrainingDataError, load_window, to_tensors
from ranker_assets.training.serving import pyfunc_input
from ranker_assets.training.tracking import (
    RegisteredRanker,
    champion_uri,
    load_registered_module,
    log_and_register,
    tracked_run,
)
from ranker_assets.training.train import TrainingOutcome, train_ranker


@dataclass(frozen=True)
class TrainedRanker:
    registered: RegisteredRanker
    outcome: TrainingOutcome
    days: list[str]
    data_validation: WindowValidation


def window_days(ds: str, n: int, start_date: str) -> list[str]:
    """ds-n+1 .. ds, clipped at the first day the pipeline has (as Dagster clips the window)."""
    end, first = date.fromisoformat(ds), date.fromisoformat(start_date)
    return [
        str(end - timedelta(days=i)) for i in reversed(range(n)) if end - timedelta(days=i) >= first
    ]


def _champion(cfg: RankerConfig) -> nn.Module | None:
    """The current champion's raw module, for warm start and distillation (None if not needed)."""
    if not (cfg.model.warm_start or cfg.model.distillation_weight > 0):
        return None
    uri = champion_uri(cfg.mlflow.registered_model, raw=True)
    try:
        return load_registered_module(uri)
    except MlflowException as err:
        raise TrainingDataError(
            f"model.warm_start/distillation need a deployed champion ({uri}), found none: {err}"
        ) from err


def ranker_tensors(table: pa.Table, cfg: RankerConfig) -> Tensors:
    """A loaded window as the tensors this ranker's config trains on."""
    return to_tensors(
        table,
        cfg.features,
        cfg.model.heads,
        cfg.model.hash_buckets,
        cfg.vocabulary.randomized_policy,
        cfg.model.sequence.length,
    )


def train_partition(
    lake: Lake,
    cfg: RankerConfig,
    ds: str,
    sampling_config: str,
    sampling_hash: str,
    tags: dict[str, str],
    days: Sequence[str] | None = None,
) -> TrainedRanker:
    """Validate the window ending `ds`, then train on it, inside one MLflow run (FAILED if
    anything raises). A window that fails data validation raises DataValidationError before
    training: nothing is trained or registered on it; the run keeps data_validation.md."""
    days = list(days or window_days(ds, cfg.model.window_days, cfg.start_date))
    run_tags = {
        **tags,
        "partition_ds": ds,
        "sampling_config": sampling_config,
        "sampling_config_hash": sampling_hash,
        "input_partitions": ",".join(days),
    }
    with tracked_run(
        cfg.mlflow.resolved_uri(), cfg.mlflow.experiment, f"{ds}-{sampling_config}", run_tags
    ):
        table = load_window(
            lake,
            sampling_config,
            days,
            cfg.features,
            cfg.model.heads,
            newest=cfg.model.sequence.length,
        )
        checked = validate_window(lake, cfg, sampling_config, days)
        mlflow.log_text(checked.markdown(), "data_validation.md")
        if checked.problems:
            raise DataValidationError(
                f"training on {sampling_config!r} {days[0]}..{days[-1]} blocked by data "
                "validation: " + "; ".join(checked.problems)
            )
        data = ranker_tensors(table, cfg)
        champion = _champion(cfg)
        outcome = train_ranker(
            data,
            cfg.features,
            cfg.model,
            teacher=champion if cfg.model.distillation_weight > 0 else None,
            init_state=champion.state_dict()
            if champion is not None and cfg.model.warm_start
            else None,
        )
        mlflow.log_dict(cfg.model_dump(mode="json"), "ranker_config.json")
        example = pyfunc_input(table.slice(0, 5).to_pandas(), cfg.features)
        registered = log_and_register(
            outcome,
            cfg.features,
            cfg.mlflow.registered_model,
            example,
            params={
                "model": cfg.model.model_dump(mode="json"),
                "sampling_config": sampling_config,
                "window": days,
                "rows": outcome.rows,
            },
            tags=run_tags,
        )
    return TrainedRanker(registered, outcome, days, checked)
