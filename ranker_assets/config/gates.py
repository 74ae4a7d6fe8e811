"""The judgement's section: freshness cadence, evaluation, every gate between a trained ranker
and serving, and the closed loop's holdout."""

from __future__ import annotations

from pydantic import (
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from ranker_assets.config.base import Strict


class CadenceConfig(Strict):
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
    # How often the daemon looks for landed files and evaluates the automation conditions: a
    # landed day waits up to one of each before its first run, and each later stage one more
    # evaluation. Shorter is quicker and costs a code-server evaluation per tick.
    observe_every_seconds: int = Field(60, ge=5)
    automate_every_seconds: int = Field(30, ge=5)

    @model_validator(mode="after")
    def _ordered(self) -> CadenceConfig:
        for stage in ("logs", "training_data", "model"):
            if getattr(self, f"{stage}_warn_hours") > getattr(self, f"{stage}_fail_hours"):
                raise ValueError(f"cadence.{stage}_warn_hours must not exceed {stage}_fail_hours")
        return self


class SliceSpec(Strict):
    """A column to slice evaluation by: its values, or numeric buckets split at `bins`."""

    column: str
    bins: tuple[float, ...] = ()


class EvaluationConfig(Strict):
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


class HeadGates(Strict):
    """Thresholds of one head; None switches a gate off."""

    min_auc: float | None = Field(0.55, ge=0.0, le=1.0)
    # The challenger may be worse than the champion by at most this (absolute AUC, or a share
    # of the champion's AUC when relative): fails when the paired interval lies wholly below.
    max_auc_regression: float | None = Field(0.01, ge=0.0)
    regression_relative: StrictBool = False
    calibration_range: tuple[float, float] | None = (0.67, 1.5)  # weighted predicted / actual


class ShiftGates(Strict):
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


class ServingGates(Strict):
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


class GatesConfig(Strict):
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


class DeploymentConfig(Strict):
    """The closed loop: a share of simulated traffic keeps being served by `previous`."""

    holdout_share: float = Field(0.1, ge=0.0, lt=1.0)
