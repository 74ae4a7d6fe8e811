"""The ranker's one configuration: the single entry point for data, logging and the pipeline.

Everything a stage needs to know about *this* ranker (its feature columns, how its logs
were written, the thresholds that gate it) is read from one YAML file, validated here,
so onboarding a new ranker is writing a file rather than editing code.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ranker_assets.config.base import REPO_ROOT, Strict, field_errors, ranker_home
from ranker_assets.config.gates import (
    CadenceConfig,
    DeploymentConfig,
    EvaluationConfig,
    GatesConfig,
    HeadGates,
    ServingGates,
    ShiftGates,
    SliceSpec,
)
from ranker_assets.config.logs import (
    FEATURE_LOG_KEY_COLUMNS,
    ID_COLUMNS,
    OPTIONAL_COLUMNS,
    RESERVED_NAMES,
    SEQUENCE_ACTION,
    SEQUENCE_ITEM,
    SEQUENCE_TS,
    FeatureSpec,
    IngestionConfig,
    LoggingConfig,
    SequenceSpec,
    Vocabulary,
)
from ranker_assets.config.pipeline import JoinerConfig, SamplingSettings, SparkConfig
from ranker_assets.config.sampling import scan_sampling_configs
from ranker_assets.config.training import MlflowConfig, ModelConfig, SequenceModel
from ranker_assets.config.world import WorldConfig

# One import path for every section: `from ranker_assets.config import Vocabulary`.
__all__ = [
    "FEATURE_LOG_KEY_COLUMNS",
    "ID_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REPO_ROOT",
    "RESERVED_NAMES",
    "SEQUENCE_ACTION",
    "SEQUENCE_ITEM",
    "SEQUENCE_TS",
    "CadenceConfig",
    "ConfigError",
    "DeploymentConfig",
    "EvaluationConfig",
    "FeatureSpec",
    "GatesConfig",
    "HeadGates",
    "IngestionConfig",
    "JoinerConfig",
    "LoggingConfig",
    "MlflowConfig",
    "ModelConfig",
    "RankerConfig",
    "SamplingSettings",
    "SequenceModel",
    "SequenceSpec",
    "ServingGates",
    "ShiftGates",
    "SliceSpec",
    "SparkConfig",
    "Vocabulary",
    "WorldConfig",
    "field_errors",
    "load_config",
    "ranker_home",
]

DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "ranker.yaml"


class RankerConfig(Strict):
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
    valid, broken = scan_sampling_configs(cfg.sampling.configs_path, cfg.vocabulary)
    if cfg.sampling.default not in {*valid, *broken}:
        raise ConfigError(
            f"{p}: sampling.default: no sampling config named {cfg.sampling.default!r} under "
            f"{cfg.sampling.configs_path} (found: {sorted({*valid, *broken})})"
        )
    return cfg
