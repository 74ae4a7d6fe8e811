"""Reading landed files into frames with their provenance (file, line or row, raw payload).

JSON lines go through Arrow's fast reader when clean, else line by line, so a malformed line
becomes a quarantine record instead of failing the day; an unreadable parquet file, or one
without a required column, fails the day before anything is written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.json as pa_json
import pyarrow.parquet as pq


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
            malformed.append(_quarantine_row(source, n, "invalid_utf8", None, text, str(err)))
            continue
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as err:
            malformed.append(_quarantine_row(source, n, "malformed_json", None, text, str(err)))
            continue
        if not isinstance(rec, dict):
            malformed.append(
                _quarantine_row(source, n, "malformed_json", None, text, "not a JSON object")
            )
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


def read_jsonl(
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


def _unreadable(path: Path | str, err: Exception) -> IngestionError:
    return IngestionError(f"unreadable parquet file in the landing zone: {path}: {err}")


def parquet_columns(path: Path | str, required: Iterable[str]) -> pa_arrow.Schema:
    """A landed parquet file's schema, read from its footer; a file that cannot be read, or
    lacks a required column, fails the whole day."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa_arrow.ArrowException) as err:
        raise _unreadable(path, err) from err
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


def read_parquet(files: Iterable[Path], required: Iterable[str]) -> pd.DataFrame:
    """Parquet files as one frame; a file without a required column fails the whole day."""
    frames = []
    required = list(required)
    for path in files:
        parquet_columns(path, required)
        try:
            table = pq.read_table(path)
        except (OSError, pa_arrow.ArrowException) as err:
            raise _unreadable(path, err) from err
        frames.append(parquet_frame(table, str(path)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _quarantine_row(
    source: str, n: int, rule: str, column: str | None, raw: str, detail: str
) -> dict:
    return {
        "source_file": source,
        "row_number": n,
        "rule": rule,
        "column": column,
        "detail": detail,
        "raw_payload": raw,
    }
