"""The model's section: the multi-task ranker's architecture, training and MLflow tracking."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import (
    Field,
    StrictBool,
    model_validator,
)

from ranker_assets.config.base import Strict, ranker_home


class SequenceModel(Strict):
    """The sequence encoder, used when the features declare a sequence: a transformer over the
    last `length` actions, then attention from each candidate to the encoded actions."""

    length: int = Field(100, ge=1, le=1000)
    layers: int = Field(1, ge=1, le=8)
    heads: int = Field(1, ge=1)
    dim: int = Field(16, ge=2)

    @model_validator(mode="after")
    def _heads_divide(self) -> SequenceModel:
        if self.dim % self.heads:
            raise ValueError(
                f"model.sequence.dim ({self.dim}) must be a multiple of heads ({self.heads})"
            )
        return self


class ModelConfig(Strict):
    """The multi-task ranker: architecture, training window, options, calibration."""

    heads: tuple[str, ...] = (  # label events of the vocabulary
        "closeup",
        "click",
        "repin",
        "long_click",
    )
    task_weights: dict[str, float] = Field(default_factory=dict)  # default 1.0 per head
    window_days: int = Field(7, ge=1, le=90)
    hash_buckets: int = Field(20_011, ge=16)
    embedding_dim: int = Field(8, ge=1)
    shared_units: tuple[int, ...] = (64,)
    experts: int = Field(4, ge=1)
    expert_units: tuple[int, ...] = (32,)
    tower_units: tuple[int, ...] = (16,)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    epochs: int = Field(6, ge=1)  # at most, with early stopping
    # Stop once the held-out log loss (task-weighted mean over heads, on the calibration half of
    # the held-out rows) has not improved for this many epochs, and keep the best epoch's
    # weights. None: train every epoch and keep the last.
    early_stopping_patience: int | None = Field(None, ge=1)  # off: see README
    # Rows per step at most: a window too small for `min_steps_per_epoch` steps of
    # `batch_size` rows trains on smaller batches (see `step_rows`).
    batch_size: int = Field(1024, ge=1)
    min_steps_per_epoch: int = Field(20, ge=1)
    learning_rate: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    holdout_share: float = Field(0.1, gt=0.0, lt=0.5)
    seed: int = 0
    warm_start: StrictBool = False  # start from the current champion's weights
    distillation_weight: float = Field(0.0, ge=0.0)  # lambda; 0 = off; the champion is the teacher
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Platt scaling is fitted per head only on this many held-out positives (else: raw scores).
    calibration_min_positives: int = Field(30, ge=1)
    # What the served model is calibrated on: a random share of requests (`holdout`: it then
    # matches the engagement rate where production places items), or the randomized-traffic
    # rows, held out of training (`randomized`: the rate of an item wherever it is placed,
    # free of the serving policy's position bias; needs randomized rows in the window).
    calibrate_on: Literal["holdout", "randomized"] = "holdout"
    # Robust dense inputs: a feature whose (signed-log) std is below the floor is treated as
    # constant (ignored), and z-scores are clipped, so serving never sees extreme inputs.
    dense_std_floor: float = Field(1e-3, gt=0.0)
    dense_clip: float = Field(5.0, gt=0.0)
    sequence: SequenceModel = SequenceModel()  # read only when features.sequence is declared

    @model_validator(mode="after")
    def _weights_name_heads(self) -> ModelConfig:
        unknown = set(self.task_weights) - set(self.heads)
        if unknown:
            raise ValueError(
                f"model.task_weights names heads that are not trained: {sorted(unknown)}"
            )
        if not self.heads:
            raise ValueError("model.heads must name at least one head")
        return self

    def step_rows(self, rows: int) -> int:
        """Rows per training step for a window of `rows` training rows: `batch_size`, or fewer
        where that would leave fewer than `min_steps_per_epoch` steps: a day of a small world
        got ~10 steps an epoch of full batches and learned far less (README "Batch size")."""
        return max(1, min(self.batch_size, -(-rows // self.min_steps_per_epoch)))


class MlflowConfig(Strict):
    """Tracking and registry: a configured URI, else MLFLOW_TRACKING_URI, else sqlite under
    RANKER_HOME. The shipped config leaves the URI empty, so a deployment points at its server
    (and its credentials) through the environment. A configured URI wins because
    `mlflow.set_tracking_uri` rewrites MLFLOW_TRACKING_URI in-process: with the environment
    first, the first ranker to track would capture every later one's store.
    """

    tracking_uri: str = ""
    experiment: str = "closeup_ranker"
    # Letters, digits, `_`, `-`, `.`: a `/` fails only at registration after training, and a
    # quote breaks the registry's filter strings, so both are refused when the config loads.
    registered_model: str = Field("closeup_ranker", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")

    # Where links to runs point: "" = the tracking server itself (an http URI), else
    # $MLFLOW_UI_URL, else where `make mlflow-ui` serves a local store.
    ui_url: str = ""

    def resolved_uri(self) -> str:
        return (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{ranker_home() / 'mlflow.db'}"
        )

    def resolved_ui_url(self) -> str:
        uri = self.resolved_uri()
        server = uri if uri.startswith(("http://", "https://")) else ""
        local = os.environ.get("MLFLOW_UI_URL") or "http://127.0.0.1:5000"
        return (self.ui_url or server or local).rstrip("/")
