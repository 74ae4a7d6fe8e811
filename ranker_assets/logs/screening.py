"""Screening: raw rows -> contract-typed rows, quarantine records with reasons, duplicates.

The one set of rules every reader of logs applies (in-process ingestion, Spark ingestion and
`ranker-assets check-logs`). Type and null rules are checked here (pandera cannot report
per-row reasons once a column fails to coerce); value rules come from the pandera contract
itself, row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
from pandera.errors import SchemaErrors

from ranker_assets.config import FeatureSpec, RankerConfig, SequenceSpec, Vocabulary
from ranker_assets.logs import contract, sequences

QUARANTINE_SCHEMA = pa_arrow.schema(
    [
        ("log", pa_arrow.string()),
        ("ds", pa_arrow.string()),
        ("source_file", pa_arrow.string()),
        ("row_number", pa_arrow.int64()),
        ("rule", pa_arrow.string()),
        ("column", pa_arrow.string()),
        ("detail", pa_arrow.string()),
        ("raw_payload", pa_arrow.string()),
    ]
)
_META = ("_source_file", "_row_number", "_raw")


@dataclass(frozen=True)
class LogSpec:
    """How one log is ingested: its contract, its unique key and the column that dates a row."""

    name: str
    schema: pa.DataFrameSchema
    key: tuple[str, ...]
    time_column: str
    timezone: str = "UTC"  # where the partition's day begins and ends
    # A log with list columns (the sequence log): their spec and the names they are checked by.
    sequence: tuple[SequenceSpec, Vocabulary] | None = None

    @property
    def columns(self) -> dict[str, str]:
        """Contract column -> dtype, for the columns every file must have."""
        return {n: str(c.dtype) for n, c in self.schema.columns.items() if c.required}

    @cached_property
    def value_rules(self) -> pa.DataFrameSchema:
        """The contract's rules without its dtypes, for rows `screen` has typed already: with
        them pandera re-checks the type of every string value one by one (`isinstance` mapped
        over the column), a third of screening's time."""
        return self.schema.update_columns({n: {"dtype": None} for n in self.schema.columns})

    @property
    def int_columns(self) -> list[str]:
        """Integer columns, which a JSON reader must not read as floating point."""
        return [n for n, t in self.columns.items() if t.startswith("int")]


def event_log_spec(vocab: Vocabulary | None = None, timezone: str = "UTC") -> LogSpec:
    return LogSpec(
        "event_log", contract.event_log_schema(vocab), ("event_id",), "timestamp", timezone
    )


def feature_log_spec(
    features: FeatureSpec, vocab: Vocabulary | None = None, timezone: str = "UTC"
) -> LogSpec:
    return LogSpec(
        "feature_log",
        contract.feature_log_schema(features, vocab),
        ("request_id", "pin_id"),
        "request_ts",
        timezone,
    )


def sequence_log_spec(
    spec: SequenceSpec, vocab: Vocabulary | None = None, timezone: str = "UTC"
) -> LogSpec:
    vocab = vocab or Vocabulary()
    return LogSpec(
        "sequence_log",
        sequences.sequence_log_schema(vocab),
        ("request_id",),
        "request_ts",
        timezone,
        (spec, vocab),
    )


def log_specs(cfg: RankerConfig) -> tuple[LogSpec, ...]:
    """The logs this ranker ingests: features and events, and its sequence log if it has one."""
    vocab, tz = cfg.vocabulary, cfg.timezone
    specs = [feature_log_spec(cfg.features, vocab, tz), event_log_spec(vocab, tz)]
    if cfg.features.sequence is not None:
        specs.append(sequence_log_spec(cfg.features.sequence, vocab, tz))
    return tuple(specs)


def _coerce(values: pd.Series, dtype: str) -> pd.Series:
    """Cast to the contract dtype; values that cannot be cast become NA (reported as wrong_type)."""
    if dtype.startswith("datetime64"):
        return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601").astype(
            "datetime64[us, UTC]"
        )
    kind = values.dtype.kind
    if dtype.startswith(("int", "float")):
        # Typed by the reader, or checked per value (Python ints of any size stay exact).
        num = values if kind in "iuf" else values.where(values.map(_is_number))
        if dtype.startswith("int"):
            return _as_int(num, np.iinfo(dtype))
        return pd.to_numeric(num, errors="coerce")
    if dtype == "bool":
        if kind == "b":
            return values
        # true/false, or the integers 0 and 1 many logs use for flags (a lossless reading).
        return values.map(_as_bool, na_action="ignore")
    if kind == "O":  # only real strings: a JSON list or object is not text
        if pd.api.types.infer_dtype(values, skipna=True) == "string":
            return values  # every value is text (checked in C, not per value)
        return values.where(values.map(lambda v: isinstance(v, str)))
    return values.where(pd.Series(False, index=values.index))


def _as_int(num: pd.Series, info: np.iinfo) -> pd.Series:
    """Integers exactly as logged and within the dtype's range, as nullable Int64: never wrapped
    or rounded. Typed columns are checked as arrays; mixed JSON values one by one."""
    if num.dtype.kind in "iu":
        ok = (num >= info.min) & (num <= info.max)
    elif num.dtype.kind == "f":  # integral and in range; the upper bound is exact as a float
        ok = np.isfinite(num) & (num == np.round(num))
        ok &= (num >= float(info.min)) & (num < float(info.max) + 1)
    else:
        exact = num.map(_exact_int, na_action="ignore")
        ok = exact.map(lambda v: v is not None and info.min <= v <= info.max).fillna(False)
        return pd.Series(pd.array(exact.where(ok.astype(bool)), dtype="Int64"), index=num.index)
    ints = num.where(ok, 0).astype(np.int64)
    return pd.Series(pd.array(ints, dtype="Int64"), index=num.index).mask(~ok)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _as_bool(v: object) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer) and v in (0, 1):
        return bool(v)
    return None


def _exact_int(v: object) -> int | None:
    """The integer a number stands for exactly, or None (fractions, NaN, inf)."""
    if isinstance(v, int | np.integer):
        return int(v)
    f = float(v)
    return int(f) if np.isfinite(f) and f == np.round(f) else None


# The config key that most often explains a rejected column: a log written by another stack
# usually differs from the config in its id type, its policy names or its optional columns.
_LIKELY_FIX = {
    "request_id": "vocabulary.id_type",
    "pin_id": "vocabulary.id_type",
    "user_id": "vocabulary.id_type",
    "query_pin_id": "vocabulary.id_type or vocabulary.query_column",
    "policy": "vocabulary.policies / vocabulary.randomized_policy",
    "event_type": "vocabulary.impression_event / vocabulary.label_events",
    "platform": "vocabulary.platforms",
    "content_type": "vocabulary.content_types",
}


def likely_fix(rule: str, column: str | None, timezone: str) -> str | None:
    """The config setting to check first for quarantined rows of `rule` on `column`."""
    if rule == "outside_partition":
        return f"timezone ({timezone}), or rows landed in another day's folder"
    if rule in ("wrong_type", "contract", "missing_column") and column in _LIKELY_FIX:
        return _LIKELY_FIX[column]
    return None


def screen(
    df: pd.DataFrame, spec: LogSpec, ds: str, dedupe: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Split raw rows into (valid typed rows, quarantine records, number of duplicates dropped).

    List columns (the sequence log's) come back as typed Arrow lists in `attrs["lists"]`.
    `dedupe=False` keeps duplicates for a caller that removes them across batches."""
    reason = pd.Series(None, index=df.index, dtype=object)
    column = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series(None, index=df.index, dtype=object)

    def flag(mask: pd.Series, rule: str, col: str | None, text: str) -> None:
        new = mask & reason.isna()
        reason[new] = rule
        column[new] = col
        detail[new] = text

    typed = pd.DataFrame(index=df.index)
    for name, col in spec.schema.columns.items():
        if name not in df.columns and name in contract.OPTIONAL_DEFAULTS:
            typed[name] = contract.OPTIONAL_DEFAULTS[name]  # documented meaning of absence
            continue
        if name not in df.columns and not col.required:
            continue
        if name not in df.columns:
            flag(pd.Series(True, index=df.index), "missing_column", name, "column absent in file")
            continue
        raw = df[name]
        present = raw.notna()
        flag(~present, "missing_value", name, "null or absent")
        cast = _coerce(raw, str(col.dtype))
        flag(
            present & cast.isna(),
            "wrong_type",
            name,
            f"expected a {col.dtype} scalar"
            + (
                f" in [{np.iinfo(str(col.dtype)).min}, {np.iinfo(str(col.dtype)).max}]"
                if str(col.dtype).startswith("int")
                else ""
            ),
        )
        typed[name] = cast

    lists: dict[str, pa_arrow.Array] = {}
    if spec.sequence is not None:
        when = typed.get("request_ts", pd.Series(pd.NaT, index=df.index))
        problems, lists = sequences.list_problems(df, when, *spec.sequence)
        for p in problems:
            flag(pd.Series(p.rows, index=df.index), p.rule, p.column, p.detail)

    # Value rules from the contract, on rows whose types are right.
    ok = reason.isna()
    dtypes = {n: str(c.dtype) for n, c in spec.schema.columns.items() if n in typed}
    candidates = typed[ok].astype(dtypes)
    try:
        spec.value_rules.validate(candidates, lazy=True)
    except SchemaErrors as err:
        fc = err.failure_cases
        fc = fc[fc["index"].notna() & ~fc["check"].astype(str).str.contains("uniqueness")]
        fc = fc.drop_duplicates("index", keep="first").set_index("index")
        fresh = fc.index[reason.loc[fc.index].isna().to_numpy()]
        reason[fresh] = "contract"
        detail[fresh] = fc.loc[fresh, "check"].astype(str)
        column[fresh] = fc.loc[fresh, "column"].where(
            fc.loc[fresh, "schema_context"] != "DataFrameSchema", None
        )

    # The partition's time window: a row dated outside ds belongs to another day's folder.
    start = pd.Timestamp(ds, tz=spec.timezone)
    end = pd.Timestamp(date.fromisoformat(ds) + timedelta(days=1), tz=spec.timezone)
    when = (
        typed[spec.time_column] if spec.time_column in typed else pd.Series(pd.NaT, index=df.index)
    )
    flag(
        reason.isna() & ((when < start) | (when >= end)),
        "outside_partition",
        spec.time_column,
        f"{spec.time_column} not on {ds} ({spec.timezone})",
    )

    bad = reason.notna()
    raw_payload = df["_raw"].where(df["_raw"].notna(), None)
    if bad.any() and raw_payload[bad].isna().any():
        cols = [c for c in df.columns if c not in _META]
        raw_payload[bad & raw_payload.isna()] = (
            df.loc[bad & raw_payload.isna(), cols]
            .to_json(orient="records", lines=True, date_format="iso")
            .strip()
            .split("\n")
        )
    hints = [
        likely_fix(r, c if isinstance(c, str) else None, spec.timezone)
        for r, c in zip(reason[bad], column[bad], strict=True)
    ]
    quarantine = pd.DataFrame(
        {
            "source_file": df.loc[bad, "_source_file"],
            "row_number": df.loc[bad, "_row_number"],
            "rule": reason[bad],
            "column": column[bad],
            "detail": [
                f"{d}; check {h}" if h else d for d, h in zip(detail[bad], hints, strict=True)
            ],
            "raw_payload": raw_payload[bad],
        }
    )
    kept = typed[~bad].astype(dtypes)
    dup = kept.duplicated(list(spec.key), keep="first") if dedupe else kept.index.isna()
    kept = kept[~dup]
    rows = pa_arrow.array(kept.index.to_numpy())
    kept.attrs["lists"] = {name: arr.take(rows) for name, arr in lists.items()}
    return kept, quarantine, int(dup.sum())


@dataclass(frozen=True)
class Screened:
    """One frame of landed rows after the contract: Arrow tables ready to write."""

    valid: pa_arrow.Table  # contract-typed rows, list columns last, no `ds`
    row_numbers: np.ndarray  # each valid row's line or row number in its file
    quarantine: pa_arrow.Table  # QUARANTINE_SCHEMA
    duplicates: int
    rows_in: int


def screen_frame(
    df: pd.DataFrame,
    malformed: list[dict[str, object]],
    spec: LogSpec,
    ds: str,
    dedupe: bool = True,
) -> Screened:
    """`screen` plus the lines that could not be parsed, as Arrow tables."""
    if df.empty:
        df = pd.DataFrame(columns=[*spec.schema.columns, *_META])
    kept, quarantine, duplicates = screen(df, spec, ds, dedupe)
    quarantine = pd.concat(
        [quarantine, pd.DataFrame(malformed, columns=quarantine.columns)], ignore_index=True
    )
    quarantine.insert(0, "ds", ds)
    quarantine.insert(0, "log", spec.name)
    lists = kept.attrs.pop("lists", {})
    valid = pa_arrow.Table.from_pandas(kept, preserve_index=False).replace_schema_metadata(None)
    for name, values in lists.items():
        valid = valid.append_column(name, values)
    q = pa_arrow.Table.from_pandas(
        quarantine.astype({"row_number": "int64"}), schema=QUARANTINE_SCHEMA, preserve_index=False
    )
    rows = df.loc[kept.index, "_row_number"].to_numpy(dtype=np.int64)
    return Screened(valid, rows, q, duplicates, len(df) + len(malformed))
