"""Ingestion on Spark keeps every guarantee of in-memory ingestion: on a day that mixes every
kind of bad input, the kept rows, the quarantine records (rule, column, file and line) and the
counts are identical, the day is screened in bounded batches, and a day that must not be
committed is refused before anything is written."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster_pyspark import LazyPySparkResource

from ranker_assets.config import RankerConfig
from ranker_assets.definitions import build_definitions
from ranker_assets.infra.lake import Lake
from ranker_assets.logs import landing
from ranker_assets.logs.ingestion import QUARANTINE_TABLE, ingest_day
from ranker_assets.logs.reading import IngestionError
from ranker_assets.logs.screening import LogSpec, event_log_spec, feature_log_spec, log_specs
from ranker_assets.logs.spark_ingestion import ingest_day_on_spark, jsonl_splits
from ranker_assets.orchestration.resources import LakeResource, LandingResource, MlflowResource

OTHER_DAY = datetime(2031, 1, 1, tzinfo=UTC)
BATCH = 1999  # rows per screened frame: fewer than a day, and not a divisor of anything
FRAME_BYTES = 64 * 2**10  # ... and landed bytes per frame: binds the sequence log's wide rows


@pytest.fixture
def bad_day(landed, tmp_path: Path) -> tuple[Path, str]:
    """A landed day with bad rows of every kind added to each log, beside its clean files."""
    root, reports = landed
    ds = str(reports[1].ds)
    for log in ("feature_log", "event_log", "sequence_log"):
        source = landing.day_dir(root, log, ds)
        if source.exists():
            shutil.copytree(source, landing.day_dir(tmp_path / "landing", log, ds))
    root = tmp_path / "landing"
    (events,) = landing.day_files(root, "event_log", ds)[:1]
    lines = events.read_bytes().splitlines()
    good = json.loads(lines[0])
    other_day = {**good, "event_id": "late", "timestamp": "2031-01-01T00:00:00+00:00"}
    bad = [
        lines[3],  # a duplicate of a landed event
        b"{not json",
        b"",
        json.dumps({**good, "event_id": "u-\xff"}).encode().replace(b"\\u00ff", b"\xff"),
        json.dumps({**good, "event_id": "huge", "position": 2**70}).encode(),
        json.dumps({**good, "event_id": ["e", 1]}).encode(),
        json.dumps({**good, "event_id": "obj", "request_id": {"nested": 1}}).encode(),
        json.dumps(other_day).encode(),
        b"[1, 2]",
        json.dumps({**good, "event_id": "fine-without-newline"}).encode(),
    ]
    (events.parent / "zz-bad.jsonl").write_bytes(b"\n".join(bad))
    for log in ("feature_log", "sequence_log"):
        files = landing.day_files(root, log, ds)
        if not files:
            continue
        table = pq.read_table(files[0])
        extra = table.slice(0, 40)  # duplicates of landed rows, some of them breaking rules
        first = pc.less(pa.array(range(40)), 5)
        late = pc.if_else(
            first, pa.scalar(OTHER_DAY, extra["request_ts"].type), extra["request_ts"]
        )
        extra = extra.set_column(extra.schema.get_field_index("request_ts"), "request_ts", late)
        if log == "feature_log":
            zero = pc.if_else(pc.invert(first), 0.0, extra["propensity"]).cast(pa.float64())
            zero = pc.if_else(pc.less(pa.array(range(40)), 10), zero, extra["propensity"])
            extra = extra.set_column(extra.schema.get_field_index("propensity"), "propensity", zero)
        pq.write_table(extra, files[0].parent / "zz-extra.parquet", row_group_size=16)
    return root, ds


def _sorted_rows(table: pa.Table, columns: list[str], key: list[str]) -> list[dict]:
    return table.select(columns).sort_by([(k, "ascending") for k in key]).to_pylist()


def _quarantine(table: pa.Table) -> list[tuple]:
    rows = table.select(["source_file", "row_number", "rule", "column", "detail", "raw_payload"])
    return sorted(tuple(r.values()) for r in rows.to_pylist())


def test_spark_ingestion_equals_in_memory_ingestion_on_every_kind_of_bad_input(
    bad_day, cfg: RankerConfig, spark, tmp_path: Path
) -> None:
    root, ds = bad_day
    lake = Lake(str(tmp_path / "lake"))
    for spec in log_specs(cfg):
        memory = ingest_day(root, spec, ds)
        counts, _ = ingest_day_on_spark(spark, lake, root, spec, ds, BATCH, FRAME_BYTES)
        assert counts.reconciles and counts.quarantined and counts.duplicates, counts
        for field in ("rows_in", "kept", "quarantined", "duplicates", "files", "bytes_in"):
            assert getattr(counts, field) == getattr(memory, field), field
        assert counts.reasons == memory.reasons()
        # Screened in frames of at most BATCH rows, never the day at once; fewer where rows
        # are wide (100 recent actions each).
        assert counts.batches > 1 and counts.largest_batch <= BATCH, counts
        if spec.name == "sequence_log":
            assert counts.largest_batch < BATCH / 2, counts
        columns = [c for c in memory.valid.column_names if c != "ds"]
        written = lake.read(spec.name, [ds])
        assert sorted(written.column_names) == sorted(memory.valid.column_names)
        key = list(spec.key)
        assert _sorted_rows(written, columns, key) == _sorted_rows(memory.valid, columns, key)
        quarantine = lake.read(QUARANTINE_TABLE, [ds]).filter(pc.field("log") == spec.name)
        assert _quarantine(quarantine) == _quarantine(memory.quarantine)


def _copy_day(landed, tmp_path: Path) -> tuple[Path, str]:
    root, reports = landed
    ds = str(reports[1].ds)
    for log in ("feature_log", "event_log"):
        shutil.copytree(
            landing.day_dir(root, log, ds), landing.day_dir(tmp_path / "landing", log, ds)
        )
    return tmp_path / "landing", ds


def _spec(cfg: RankerConfig, log: str) -> LogSpec:
    return feature_log_spec(cfg.features) if log == "feature_log" else event_log_spec()


@pytest.mark.parametrize("log", ["feature_log", "event_log"])
def test_a_day_spark_must_not_commit_is_refused_before_anything_is_written(
    landed, cfg: RankerConfig, spark, tmp_path: Path, log: str
) -> None:
    root, ds = _copy_day(landed, tmp_path)
    lake = Lake(str(tmp_path / "lake"))
    spec = _spec(cfg, log)
    ingest_day_on_spark(spark, lake, root, spec, ds, BATCH, FRAME_BYTES)
    before = (lake.table(log).version(), lake.table(QUARANTINE_TABLE).version())
    files = landing.day_files(root, log, ds)
    if log == "feature_log":  # a file without a required column fails the day, by file and column
        pq.write_table(pq.read_table(files[0]).drop_columns(["propensity"]), files[0])
        match = rf"{files[0].name}: required column\(s\) \['propensity'\]"
    else:  # every row rejected: the rows ingested before stay
        for path in files:
            path.write_text("not json\n" * 3)
        match = "rows ingested before are kept"
    with pytest.raises(IngestionError, match=match):
        ingest_day_on_spark(spark, lake, root, spec, ds, BATCH, FRAME_BYTES)
    shutil.rmtree(landing.day_dir(root, log, ds))
    with pytest.raises(IngestionError, match=f"no {log} files landed"):
        ingest_day_on_spark(spark, lake, root, spec, ds, BATCH, FRAME_BYTES)
    assert (lake.table(log).version(), lake.table(QUARANTINE_TABLE).version()) == before


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_json_lines_are_cut_into_splits_that_number_every_line(
    tmp_path: Path, trailing_newline: bool
) -> None:
    lines = [json.dumps({"n": i, "pad": "x" * (i % 7)}).encode() for i in range(1, 24)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + (b"\n" if trailing_newline else b""))
    splits = jsonl_splits([path], batch_rows=5, batch_bytes=2**20, block=11)  # blocks end mid-line
    data = path.read_bytes()
    assert [s.first_row for s in splits] == [1, 6, 11, 16, 21]
    assert splits[0].start == 0 and splits[-1].stop == len(data)
    assert all(a.stop == b.start for a, b in pairwise(splits))
    for split in splits:
        first = data[split.start : split.stop].split(b"\n")[0]
        assert json.loads(first)["n"] == split.first_row


def test_dagster_screens_a_day_above_the_memory_cap_on_spark_in_batches(
    landed, cfg: RankerConfig, spark, tmp_path: Path
) -> None:
    root, ds = _copy_day(landed, tmp_path)
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(path=str(root)),
        "pyspark": LazyPySparkResource(spark_config=cfg.spark.session_config()),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
    }
    landed_bytes = sum(p.stat().st_size for p in landing.day_files(root, "feature_log", ds))
    for cap, engine in ((landed_bytes - 1, "spark"), (landed_bytes, "memory")):
        settings = cfg.ingestion.model_copy(update={"memory_max_bytes": cap, "batch_rows": 300})
        defs = build_definitions(cfg.model_copy(update={"ingestion": settings}), resources)
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            partition_key=ds, asset_selection=[dg.AssetKey("feature_log")]
        )
        (mat,) = result.asset_materializations_for_node("feature_log")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["engine"] == engine and meta["reconciles"] is True, meta
        if engine == "spark":  # never the whole day in one frame
            assert meta["screened_batches"] > 1 and meta["largest_batch_rows"] <= 300, meta
        else:
            assert meta["screened_batches"] == 1
            assert meta["largest_batch_rows"] == meta["rows_in"] > 300
