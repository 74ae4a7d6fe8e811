"""Delta tables of the lake: replace a day atomically, read days back, bridge Spark and delta-rs.

delta-rs (`deltalake`) owns every table's transaction log. Spark cannot load the Delta connector
here (its jars come from Maven), so Spark reads a table's committed parquet files directly and
writes new parquet files that delta-rs then commits: the table stays an ordinary Delta table
that any Delta reader (delta-rs, DuckDB, polars, Spark with the connector) can open.

Reads go through the log's file list rather than `DeltaTable.to_pyarrow_table`, whose thread
pool can abort the interpreter at exit (delta-io/delta-rs#2184); this is only correct for tables
without deletion vectors, which `_check_readable` enforces.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction

from ranker_assets.infra.processes import alive, this_host

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PARTITION = "ds"
# Partition values reach Delta predicates as text: only plain names and dates are allowed.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")
_STAGING = "_write-"
_ATTEMPTS = 6


def _checked(key: str, value: str) -> str:
    if not _SAFE_VALUE.fullmatch(str(value)):
        raise ValueError(
            f"partition value for {key} must be letters, digits and _.:+- only: {value!r}"
        )
    return str(value)


def _predicate(partitions: dict[str, str]) -> str:
    return " AND ".join(f"{k} = '{_checked(k, v)}'" for k, v in partitions.items())


def _retrying(what: str, commit: Callable[[], int]) -> int:
    """Run a commit, again when a concurrent writer won the race (creating the table first, or
    committing in between): each commit here replaces or adds whole files, so a retry against
    the newer table version is the same operation."""
    for attempt in range(_ATTEMPTS):
        try:
            return commit()
        except (CommitFailedError, DeltaError) as err:
            transient = isinstance(err, CommitFailedError) or "already exists" in str(err)
            if not transient or attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError(f"unreachable: {what}")


@dataclass(frozen=True)
class Lake:
    """A folder (or object-store prefix) of Delta tables, each partitioned by day (`ds`)."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(
            self.uri(table), storage_options=self.storage_options or None
        )

    def table(self, table: str) -> DeltaTable:
        return DeltaTable(self.uri(table), storage_options=self.storage_options or None)

    def schema(self, table: str) -> pa.Schema:
        return pa.schema(self.table(table).schema().to_arrow())

    def columns(self, table: str) -> list[str]:
        return self.schema(table).names

    def row_count(self, table: str) -> int:
        """Rows in the table's current version, from the Delta log's file statistics."""
        return int(pc.sum(self._add_actions(table)["num_records"]).as_py() or 0)

    def replace_partition(self, table: str, data: pa.Table, partitions: dict[str, str]) -> int:
        """Replace one partition (e.g. a day) with `data` in a single commit; returns the version.

        Rows of other partitions are untouched; `data` outside `partitions` is an error. A crash
        before the commit leaves the table readable at its previous version.
        """
        for key, value in partitions.items():
            col = data.column(key)
            if data.num_rows and not all(v == value for v in col.unique().to_pylist()):
                raise ValueError(f"rows outside {key}={value} in data for {table}")
        predicate = _predicate(partitions)

        def commit() -> int:
            write_deltalake(
                self.uri(table),
                data,
                mode="overwrite",
                predicate=predicate,
                partition_by=list(partitions),
                storage_options=self.storage_options or None,
            )
            return self.table(table).version()

        return _retrying(f"replace {table} {partitions}", commit)

    def append(self, table: str, data: pa.Table) -> int:
        """Append rows in one commit (history tables); returns the version.

        Appends commute, so a commit that lost a race (or a concurrent first write that created
        the table) is simply retried against the newer table.
        """

        def commit() -> int:
            write_deltalake(
                self.uri(table), data, mode="append", storage_options=self.storage_options or None
            )
            return self.table(table).version()

        return _retrying(f"append to {table}", commit)

    def files(self, table: str, days: Sequence[str] | None = None, **eq: str) -> list[str]:
        """URIs of the committed data files of `days` (all days when None)."""
        return self._files(self.table(table), table, days, **eq)

    def _files(
        self, dt: DeltaTable, table: str, days: Sequence[str] | None, **eq: str
    ) -> list[str]:
        """The files of `days` in the snapshot `dt` (one snapshot for schema and files)."""
        _check_readable(dt, table)
        clauses = [_predicate(eq)] if eq else []
        if days is not None:
            if not days:
                return []
            days_clause = " OR ".join(f"{PARTITION} = '{_checked(PARTITION, d)}'" for d in days)
            clauses.append(f"({days_clause})")
        return dt.file_uris(file_pruning_predicate=" AND ".join(clauses) if clauses else None)

    def read(
        self,
        table: str,
        days: Sequence[str] | None = None,
        columns: list[str] | None = None,
        **eq: str,
    ) -> pa.Table:
        """The rows of `days` as one Arrow table, partition columns included."""
        return self._dataset(table, days, **eq).to_table(columns=columns)

    def batches(
        self,
        table: str,
        days: Sequence[str] | None = None,
        columns: list[str] | None = None,
        **eq: str,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of `days` as a stream of Arrow batches: memory stays that of a batch."""
        return self._dataset(table, days, **eq).to_batches(columns=columns)

    def _dataset(self, table: str, days: Sequence[str] | None, **eq: str) -> pads.Dataset:
        """The committed files of `days` as an Arrow dataset (partition columns included)."""
        dt = self.table(table)
        schema = pa.schema(dt.schema().to_arrow())
        files = self._files(dt, table, days, **eq)
        parts = dt.metadata().partition_columns
        fs, base = _filesystem(self.uri(table))
        return pads.dataset(
            [_filesystem(f)[1] for f in files],
            schema=schema,
            format="parquet",
            filesystem=fs,
            partitioning=pads.partitioning(
                pa.schema([schema.field(p) for p in parts]), flavor="hive"
            ),
            partition_base_dir=base,
        )

    def has_data(self, table: str, ds: str, **eq: str) -> bool:
        """Whether `table` exists and has committed files for day `ds` (and the `eq` partitions)."""
        return self.exists(table) and bool(self.files(table, [ds], **eq))

    def _add_actions(self, table: str) -> pa.Table:
        """The log's add actions (path, size, row count, partition values) of every file."""
        return pa.table(self.table(table).get_add_actions(flatten=True))

    def _partition_actions(self, table: str, partitions: dict[str, str]) -> pa.Table:
        """The log's add actions of the files in one partition."""
        actions = self._add_actions(table)
        for key, value in partitions.items():
            actions = actions.filter(pc.equal(actions[f"partition.{key}"], value))
        return actions

    def partition_bytes(self, table: str, **partitions: str) -> int:
        """Bytes of the committed files of one partition (from the Delta log, no listing)."""
        actions = self._partition_actions(table, partitions)
        return int(pc.sum(actions["size_bytes"]).as_py() or 0)

    def rows(self, table: str, days: Sequence[str]) -> int | None:
        """Rows of `days` from the Delta log's file statistics (no data read); unlike
        `row_count`, None when a file has no row count (written by a tool that records no
        statistics), for decisions that an undercount would get wrong."""
        actions = self._add_actions(table)
        actions = actions.filter(pc.is_in(actions[f"partition.{PARTITION}"], pa.array(days)))
        counts = actions["num_records"]
        if counts.null_count:
            return None
        return int(pc.sum(counts).as_py() or 0)

    def partition_fingerprint(self, table: str, **partitions: str) -> str:
        """Identity of a partition's content: a rewrite commits new file names, so it changes."""
        actions = self._partition_actions(table, partitions)
        listing = sorted(
            zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True)
        )
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]

    # -- Spark bridge -------------------------------------------------------------------------

    def spark_read(
        self, spark: SparkSession, table: str, days: Sequence[str], **eq: str
    ) -> DataFrame:
        """A Spark DataFrame over the committed files of `days` (partition columns included)."""
        files = self.files(table, days, **eq)
        if not files:
            raise FileNotFoundError(f"{table} has no data for days {list(days)}")
        return (
            spark.read.option("basePath", self.uri(table))
            .option("recursiveFileLookup", "false")
            .parquet(*files)
        )

    def spark_replace_day(self, df: DataFrame, table: str, ds: str) -> tuple[int, int]:
        """Replace one day of a ds-partitioned table with a Spark DataFrame; see below."""
        return self.spark_replace_partition(df, table, {PARTITION: ds})

    def spark_replace_partition(
        self, df: DataFrame, table: str, partitions: dict[str, str]
    ) -> tuple[int, int]:
        """Spark writes the partition's parquet files, then delta-rs swaps them in in one commit.

        Returns (version, rows). Files from a write that crashes before the commit are never
        referenced by the log, so readers keep seeing the previous version.
        """
        _predicate(partitions)  # validates the values
        folder = "/".join(f"{k}={v}" for k, v in partitions.items())
        self._clean_staging(table, folder)
        writer = f"{this_host()}.{os.getpid()}"
        staging = f"{self.uri(table)}/{folder}/{_STAGING}{writer}.{uuid.uuid4().hex}"
        df.drop(*partitions).write.mode("errorifexists").parquet(staging)
        fs, root = _filesystem(self.uri(table))
        listing = fs.get_file_info(pafs.FileSelector(_filesystem(staging)[1]))
        written = sorted(
            (f for f in listing if f.is_file and f.base_name.endswith(".parquet")),
            key=lambda f: f.path,
        )
        actions, rows = [], 0
        schema = None
        for info in written:
            with fs.open_input_file(info.path) as handle:
                meta = pq.read_metadata(handle)
            schema = schema or meta.schema.to_arrow_schema()
            rows += meta.num_rows
            actions.append(
                AddAction(
                    path=info.path.removeprefix(root.rstrip("/") + "/"),
                    size=info.size,
                    partition_values=dict(partitions),
                    modification_time=int(time.time() * 1000),
                    data_change=True,
                    stats=json.dumps({"numRecords": meta.num_rows}),
                )
            )
        if schema is None:  # Spark wrote no file: the partition is empty; commit that.
            schema = df.drop(*partitions).limit(0).toArrow().schema
        part_fields = [pa.field(k, pa.string()) for k in partitions]
        full_schema = pa.schema([*_nullable(schema), *part_fields])

        def commit() -> int:
            if not self.exists(table):
                DeltaTable.create(
                    self.uri(table),
                    full_schema,
                    partition_by=list(partitions),
                    mode="ignore",  # a concurrent first writer may have created it
                    storage_options=self.storage_options or None,
                )
            self.table(table).create_write_transaction(
                actions,
                mode="overwrite",
                schema=full_schema,
                partition_by=list(partitions),
                partition_filters=[(k, "=", v) for k, v in partitions.items()],
            )
            return self.table(table).version()

        return _retrying(f"commit {table} {partitions}", commit), rows

    def _clean_staging(self, table: str, folder: str) -> list[str]:
        """Delete the staging folders a killed Spark write left in a partition: never referenced
        by the Delta log, and written by a process of this host that no longer exists."""
        fs, root = _filesystem(f"{self.uri(table)}/{folder}")
        if fs.get_file_info(root).type != pafs.FileType.Directory:
            return []
        referenced = set()
        if self.exists(table):
            paths = self._add_actions(table)["path"].to_pylist()
            referenced = {p.split("/")[-2] for p in paths if p.startswith(folder + "/")}
        removed = []
        for info in fs.get_file_info(pafs.FileSelector(root)):
            name = info.base_name
            if not name.startswith(_STAGING) or name in referenced:
                continue
            host, _, rest = name.removeprefix(_STAGING).rpartition(".")[0].rpartition(".")
            pid = int(rest) if rest.isdigit() else 0
            if host == this_host() and not alive(pid):
                if isinstance(fs, pafs.LocalFileSystem):
                    shutil.rmtree(info.path, ignore_errors=True)
                else:
                    fs.delete_dir(info.path)
                removed.append(name)
        return removed


def _nullable(schema: pa.Schema) -> list[pa.Field]:
    return [f.with_nullable(True) for f in schema]


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The Arrow filesystem and path of a local path or a URI (file://, s3://, gs://, abfs://)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).absolute())
    return pafs.FileSystem.from_uri(uri)


def _check_readable(dt: DeltaTable, table: str) -> None:
    features = dt.protocol().reader_features or []
    if "deletionVectors" in features:
        raise NotImplementedError(f"{table} uses deletion vectors; read it with a Delta reader")
