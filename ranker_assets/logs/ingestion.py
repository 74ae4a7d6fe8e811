"""Ingestion: a day of landed logs -> contract-valid rows, a quarantine with reasons, duplicates.

Nothing is dropped silently. Every landed row ends in exactly one of three places:
- kept: it passes the log contract and the day's time window;
- quarantined: with the rule and column it broke, and its raw payload, for inspection/replay;
- dropped as a duplicate of a kept row (same event id, or same (request, pin)), and counted.
rows_in == kept + quarantined + duplicates, always.

The rules live in screening.py, the readers in reading.py; this module counts, reconciles and
commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa_arrow

from ranker_assets.infra.lake import PARTITION, Lake
from ranker_assets.logs.landing import day_files
from ranker_assets.logs.reading import IngestionError, read_jsonl, read_parquet
from ranker_assets.logs.screening import LogSpec, screen_frame


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


def ingest_day(landing: Path, spec: LogSpec, ds: str | date) -> IngestResult:
    """Ingest every landed file of one log and day, in memory (small days, `check-logs`)."""
    ds = str(ds)
    files = day_files(landing, spec.name, ds)
    bytes_in = sum(p.stat().st_size for p in files)
    malformed: list[dict[str, object]] = []
    if spec.name == "event_log":
        df, malformed = read_jsonl(files, int_columns=spec.int_columns)
    else:
        df = read_parquet(files, spec.columns)
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
