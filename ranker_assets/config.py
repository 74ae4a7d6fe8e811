"""The ranker's one configuration: the single entry point for data, logging and the pipeline.

Everything a stage needs to know about *this* ranker (its feature columns, how its logs
were written, the thresholds that gate it) is read from one YAML file, validated here,
so onboarding a new ranker is writing a file rather than editing code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "ranker.yaml"

# Columns every feature log carries whatever the ranker's features are (see docs/log_contract.md).
FEATURE_LOG_KEY_COLUMNS: tuple[str, ...] = (
    "request_id",
    "pin_id",
    "user_id",
    "query_pin_id",
    "request_ts",
    "position",
    "impressed",
    "platform",
    "content_type",
    "policy",
    "propensity",
    "keep_rate",
    "log_reason",
)
# Contract columns that are also usable as categorical features (hashed ids).
ID_COLUMNS: tuple[str, ...] = ("pin_id", "user_id", "query_pin_id")
# Context columns a ranker's logs may lack (see Vocabulary).
OPTIONAL_COLUMNS: tuple[str, ...] = ("query_pin_id", "platform", "content_type")


# Names a label event may not take: they are columns of the joined training examples.
RESERVED_NAMES = frozenset(
    (*FEATURE_LOG_KEY_COLUMNS, "ds", "weight", "impression_ts", "keep_prob", "config")
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The sequence log's list columns every sequence has (one list entry per recent action).
SEQUENCE_ITEM, SEQUENCE_ACTION, SEQUENCE_TS = "action_pin_id", "action_type", "action_ts"


class SequenceSpec(_Strict):
    """The user's recent actions before a request, logged once per request (the sequence log).

    Each action has an item (`action_pin_id`), a type (`action_type`, one of the vocabulary's
    label events) and a time (`action_ts`, ascending, before the request), plus the attributes
    named here: sequence-log column `action_<name>` -> the candidate column with the same
    meaning, which target attention compares it with (the item is compared with `pin_id`).
    """

    max_length: int = Field(100, ge=1, le=1000)  # a longer logged sequence is quarantined
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [
            k for k in v if not re.fullmatch(r"[a-z][a-z0-9_]*", k) or k in ("pin_id", "type", "ts")
        ]
        if bad:
            raise ValueError(f"sequence attribute names must be lower_snake_case, not {bad}")
        return v

    @property
    def columns(self) -> tuple[str, ...]:
        """The sequence log's list columns."""
        return (
            SEQUENCE_ITEM,
            SEQUENCE_ACTION,
            SEQUENCE_TS,
            *(f"action_{a}" for a in self.attributes),
        )

    @property
    def candidate_columns(self) -> tuple[str, ...]:
        """The candidate columns the actions are compared with: the item, then each attribute's."""
        return ("pin_id", *self.attributes.values())


class FeatureSpec(_Strict):
    """Which logged columns are model features; logs with other features declare theirs here."""

    dense: tuple[str, ...] = Field(min_length=1)
    categorical: tuple[str, ...] = ()
    # The user's recent actions (a sequence log); None: this ranker's logs have none.
    sequence: SequenceSpec | None = None

    @model_validator(mode="after")
    def _no_overlap(self) -> FeatureSpec:
        both = set(self.dense) & set(self.categorical)
        if both:
            raise ValueError(f"features declared both dense and categorical: {sorted(both)}")
        if len(set(self.dense)) != len(self.dense):
            raise ValueError("features.dense has duplicate names")
        reserved = set(self.dense) & (set(FEATURE_LOG_KEY_COLUMNS) | {"ds"})
        if reserved:
            raise ValueError(f"features.dense uses reserved log columns: {sorted(reserved)}")
        typed = set(self.categorical) & (set(FEATURE_LOG_KEY_COLUMNS) - set(ID_COLUMNS) | {"ds"})
        if typed:
            raise ValueError(
                f"features.categorical names contract columns that are not ids: {sorted(typed)}; "
                f"of the contract's columns only the ids {list(ID_COLUMNS)} can be categorical "
                "features (log a copy under another name to use the others)"
            )
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns a model reads, dense first; with a sequence also the request id and time
        (rows of one request share its sequence; actions are dated relative to the request), the
        candidate columns actions are compared with, and the sequence's list columns."""
        if self.sequence is None:
            return self.dense + self.categorical
        seq = self.sequence
        extra = ("request_id", "request_ts", *seq.candidate_columns, *seq.columns)
        return (*self.dense, *dict.fromkeys((*self.categorical, *extra)))

    @property
    def row_inputs(self) -> tuple[str, ...]:
        """The inputs an example row carries: all but the sequence's lists, which are per
        request and stay in the sequence log (training.data.attach_sequences)."""
        lists = self.sequence.columns if self.sequence else ()
        return tuple(c for c in self.inputs if c not in lists)


class Vocabulary(_Strict):
    """The names in this ranker's logs: its events, which become labels, its policies, and
    which optional context columns it has. Defaults are the closeup ranker's."""

    impression_event: str = "impression"
    # Engagement events; each becomes a 0/1 label column and can be a model head.
    label_events: tuple[str, ...] = Field(
        ("closeup", "click", "repin", "long_click", "hide"), min_length=1
    )
    policies: tuple[str, ...] = ("production", "randomized")
    # Requests of this policy are served in random order, every candidate logged with its
    # propensity: the unbiased slice for evaluation, calibration and replay.
    randomized_policy: str = "randomized"
    platforms: tuple[str, ...] | None = ("ios", "android", "web")  # None: no platform column
    content_types: tuple[str, ...] | None = ("image", "video", "product")  # None: no column
    query_column: StrictBool = True  # logs carry query_pin_id (the pin the request is about)
    id_type: Literal["int64", "string"] = "int64"  # request, pin, user (and query) ids

    @model_validator(mode="after")
    def _consistent(self) -> Vocabulary:
        events = [self.impression_event, *self.label_events]
        if len(set(events)) != len(events):
            raise ValueError("vocabulary: impression_event and label_events must be distinct")
        if self.randomized_policy not in self.policies:
            raise ValueError(
                f"vocabulary.randomized_policy {self.randomized_policy!r} is not one of "
                f"policies {list(self.policies)}"
            )
        clash = set(self.label_events) & RESERVED_NAMES
        if clash:
            raise ValueError(f"vocabulary.label_events use reserved column names: {sorted(clash)}")
        return self

    @property
    def event_types(self) -> tuple[str, ...]:
        return (self.impression_event, *self.label_events)

    @property
    def absent_columns(self) -> tuple[str, ...]:
        """Optional contract columns this ranker's logs do not have."""
        present = {
            "query_pin_id": self.query_column,
            "platform": self.platforms is not None,
            "content_type": self.content_types is not None,
        }
        return tuple(c for c, here in present.items() if not here)


class LoggingConfig(_Strict):
    """The online logging rules the logs were produced with (hybrid logging)."""

    mode: Literal["hybrid", "full"] = "hybrid"
    impression_keep_rate: float = Field(0.10, gt=0.0, le=1.0)
    randomized_share: float = Field(0.02, ge=0.0, le=1.0)
    hash_salt: str = "closeup-logger-v1"
    # The user's last N actions, logged once per request that has a logged candidate (0: none).
    sequence_length: int = Field(100, ge=0, le=1000)


class WorldConfig(_Strict):
    """Size and dynamics of the closeup world simulator (the embedded default data source)."""

    origin: str = "2026-01-01"
    n_users: int = Field(50_000, gt=0)
    n_pins: int = Field(200_000, gt=0)
    n_topics: int = Field(32, ge=2)
    embedding_dim: int = Field(16, ge=2)
    candidates_per_request: int = Field(50, ge=2)
    same_topic_share: float = Field(0.7, ge=0.0, le=1.0)
    mean_impressed: float = Field(8.0, gt=1.0)
    topic_drift: float = Field(0.15, ge=0.0)
    interest_drift: float = Field(0.10, ge=0.0)
    # The living catalogue (docs/world.md says where each default comes from). A pin's exposure
    # halves every `exposure_half_life_days`: Piqora (2013) measured a Pinterest pin's half-life
    # at about 3.5 months (vs minutes for a tweet). A catalogue of constant active size then
    # renews ln 2 / 105 = 0.66% a day: that many pins are born daily and the oldest retire.
    exposure_half_life_days: float = Field(105.0, gt=0.0)
    new_pin_share_per_day: float = Field(0.0066, ge=0.0, le=0.5)  # 0: a static catalogue
    # Novelty: a new pin's engagement logit rises over `rise_days` and its extra appeal halves
    # daily: BoardBooster (2016) found viral pins get half their repins on day one, 90% in four.
    # The size of the boost is our assumption.
    novelty_logit: float = Field(1.0, ge=0.0)
    novelty_half_life_days: float = Field(1.0, gt=0.0)
    rise_days: float = Field(1.0, gt=0.0)
    # Trends (our assumption): topics start trending at this rate, peak at +trend_logit halfway
    # through `trend_days`, then fade; and each topic has its own weekday rhythm.
    trend_rate_per_day: float = Field(0.25, ge=0.0)
    trend_logit: float = Field(0.8, ge=0.0)
    trend_days: int = Field(14, ge=1, le=90)
    weekly_logit: float = Field(0.1, ge=0.0)
    # Recent actions (our assumption): an average user engages this often a day, and a history
    # reaches back at most this far; the logger keeps the last `logging.sequence_length`.
    actions_per_day: float = Field(20.0, gt=0.0)
    history_days: float = Field(7.0, gt=0.0)
    late_report_share: float = Field(0.01, ge=0.0, le=1.0)
    # Real clients retry (duplicate events) and send broken rows; ingestion must cope.
    client_fault_share: float = Field(0.002, ge=0.0, le=0.5)

    @field_validator("origin")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        from datetime import date

        date.fromisoformat(v)
        return v


class IngestionConfig(_Strict):
    """Quarantine thresholds (above the warn share a check warns; above error it blocks), and
    where a landed day is screened.

    `spark` screens the day in Spark tasks, `batch_rows` rows at a time, so no process holds the
    whole day and a cluster ingests what one machine cannot; `memory` screens it in one
    in-process frame (no Spark job: a small day takes a fraction of a second instead of two);
    `auto` uses memory for a day whose landed files total at most `memory_max_bytes` (a frame
    takes about 45x the landed bytes at its peak) and Spark above that.
    """

    quarantine_warn_share: float = Field(0.01, ge=0.0, le=1.0)
    quarantine_error_share: float = Field(0.05, ge=0.0, le=1.0)
    engine: Literal["auto", "spark", "memory"] = "auto"
    memory_max_bytes: int = Field(32 * 2**20, ge=0)
    batch_rows: int = Field(100_000, ge=1)
    batch_bytes: int = Field(32 * 2**20, ge=1)  # ... and about this much landed data per frame

    def engine_for(self, landed_bytes: int) -> Literal["spark", "memory"]:
        """Where a day of `landed_bytes` is screened."""
        if self.engine != "auto":
            return self.engine
        return "memory" if landed_bytes <= self.memory_max_bytes else "spark"

    @model_validator(mode="after")
    def _ordered(self) -> IngestionConfig:
        if self.quarantine_warn_share > self.quarantine_error_share:
            raise ValueError(
                "ingestion.quarantine_warn_share must not exceed quarantine_error_share"
            )
        return self


class JoinerConfig(_Strict):
    """How labels are joined to logged features.

    A day is joined once the next day's events are ingested, or, when `labels_final_hours` is
    set, once that many hours have passed since the day ended (a finished log's last day never
    gets a next day): its labels then count as final, and the partition says so.
    """

    maturity_hours: float = Field(24.0, gt=0.0, le=48.0)
    orphan_error_share: float = Field(0.01, ge=0.0, le=1.0)
    labels_final_hours: float | None = Field(None, gt=0.0)


class SparkConfig(_Strict):
    """Spark session settings: local by default; point `master` at a cluster to scale out."""

    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)

    def session_config(self) -> dict[str, str]:
        """The full Spark conf: defaults for correctness and a quiet local run, then overrides."""
        return {
            "spark.master": self.master,
            "spark.app.name": "ranker_assets",
            "spark.driver.memory": "4g",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
            "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
            "spark.hadoop.parquet.enable.summary-metadata": "false",
            **self.conf,
        }


class SamplingSettings(_Strict):
    """Where the sampling configs live, which one trains by default, and the health limit.

    A relative `configs_dir` is resolved against the ranker config file's folder on load.
    """

    configs_dir: str = "configs/sampling"
    default: str = "balanced"
    max_ratio_change: float = Field(3.0, gt=1.0)

    @property
    def configs_path(self) -> Path:
        path = Path(self.configs_dir)
        return path if path.is_absolute() else REPO_ROOT / path


class SequenceModel(_Strict):
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


class ModelConfig(_Strict):
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
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(512, ge=1)
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


class MlflowConfig(_Strict):
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


class CadenceConfig(_Strict):
    """How fresh each stage must be (hours); Dagster freshness policies are built from these.

    Logs land daily; a training dataset is a day behind its logs (labels need D+1).
    """

    logs_warn_hours: float = Field(30.0, gt=0)
    logs_fail_hours: float = Field(54.0, gt=0)
    training_data_warn_hours: float = Field(54.0, gt=0)
    training_data_fail_hours: float = Field(78.0, gt=0)
    model_warn_hours: float = Field(7 * 24.0, gt=0)  # retrain weekly (the article's balance)
    model_fail_hours: float = Field(10 * 24.0, gt=0)
    # When the newest rankers are retrained (once per tick, when their window is sampled):
    # daily by default; e.g. "0 4 * * 1" weekly, "0 4 */3 * *" every three days.
    retrain_cron: str = Field("0 4 * * *", pattern=r"^\S+( \S+){4}$")

    @model_validator(mode="after")
    def _ordered(self) -> CadenceConfig:
        for stage in ("logs", "training_data", "model"):
            if getattr(self, f"{stage}_warn_hours") > getattr(self, f"{stage}_fail_hours"):
                raise ValueError(f"cadence.{stage}_warn_hours must not exceed {stage}_fail_hours")
        return self


class SliceSpec(_Strict):
    """A column to slice evaluation by: its values, or numeric buckets split at `bins`."""

    column: str
    bins: tuple[float, ...] = ()


class EvaluationConfig(_Strict):
    """How a challenger is evaluated against the champion (see evaluation/)."""

    slices: tuple[SliceSpec, ...] = ()
    top_k: int = Field(3, ge=1)  # HIT@K per request, and the slate depth of off-policy values
    bootstrap_samples: int = Field(200, ge=20)
    confidence: float = Field(0.9, gt=0.5, lt=1.0)
    seed: int = 0
    # The ranking a model would serve: sum of weight x probability over these heads.
    ranking_weights: dict[str, float] = Field(default_factory=dict)  # default: 1.0 per head
    # The full action set of logs that show one item per slot (the usual bandit log): a Parquet
    # file, one row per item, `pin_id` and the item-side features. With it, off-policy values
    # of such logs are per-slot IPS/SNIPS over every item (evaluation/action_set.py); without
    # it they are refused. A relative path is resolved against the config file's folder.
    item_table: str | None = None


class HeadGates(_Strict):
    """Thresholds of one head; None switches a gate off."""

    min_auc: float | None = Field(0.55, ge=0.0, le=1.0)
    # The challenger may be worse than the champion by at most this (absolute AUC, or a share
    # of the champion's AUC when relative): fails when the paired interval lies wholly below.
    max_auc_regression: float | None = Field(0.01, ge=0.0)
    regression_relative: StrictBool = False
    calibration_range: tuple[float, float] | None = (0.67, 1.5)  # weighted predicted / actual


class ShiftGates(_Strict):
    """Data validation before training: the window's days against the days before it."""

    reference_days: int = Field(7, ge=1)
    max_feature_psi: float = Field(0.25, gt=0.0)
    max_label_rate_ratio: float = Field(2.0, gt=1.0)
    psi_bins: int = Field(10, ge=2)
    min_positives: int = Field(20, ge=1)  # a label rate on fewer positives is not judged
    # Joint shape, which a poison that keeps label rates cannot keep: where in the slate the
    # positives fall (PSI of their share per position bucket; buckets start at these
    # positions), and how well the dense features predict each label (AUC of a logistic
    # model fitted on the reference days; a drop past the bound, and past 3 standard errors).
    position_buckets: tuple[int, ...] = (0, 1, 2, 3, 5, 10, 20)
    max_position_psi: float = Field(0.2, gt=0.0)
    max_relation_auc_drop: float = Field(0.05, gt=0.0)
    min_joint_positives: int = Field(200, ge=1)  # fewer positives: not judged, and said so


class ServingGates(_Strict):
    """The online deploy pipeline's checks, run offline on the registered model."""

    candidates_per_request: int = Field(50, ge=1)
    latency_requests: int = Field(100, ge=10)
    # p99 CPU time of one request on one thread: what the model costs, however busy the host.
    max_p99_ms: float = Field(250.0, gt=0.0)
    # The challenger's wall time over the champion's, measured interleaved in the same window.
    max_latency_ratio: float = Field(2.0, gt=0.0)
    max_model_mb: float = Field(100.0, gt=0.0)
    max_score_psi: float = Field(1.0, gt=0.0)  # challenger's scores against the champion's
    min_score_std: float = Field(1e-4, ge=0.0)  # below this the scores collapsed


class GatesConfig(_Strict):
    """Every threshold between a trained ranker and serving, TFX-style."""

    primary_head: str = "repin"  # picks the best passing challenger among sampling configs
    min_positives: int = Field(30, ge=1)
    insufficient_passes: StrictBool = False  # a metric on too few positives never passes by default
    default: HeadGates = HeadGates()
    heads: dict[str, HeadGates] = Field(default_factory=dict)  # per-head overrides
    shift: ShiftGates = ShiftGates()
    serving: ServingGates = ServingGates()
    # Days whose failed dataset_health a person has reviewed and accepted for training.
    accepted_unhealthy_days: tuple[str, ...] = ()

    def for_head(self, head: str) -> HeadGates:
        return self.heads.get(head, self.default)

    @field_validator("accepted_unhealthy_days")
    @classmethod
    def _days(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from datetime import date

        for d in v:
            date.fromisoformat(d)
        return v


class DeploymentConfig(_Strict):
    """The closed loop: a share of simulated traffic keeps being served by `previous`."""

    holdout_share: float = Field(0.1, ge=0.0, lt=1.0)


class RankerConfig(_Strict):
    """One ranker: its features, its logs and (as the pipeline grows) its training and gates."""

    name: str = Field("closeup_ranker", pattern=r"^[A-Za-z0-9_.-]+$")
    owners: tuple[str, ...] = ("team:ranking",)  # Dagster owners: team:<name> or e-mails
    start_date: str = "2026-11-01"
    timezone: str = "UTC"  # where a day (ds) begins and ends, for partitions and ingestion
    vocabulary: Vocabulary = Vocabulary()
    features: FeatureSpec
    logging: LoggingConfig = LoggingConfig()
    world: WorldConfig = WorldConfig()
    ingestion: IngestionConfig = IngestionConfig()
    joiner: JoinerConfig = JoinerConfig()
    spark: SparkConfig = SparkConfig()
    sampling: SamplingSettings = SamplingSettings()
    model: ModelConfig = ModelConfig()
    mlflow: MlflowConfig = MlflowConfig()
    cadence: CadenceConfig = CadenceConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gates: GatesConfig = GatesConfig()
    deployment: DeploymentConfig = DeploymentConfig()

    @field_validator("start_date")
    @classmethod
    def _start_is_a_date(cls, v: str) -> str:
        from datetime import date

        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"must be a date as YYYY-MM-DD, got {v!r}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r} (e.g. UTC, America/New_York)") from None
        return v

    @model_validator(mode="after")
    def _heads_known(self) -> RankerConfig:
        labels = set(self.vocabulary.label_events)
        if not set(self.model.heads) <= labels:
            raise ValueError(
                f"model.heads {sorted(set(self.model.heads) - labels)} are not label events of "
                f"the vocabulary ({sorted(labels)})"
            )
        absent = set(self.vocabulary.absent_columns)
        used = (set(self.features.inputs) | {s.column for s in self.evaluation.slices}) & absent
        if used:
            raise ValueError(
                f"features or evaluation.slices use columns the vocabulary says the logs do not "
                f"have: {sorted(used)}"
            )
        seq = self.features.sequence
        if seq is not None:
            unknown_seq = (
                set(seq.candidate_columns)
                - set(self.features.categorical)
                - {
                    *ID_COLUMNS,
                    *OPTIONAL_COLUMNS,
                }
            )
            if unknown_seq:
                raise ValueError(
                    f"features.sequence.attributes compare actions with {sorted(unknown_seq)}, "
                    "which are neither categorical features nor the contract's id or context "
                    "columns"
                )
        heads = set(self.model.heads)
        named = {
            "gates.primary_head": {self.gates.primary_head},
            "gates.heads": set(self.gates.heads),
            "evaluation.ranking_weights": set(self.evaluation.ranking_weights),
        }
        for where, names in named.items():
            unknown = names - heads
            if unknown:
                raise ValueError(
                    f"{where} names heads the model does not train: {sorted(unknown)} "
                    f"(model.heads: {sorted(heads)}; set {where} to name only those)"
                )
        return self

    def ranking_weights(self) -> dict[str, float]:
        """Head -> weight of the utility a ranker serves by (1.0 per head unless configured)."""
        return self.evaluation.ranking_weights or dict.fromkeys(self.model.heads, 1.0)


class ConfigError(ValueError):
    """The ranker config is invalid; the message names the file and each failing field."""


def field_errors(err: ValidationError) -> str:
    """`a.b: message; c: message`: each failing field of a config by its dotted path."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or '<config>'}: {e['msg']}" for e in err.errors()
    )


def load_config(path: str | Path | None = None) -> RankerConfig:
    """Load the ranker config from `path`, `$RANKER_CONFIG`, or `configs/ranker.yaml`.

    Relative paths inside it are resolved against the file's folder; the default sampling
    config must exist (a broken one only disables its own partitions).
    """
    p = Path(path or os.environ.get("RANKER_CONFIG") or DEFAULT_CONFIG_PATH).resolve()
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping of fields, got {type(raw).__name__}")
    sampling = raw.get("sampling")
    if isinstance(sampling, dict) and isinstance(sampling.get("configs_dir"), str):
        sampling["configs_dir"] = str(p.parent / sampling["configs_dir"])
    evaluation = raw.get("evaluation")
    if isinstance(evaluation, dict) and isinstance(evaluation.get("item_table"), str):
        evaluation["item_table"] = str(p.parent / evaluation["item_table"])
    try:
        cfg = RankerConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{p}: {field_errors(err)}") from None
    from ranker_assets.sampling.config import scan_sampling_configs

    valid, broken = scan_sampling_configs(cfg.sampling.configs_path, cfg.vocabulary)
    if cfg.sampling.default not in {*valid, *broken}:
        raise ConfigError(
            f"{p}: sampling.default: no sampling config named {cfg.sampling.default!r} under "
            f"{cfg.sampling.configs_path} (found: {sorted({*valid, *broken})})"
        )
    return cfg


def ranker_home() -> Path:
    """Where everything the project writes lives: `$RANKER_HOME`, default `.ranker/` in the repo."""
    return Path(os.environ.get("RANKER_HOME") or REPO_ROOT / ".ranker").resolve()
