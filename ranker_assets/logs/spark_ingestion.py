"""Ingestion on Spark: a landed day of any size, screened in bounded batches where Spark runs.

The rules are not restated here. Each Spark task reads one split of a landed file (a range of
JSON lines, or some row groups of a parquet file) in frames of at most `batch_rows` rows (and
about `batch_bytes` of landed data) and
screens them with `screening.screen_frame`, the function in-memory ingestion and `check-logs`
use, so the contract, the quarantine reasons and the line numbers are the same. What needs the
whole day happens in Spark: duplicates are removed across batches (the first landed row of a
key is kept, as in memory), the counts are summed, and the kept rows and quarantine records are
written as the day's partitions, only after the day passed `refuse_empty_day`.

The driver never holds the day: it lists files, reads parquet footers and counts newlines to
cut splits, and collects counts. Executors must see the landing zone (a shared path or an object
store), as they must see the lake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from ranker_assets.config import IngestionConfig
from ranker_assets.infra.lake import PARTITION, Lake
from ranker_assets.logs import contract, sequences
from ranker_assets.logs.ingestion import (
    QUARANTINE_TABLE,
    IngestCounts,
    commit_day,
    ingest_day,
    reason_label,
    refuse_empty_day,
)
from ranker_assets.logs.landing import day_files
from ranker_assets.logs.reading import parquet_columns, parquet_frame, parse_jsonl
from ranker_assets.logs.screening import QUARANTINE_SCHEMA, LogSpec, Screened, screen_frame

_ARROW = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "datetime64[us, UTC]": pa.timestamp("us", tz="UTC"),
}
# Quarantine records travel beside kept rows in one Arrow stream, under these names.
_Q = [f for f in QUARANTINE_SCHEMA if f.name not in ("log", "ds")]
_KIND, _FILE, _ROW, _ROWS = "_kind", "_file_index", "_row_number", "_rows"
KEPT, QUARANTINED, BATCH = 0, 1, 2  # what a row of the stream is


@dataclass(frozen=True)
class Split:
    """One Spark task's share of a landed file: bytes [start, stop) of JSON lines, or row groups
    [start, stop) of parquet; `first_row` numbers its first line or row in the file, and
    `frame_rows` is how many rows it screens at once."""

    file_index: int
    path: str
    start: int
    stop: int
    first_row: int
    frame_rows: int


_SPLIT_SCHEMA = (
    "file_index int, path string, start long, stop long, first_row long, frame_rows long"
)


def frame_rows(batch_rows: int, batch_bytes: int, rows: int, nbytes: int) -> int:
    """Rows per frame: at most `batch_rows`, and about `batch_bytes` of landed data (a sequence
    log row of 100 actions weighs as much as ~20 feature rows)."""
    return max(1, min(batch_rows, batch_bytes * max(rows, 1) // max(nbytes, 1)))


def jsonl_splits(
    files: Iterable[Path], batch_rows: int, batch_bytes: int, block: int = 1 << 24
) -> list[Split]:
    """Cut files of JSON lines into frames of whole lines, reading blocks: constant memory."""
    splits = []
    for index, path in enumerate(files):
        size, start, lines, rows = path.stat().st_size, 0, 0, 0
        with path.open("rb") as f:
            offset = 0
            while data := f.read(block):
                ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + offset + 1
                rows = rows or frame_rows(batch_rows, batch_bytes, len(ends), len(data))
                numbers = lines + np.arange(1, len(ends) + 1)  # the line each newline ends
                full = numbers % rows == 0
                for cut, last in zip(ends[full].tolist(), numbers[full].tolist(), strict=True):
                    splits.append(Split(index, str(path), start, cut, last - rows + 1, rows))
                    start = cut
                lines += len(ends)
                offset += len(data)
        if start < size:
            splits.append(Split(index, str(path), start, size, lines - lines % rows + 1, rows))
    return splits


def parquet_splits(
    files: Iterable[Path], batch_rows: int, batch_bytes: int, required: Iterable[str]
) -> tuple[list[Split], dict[str, pa.DataType]]:
    """Group each file's row groups into splits of about one frame, from footers only; also
    returns the union of the files' columns (a file must have every required one)."""
    splits, columns, required = [], {}, list(required)
    for index, path in enumerate(files):
        schema = parquet_columns(path, required)
        columns.update({f.name: f.type for f in schema if f.name not in columns})
        meta = pq.read_metadata(path)
        groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
        size = sum(g.total_byte_size for g in groups)  # uncompressed
        rows_per_frame = frame_rows(batch_rows, batch_bytes, meta.num_rows, size)
        first, row, rows = 0, 1, 0
        for number, group in enumerate(groups):
            rows += group.num_rows
            if rows >= rows_per_frame or number == len(groups) - 1:
                splits.append(Split(index, str(path), first, number + 1, row, rows_per_frame))
                first, row, rows = number + 1, row + rows, 0
    return splits, columns


def kept_schema(spec: LogSpec, landed: dict[str, pa.DataType] | None) -> pa.Schema:
    """The typed columns ingestion keeps: required ones, optional ones with a default, and
    optional ones some landed file has (JSON lines: none, since no JSON log has any)."""
    landed = landed or {}
    fields = [
        pa.field(name, _ARROW[str(col.dtype)])
        for name, col in spec.schema.columns.items()
        if col.required or name in contract.OPTIONAL_DEFAULTS or name in landed
    ]
    if spec.sequence is not None:
        for name, element in sequences.list_types(*spec.sequence).items():
            if element is None:  # an attribute: integers or text, as the files have it
                value = getattr(landed.get(name), "value_type", pa.string())
                element = pa.int64() if pa.types.is_integer(value) else pa.string()
            fields.append(pa.field(name, pa.list_(element)))
    return pa.schema(fields)


def stream_schema(kept: pa.Schema) -> pa.Schema:
    """Kept columns, quarantine columns and bookkeeping, all nullable, in one schema."""
    meta = [(_KIND, pa.int8()), (_FILE, pa.int32()), (_ROW, pa.int64()), (_ROWS, pa.int64())]
    q = [pa.field(f"_q_{f.name}", f.type) for f in _Q]
    return pa.schema([*kept, *q, *meta])


def _frames(
    split: Split, spec: LogSpec, landed: list[str]
) -> Iterator[tuple[pd.DataFrame, list[dict[str, object]]]]:
    """The split's rows as frames of at most `split.frame_rows`, with unparseable lines."""
    if spec.name == "event_log":
        with open(split.path, "rb") as f:
            f.seek(split.start)
            data = f.read(split.stop - split.start)
        yield parse_jsonl(data, split.path, split.first_row, spec.int_columns)
        return
    row = split.first_row
    file = pq.ParquetFile(split.path)
    for batch in file.iter_batches(split.frame_rows, row_groups=range(split.start, split.stop)):
        df = parquet_frame(pa.Table.from_batches([batch]), split.path, row)
        for name in landed:  # a column another file of the day has: null here, as in memory
            if name not in df.columns:
                df[name] = None
        row += batch.num_rows
        yield df, []


def _stream(out: Screened, file_index: int, kept: pa.Schema, schema: pa.Schema) -> pa.Table:
    """One screened frame as rows of the stream: kept rows, quarantine records, one count."""
    n_kept, n_q = out.valid.num_rows, out.quarantine.num_rows
    n = n_kept + n_q + 1
    columns = []
    for field in kept:
        values = (
            out.valid.column(field.name).cast(field.type)
            if field.name in out.valid.column_names
            else pa.nulls(n_kept, field.type)
        )
        columns.append(pa.concat_arrays([*values.chunks, pa.nulls(n - n_kept, field.type)]))
    for f in _Q:
        values = out.quarantine.column(f.name).combine_chunks()
        columns.append(pa.concat_arrays([pa.nulls(n_kept, f.type), values, pa.nulls(1, f.type)]))
    kinds = np.concatenate([np.full(n_kept, KEPT), np.full(n_q, QUARANTINED), [BATCH]])
    columns.append(pa.array(kinds.astype(np.int8)))
    columns.append(pa.array(np.full(n, file_index, np.int32)))
    rows = pa.concat_arrays([pa.array(out.row_numbers, pa.int64()), pa.nulls(n_q + 1, pa.int64())])
    columns.append(rows)
    columns.append(pa.concat_arrays([pa.nulls(n - 1, pa.int64()), pa.array([out.rows_in])]))
    return pa.Table.from_arrays(columns, schema=schema)


def _screen_task(
    batches: Iterator[pa.RecordBatch],
    spec: LogSpec,
    ds: str,
    landed: list[str],
    kept: pa.Schema,
    schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """What one Spark task runs (in a Python worker): screen each frame of its splits."""
    for batch in batches:
        for split in map(lambda s: Split(**s), batch.to_pylist()):
            for df, malformed in _frames(split, spec, landed):
                out = screen_frame(df, malformed, spec, ds, dedupe=False)
                yield from _stream(out, split.file_index, kept, schema).to_batches()


def _first_of_each_key(kept: DataFrame, key: Iterable[str]) -> DataFrame:
    """Duplicates across batches: the row landed first (file order, then line) is kept."""
    order = Window.partitionBy(*key).orderBy(_FILE, _ROW)
    return kept.withColumn("_nth", F.row_number().over(order)).where(F.col("_nth") == 1)


def ingest_day_on_spark(
    spark: SparkSession,
    lake: Lake,
    landing: Path,
    spec: LogSpec,
    ds: str,
    batch_rows: int,
    batch_bytes: int,
) -> tuple[IngestCounts, int]:
    """Screen, count and commit one log's day on Spark; returns its counts and table version.

    Fails before any commit when a file is unreadable or lacks a required column, and when
    `refuse_empty_day` refuses the day."""
    files = day_files(landing, spec.name, ds)
    if spec.name == "event_log":
        splits, landed = jsonl_splits(files, batch_rows, batch_bytes), {}
    else:
        splits, landed = parquet_splits(files, batch_rows, batch_bytes, spec.columns)
    kept = kept_schema(spec, landed)
    schema = stream_schema(kept)
    task = partial(
        _screen_task,
        spec=spec,
        ds=ds,
        landed=[n for n in landed if n in kept.names],
        kept=kept,
        schema=schema,
    )
    rows = [asdict(s) for s in splits]
    source = spark.createDataFrame(
        spark.sparkContext.parallelize(rows, max(len(rows), 1)), _SPLIT_SCHEMA
    )
    stream = source.mapInArrow(task, from_arrow_schema(schema, prefer_timestamp_ntz=False))
    stream = stream.persist(StorageLevel.DISK_ONLY)
    try:
        groups = (  # one pass: rows of each kind, quarantine reasons, batches
            stream.groupBy(_KIND, "_q_rule", "_q_column")
            .agg(F.count("*").alias("n"), F.sum(_ROWS).alias("rows"), F.max(_ROWS).alias("max"))
            .collect()
        )
        totals = {kind: sum(g["n"] for g in groups if g[_KIND] == kind) for kind in (0, 1, 2)}
        batch = [g for g in groups if g[_KIND] == BATCH]
        reasons = {
            reason_label(g["_q_rule"], g["_q_column"]): g["n"]
            for g in groups
            if g[_KIND] == QUARANTINED
        }
        quarantine = stream.where(F.col(_KIND) == QUARANTINED).select(
            *(F.col(f"_q_{f.name}").alias(f.name) for f in _Q)
        )
        valid = stream.where(F.col(_KIND) == KEPT)
        n_valid = totals[KEPT]
        distinct = valid.select(*spec.key).distinct().count() if n_valid else 0
        counts = IngestCounts(
            spec.name,
            ds,
            rows_in=batch[0]["rows"] if batch else 0,
            kept=distinct,
            quarantined=totals[QUARANTINED],
            duplicates=n_valid - distinct,
            bytes_in=sum(p.stat().st_size for p in files),
            files=len(files),
            reasons=dict(sorted(reasons.items())),
            batches=batch[0]["n"] if batch else 0,
            largest_batch=batch[0]["max"] if batch else 0,
        )
        if not counts.reconciles:  # a task lost or repeated rows: commit nothing
            raise RuntimeError(f"{spec.name} {ds}: counts do not reconcile: {counts}")
        refuse_empty_day(lake, counts)
        if distinct < n_valid:
            valid = _first_of_each_key(valid, spec.key)
        version, _ = lake.spark_replace_partition(
            valid.select(*kept.names), spec.name, {PARTITION: ds}
        )
        lake.spark_replace_partition(
            quarantine, QUARANTINE_TABLE, {"log": spec.name, PARTITION: ds}
        )
    finally:
        stream.unpersist()
    return counts, version


def ingest_and_commit(
    settings: IngestionConfig,
    spark: Callable[[], SparkSession],
    lake: Lake,
    landing: Path,
    spec: LogSpec,
    ds: str,
) -> tuple[IngestCounts, int, str]:
    """Ingest and commit one log's day where `ingestion.engine` says (by the day's landed size
    when `auto`); returns the counts, the table version and the engine used."""
    landed = sum(p.stat().st_size for p in day_files(landing, spec.name, ds))
    engine = settings.engine_for(landed)
    if engine == "spark":
        counts, version = ingest_day_on_spark(
            spark(), lake, landing, spec, ds, settings.batch_rows, settings.batch_bytes
        )
        return counts, version, engine
    result = ingest_day(landing, spec, ds)
    return result.counts(), commit_day(lake, result), engine
