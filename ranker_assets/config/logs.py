"""The logs' section: the contract's columns, the ranker's features and vocabulary, how the
logs were written (hybrid logging) and how a landed day is screened (ingestion)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from ranker_assets.config.base import Strict

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


# The sequence log's list columns every sequence has (one list entry per recent action).
SEQUENCE_ITEM, SEQUENCE_ACTION, SEQUENCE_TS = "action_pin_id", "action_type", "action_ts"


class SequenceSpec(Strict):
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


class FeatureSpec(Strict):
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


class Vocabulary(Strict):
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


class LoggingConfig(Strict):
    """The online logging rules the logs were produced with (hybrid logging)."""

    mode: Literal["hybrid", "full"] = "hybrid"
    impression_keep_rate: float = Field(0.10, gt=0.0, le=1.0)
    randomized_share: float = Field(0.02, ge=0.0, le=1.0)
    hash_salt: str = "closeup-logger-v1"
    # The user's last N actions, logged once per request that has a logged candidate (0: none).
    sequence_length: int = Field(100, ge=0, le=1000)


class IngestionConfig(Strict):
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
