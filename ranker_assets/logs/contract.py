"""The log contract, as pandera schemas: what a feature log and an event log must look like.

Users who bring their own logs land files that pass these schemas; the simulator's output is
held to the same contract. The feature columns are not hard-coded: they come from the ranker
config's feature spec, so logs with other features validate against their own declaration.
`docs/log_contract.md` is the human-readable version of this module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ranker_assets.config import FeatureSpec, Vocabulary
from ranker_assets.logs.logger import LOG_REASONS

_ID = pa.Check.ge(0, error="ids are non-negative integers")
_TEXT_ID = pa.Check.str_length(min_value=1, error="ids are non-empty strings")
UNIMPRESSED_RULE = "unimpressed candidates are logged only on randomized traffic (or in full mode)"
_FINITE = pa.Check(lambda s: np.isfinite(s), error="must be a finite number")
_UNIT = pa.Check.in_range(0.0, 1.0, include_min=False, error="must be in (0, 1]")


class ContractError(ValueError):
    """A log violates the contract; the message names each failing column, rule and example."""

    def __init__(self, log_name: str, failure_cases: pd.DataFrame) -> None:
        self.log_name = log_name
        self.failure_cases = failure_cases
        super().__init__(
            f"{log_name} violates the log contract:\n{summarize_failures(failure_cases)}"
        )


def summarize_failures(failure_cases: pd.DataFrame, examples: int = 3) -> str:
    """One line per (column, rule): how many rows fail and a few offending values.

    A table-level rule (one spanning several columns) is reported once, with offending rows.
    """
    fc = failure_cases.copy()
    table_level = fc["schema_context"].eq("DataFrameSchema") & fc["index"].notna()
    fc.loc[table_level, "column"] = "<row>"
    fc.loc[table_level, "failure_case"] = "row " + fc.loc[table_level, "index"].astype(str)
    missing = fc["check"].eq("column_in_dataframe")
    fc.loc[missing, "column"] = fc.loc[missing, "failure_case"]
    fc.loc[missing, "check"] = "required column is missing"
    fc = fc.fillna({"column": "<table>"}).drop_duplicates(
        ["column", "check", "failure_case", "index"]
    )
    lines = []
    for (column, check), group in fc.groupby(["column", "check"], sort=True):
        sample = ", ".join(
            str(v) if column == "<row>" else repr(v) for v in group["failure_case"].head(examples)
        )
        lines.append(f"  - column {column!r}: {check} ({len(group)} rows; e.g. {sample})")
    return "\n".join(lines)


# Optional columns whose absence has a meaning: ingestion records it as this value.
OPTIONAL_DEFAULTS: dict[str, object] = {"keep_rate": 1.0}


def _id(vocab: Vocabulary) -> pa.Column:
    """An id column: non-negative int64, or a non-empty string, as the vocabulary says."""
    if vocab.id_type == "string":
        return pa.Column(str, _TEXT_ID)
    return pa.Column("int64", _ID)


def _optional(vocab: Vocabulary) -> dict[str, pa.Column]:
    """The context columns this ranker's logs have (query pin, platform, content type)."""
    columns = {}
    if vocab.query_column:
        columns["query_pin_id"] = _id(vocab)
    if vocab.platforms is not None:
        columns["platform"] = pa.Column(str, pa.Check.isin(vocab.platforms))
    if vocab.content_types is not None:
        columns["content_type"] = pa.Column(str, pa.Check.isin(vocab.content_types))
    return columns


def event_log_schema(vocab: Vocabulary | None = None) -> pa.DataFrameSchema:
    """Client events: one small row per impression or engagement."""
    vocab = vocab or Vocabulary()
    columns = {
        "event_id": pa.Column(str, pa.Check.str_length(min_value=1), nullable=False),
        "request_id": _id(vocab),
        "pin_id": _id(vocab),
        "user_id": _id(vocab),
        "event_type": pa.Column(str, pa.Check.isin(vocab.event_types)),
        "position": pa.Column("int64", pa.Check.ge(0, error="position is 0-based, non-negative")),
        "timestamp": pa.Column(pd.DatetimeTZDtype("us", "UTC")),
    }
    if vocab.platforms is not None:
        columns["platform"] = pa.Column(str, pa.Check.isin(vocab.platforms))
    return pa.DataFrameSchema(columns, strict=False, coerce=False, name="event_log")


def feature_log_schema(
    features: FeatureSpec, vocab: Vocabulary | None = None
) -> pa.DataFrameSchema:
    """Logged candidates with their full features: the key columns plus the declared features.

    `propensity` is the probability that the serving policy put this candidate in this slot:
    1/n for a uniformly shuffled request of n candidates, a bandit's per-slot propensity, or 1
    for a deterministic ranking. `log_reason` is optional (the hybrid logger's bookkeeping), and
    so is `keep_rate`: a log without it kept every row (see OPTIONAL_DEFAULTS).
    """
    vocab = vocab or Vocabulary()
    columns = {
        "request_id": _id(vocab),
        "pin_id": _id(vocab),
        "user_id": _id(vocab),
        "request_ts": pa.Column(pd.DatetimeTZDtype("us", "UTC")),
        "position": pa.Column("int32", pa.Check.ge(0)),
        "impressed": pa.Column(bool),
        **_optional(vocab),
        "policy": pa.Column(str, pa.Check.isin(vocab.policies)),
        "propensity": pa.Column("float64", _UNIT),
        "keep_rate": pa.Column("float64", _UNIT, required=False),
        "log_reason": pa.Column(str, pa.Check.isin(LOG_REASONS), required=False),
    }
    for name in features.dense:
        columns[name] = pa.Column("float32", _FINITE)
    for name in features.categorical:
        columns.setdefault(name, _id(vocab))
    randomized = vocab.randomized_policy

    def shown_or_logged_in_full(df: pd.DataFrame) -> pd.Series:
        full = df["log_reason"].eq("full") if "log_reason" in df else False
        return df["impressed"] | df["policy"].eq(randomized) | full

    return pa.DataFrameSchema(
        columns,
        unique=["request_id", "pin_id"],
        checks=[pa.Check(shown_or_logged_in_full, error=UNIMPRESSED_RULE)],
        strict=False,
        coerce=False,
        name="feature_log",
    )


def validate(df: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Validate all rows at once and raise one ContractError listing every violation."""
    try:
        return schema.validate(df, lazy=True)
    except SchemaErrors as err:
        raise ContractError(schema.name or "log", err.failure_cases) from None
