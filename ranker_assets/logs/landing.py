"""The landing zone: where logs arrive as files, one folder per day, before ingestion.

Layout (see docs/log_contract.md):
  feature_log/ds=YYYY-MM-DD/*.parquet   logged candidates with features, by request day
  event_log/ds=YYYY-MM-DD/*.jsonl       client events, by the day of the event's timestamp
  sequence_log/ds=YYYY-MM-DD/*.parquet  users' recent actions, once per request, by request day
  ground_truth/ds=YYYY-MM-DD/*.parquet  simulator only; the pipeline never reads it
A day of traffic writes events into the next day's folder too (sessions cross midnight), so
file names carry the traffic day they came from: re-landing a day replaces its own files only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ranker_assets.logs.logger import LoggedDay


@dataclass(frozen=True)
class WriteStats:
    log: str
    rows: int
    bytes: int
    files: tuple[Path, ...]


def day_dir(landing: Path, log: str, ds: date | str) -> Path:
    return Path(landing) / log / f"ds={ds}"


def _atomic(path: Path) -> Path:
    """A temp path beside `path`; renamed over it once fully written, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_parquet_atomic(table: pa.Table, path: Path) -> int:
    tmp = _atomic(path)
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path.stat().st_size


def write_jsonl_atomic(events: pd.DataFrame, path: Path) -> int:
    tmp = _atomic(path)
    events.to_json(tmp, orient="records", lines=True, date_format="iso", date_unit="ms")
    tmp.replace(path)
    return path.stat().st_size


def write_day(landing: Path, ds: date, logged: LoggedDay) -> dict[str, WriteStats]:
    """Land one traffic day's logs; idempotent: the same day always writes the same files."""
    name = f"from-{ds}"
    fpath = day_dir(landing, "feature_log", ds) / f"{name}.parquet"
    gpath = day_dir(landing, "ground_truth", ds) / f"{name}.parquet"
    stats = {
        "feature_log": WriteStats(
            "feature_log",
            logged.feature_log.num_rows,
            write_parquet_atomic(logged.feature_log, fpath),
            (fpath,),
        ),
        "ground_truth": WriteStats(
            "ground_truth",
            logged.ground_truth.num_rows,
            write_parquet_atomic(logged.ground_truth, gpath),
            (gpath,),
        ),
    }
    if logged.sequence_log is not None:
        spath = day_dir(landing, "sequence_log", ds) / f"{name}.parquet"
        stats["sequence_log"] = WriteStats(
            "sequence_log",
            logged.sequence_log.num_rows,
            write_parquet_atomic(logged.sequence_log, spath),
            (spath,),
        )
    events = logged.event_log
    event_day = events["timestamp"].dt.strftime("%Y-%m-%d")
    paths, size = [], 0
    for day_str, part in events.groupby(event_day, sort=True):
        path = day_dir(landing, "event_log", str(day_str)) / f"{name}.jsonl"
        size += write_jsonl_atomic(part, path)
        paths.append(path)
    stats["event_log"] = WriteStats("event_log", len(events), size, tuple(paths))
    return stats


def day_files(landing: Path, log: str, ds: date | str) -> list[Path]:
    """The files landed for one log and day, in a stable order."""
    suffix = ".jsonl" if log == "event_log" else ".parquet"
    folder = day_dir(landing, log, ds)
    return (
        sorted(p for p in folder.glob(f"*{suffix}") if not p.name.startswith("."))
        if folder.exists()
        else []
    )


def day_fingerprints(landing: Path, log: str) -> dict[str, str]:
    """Per landed day of `log`: a fingerprint of its files (names, sizes, modification times),
    so a new, re-landed or late-appended day gets a new version and an unchanged one keeps it."""
    root = Path(landing) / log
    out = {}
    for folder in sorted(root.glob("ds=*")) if root.exists() else []:
        ds = folder.name.removeprefix("ds=")
        files = day_files(landing, log, ds)
        if not files:
            continue
        listing = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        out[ds] = hashlib.sha256(repr(listing).encode()).hexdigest()[:16]
    return out


def read_feature_log(landing: Path, ds: date | str) -> pa.Table:
    """All feature-log files of a day as one Arrow table (empty list: no files landed)."""
    files = day_files(landing, "feature_log", ds)
    if not files:
        raise FileNotFoundError(f"no feature_log files for ds={ds} under {landing}")
    return pa.concat_tables([pq.read_table(p) for p in files], promote_options="permissive")


def read_event_log(landing: Path, ds: date | str) -> pd.DataFrame:
    """All event-log lines of a day, parsed with the contract's types (timestamps as UTC)."""
    files = day_files(landing, "event_log", ds)
    if not files:
        raise FileNotFoundError(f"no event_log files for ds={ds} under {landing}")
    frames = [
        pd.read_json(p, lines=True, dtype={"event_id": str}, convert_dates=["timestamp"])
        for p in files
    ]
    events = pd.concat(frames, ignore_index=True)
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return events
