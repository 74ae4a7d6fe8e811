"""Ingestion: a day of landed logs -> contract-valid rows, a quarantine with reasons, duplicates.

Nothing is dropped silently. Every landed row ends in exactly one of three places:
- kept: it passes the log contract and the day's time window;
- quarantined: with the rule and column it broke, and its raw payload, for inspection/replay;
- dropped as a duplicate of a kept row (same event id, or same (request, pin)), and counted.
rows_in == kept + quarantined + duplicates, always.

Type and null rules are checked here (pandera cannot report per-row reasons once a column fails
to coerce); value rules come from the pandera contract itself, row by row.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from pandera.errors import SchemaErrors

from ranker_assets.config import FeatureSpec, RankerConfig, SequenceSpec, Vocabulary
from ranker_assets.hybrid_logging import contract, sequences
from ranker_assets.hybrid_logging.landing import day_files
from ranker_assets.lake import PARTITION, Lake

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


@dataclass(frozen=True)
class IngestCounts:
    """What ingesting one log's day did: the counts that must reconcile, and why rows failed."""

    log: str
    ds: str
    rows_in: int
    kept: int
    quarantined: int
    duplicates: int
    bytes_in: int
    files: int
    reasons: dict[str, int]  # quarantined rows per `rule(column)`, e.g. `wrong_type(position)`
    batches: int = 1  # frames screened: one for in-memory ingestion, many on Spark
    largest_batch: int = 0  # rows in the largest of them

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.kept + self.quarantined + self.duplicates


def reason_label(rule: str, column: str | None) -> str:
    return f"{rule}({column or ''})"


@dataclass(frozen=True)
class IngestResult:
    """An in-memory ingestion: the day's kept rows and quarantine records as Arrow tables."""

    log: str
    ds: str
    valid: pa_arrow.Table  # contract-typed rows with a `ds` column
    quarantine: pa_arrow.Table  # QUARANTINE_SCHEMA
    rows_in: int
    duplicates: int
    bytes_in: int
    files: int

    @property
    def kept(self) -> int:
        return self.valid.num_rows

    @property
    def quarantined(self) -> int:
        return self.quarantine.num_rows

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def reasons(self) -> dict[str, int]:
        """Quarantined rows per `rule(column)`, e.g. `wrong_type(position)`."""
        q = self.quarantine.select(["rule", "column"]).to_pylist()
        labels = pd.Series([reason_label(r["rule"], r["column"]) for r in q], dtype=object)
        return {k: int(v) for k, v in labels.value_counts().sort_index().items()}

    def counts(self) -> IngestCounts:
        return IngestCounts(
            self.log,
            self.ds,
            self.rows_in,
            self.kept,
            self.quarantined,
            self.duplicates,
            self.bytes_in,
            self.files,
            self.reasons(),
            1,
            self.rows_in,
        )


def _parse_jsonl_fast(
    data: bytes, source: str, first_row: int, int_columns: Iterable[str] = ()
) -> pd.DataFrame | None:
    """Arrow's multithreaded JSON reader for clean lines; None sends them to the careful
    line-by-line parser (invalid UTF-8, a malformed line, a non-object, a blank line, a type
    conflict, or an integer column Arrow read as floating point, which rounds big values)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.removesuffix("\n").split("\n") if text else []
    if not lines or any(not line.strip() for line in lines):
        return None
    try:
        table = pa_json.read_json(io.BytesIO(data))
    except pa_arrow.ArrowException:
        return None
    if table.num_rows != len(lines) or any(pa_arrow.types.is_nested(t) for t in table.schema.types):
        return None
    if any(
        c in table.column_names and not pa_arrow.types.is_integer(table.schema.field(c).type)
        for c in int_columns
    ):
        return None
    df = table.to_pandas()
    df["_source_file"] = source
    df["_row_number"] = np.arange(first_row, first_row + len(df))
    df["_raw"] = lines
    return df


def _parse_jsonl_careful(
    data: bytes, source: str, first_row: int, malformed: list[dict[str, object]]
) -> pd.DataFrame:
    """One line at a time: malformed lines become quarantine records, the rest a frame."""
    records: list[dict[str, object]] = []
    for n, line in enumerate(io.BytesIO(data), start=first_row):
        try:
            text = line.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as err:
            text = line.decode("utf-8", errors="backslashreplace").rstrip("\n")
            malformed.append(_qrow(source, n, "invalid_utf8", None, text, str(err)))
            continue
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as err:
            malformed.append(_qrow(source, n, "malformed_json", None, text, str(err)))
            continue
        if not isinstance(rec, dict):
            malformed.append(_qrow(source, n, "malformed_json", None, text, "not a JSON object"))
            continue
        rec.update(_source_file=source, _row_number=n, _raw=text)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def parse_jsonl(
    data: bytes,
    source: str,
    first_row: int = 1,
    int_columns: Iterable[str] = (),
    fast: bool = True,
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """JSON lines (a file, or a slice of one starting at line `first_row`) as a frame, fast when
    clean; malformed lines come back as quarantine records, not errors."""
    malformed: list[dict[str, object]] = []
    df = _parse_jsonl_fast(data, source, first_row, int_columns) if fast else None
    return (df if df is not None else _parse_jsonl_careful(data, source, first_row, malformed)), (
        malformed
    )


def _read_jsonl(
    files: Iterable[Path], fast: bool = True, int_columns: Iterable[str] = ()
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """Parse whole files of JSON lines into one frame; malformed lines are quarantined."""
    malformed: list[dict[str, object]] = []
    frames = []
    for path in files:
        df, bad = parse_jsonl(path.read_bytes(), str(path), 1, int_columns, fast)
        frames.append(df)
        malformed += bad
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), malformed


class IngestionError(ValueError):
    """The day cannot be ingested as landed (nothing is committed); names the file and column."""


def parquet_columns(path: Path | str, required: Iterable[str]) -> pa_arrow.Schema:
    """A landed parquet file's schema, read from its footer; a file that cannot be read, or
    lacks a required column, fails the whole day."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa_arrow.ArrowException) as err:
        raise IngestionError(f"unreadable parquet file in the landing zone: {path}: {err}") from err
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise IngestionError(
            f"{path}: required column(s) {missing} missing (see docs/log_contract.md; "
            "a dense or categorical feature must be logged under the name the config gives)"
        )
    return schema


def parquet_frame(table: pa_arrow.Table, source: str, first_row: int = 1) -> pd.DataFrame:
    """Parquet rows (a file, or a slice starting at row `first_row`) with their provenance."""
    df = table.to_pandas()
    df["_source_file"] = source
    df["_row_number"] = np.arange(first_row, first_row + len(df))
    df["_raw"] = None
    return df


def _read_parquet(files: Iterable[Path], required: Iterable[str]) -> pd.DataFrame:
    """Parquet files as one frame; a file without a required column fails the whole day."""
    frames = []
    required = list(required)
    for path in files:
        parquet_columns(path, required)
        try:
            table = pq.read_table(path)
        except (OSError, pa_arrow.ArrowException) as err:
            raise IngestionError(
                f"unreadable parquet file in the landing zone: {path}: {err}"
            ) from err
        frames.append(parquet_frame(table, str(path)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _qrow(source: str, n: int, rule: str, column: str | None, raw: str, detail: str) -> dict:
    return {
        "source_file": source,
        "row_number": n,
        "rule": rule,
        "column": column,
        "detail": detail,
        "raw_payload": raw,
    }


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
        spec.schema.validate(candidates, lazy=True)
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


def ingest_day(landing: Path, spec: LogSpec, ds: str | date) -> IngestResult:
    """Ingest every landed file of one log and day, in memory (small days, `check-logs`)."""
    ds = str(ds)
    files = day_files(landing, spec.name, ds)
    bytes_in = sum(p.stat().st_size for p in files)
    malformed: list[dict[str, object]] = []
    if spec.name == "event_log":
        df, malformed = _read_jsonl(files, int_columns=spec.int_columns)
    else:
        df = _read_parquet(files, spec.columns)
    out = screen_frame(df, malformed, spec, ds)
    valid = out.valid.append_column(
        "ds", pa_arrow.array([ds] * out.valid.num_rows, pa_arrow.string())
    )
    return IngestResult(
        spec.name, ds, valid, out.quarantine, out.rows_in, out.duplicates, bytes_in, len(files)
    )


QUARANTINE_TABLE = "quarantine"


def refuse_empty_day(lake: Lake, counts: IngestCounts) -> None:
    """Never replace ingested rows with nothing: a day with no landed file, or whose every row
    was rejected while rows of it are already in the lake, fails before any commit."""
    log, ds = counts.log, counts.ds
    if counts.files and counts.kept:  # the common case: no need to look at the lake
        return
    ingested = lake.read(log, [ds], columns=[PARTITION]).num_rows if lake.exists(log) else 0
    kept = f"; the {ingested:,} rows ingested before are kept" if ingested else ""
    if counts.files == 0:
        raise IngestionError(f"no {log} files landed for ds={ds}{kept}")
    if ingested:
        raise IngestionError(
            f"every one of the {counts.rows_in:,} {log} rows landed for ds={ds} was "
            f"rejected ({counts.reasons}){kept}"
        )


def commit_day(lake: Lake, result: IngestResult) -> int:
    """Replace the day's partition with the kept rows, then its quarantine records (after
    `refuse_empty_day`). Returns the table version."""
    refuse_empty_day(lake, result.counts())
    version = lake.replace_partition(result.log, result.valid, {PARTITION: result.ds})
    lake.replace_partition(
        QUARANTINE_TABLE, result.quarantine, {"log": result.log, PARTITION: result.ds}
    )
    return version
