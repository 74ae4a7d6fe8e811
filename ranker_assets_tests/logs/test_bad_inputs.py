"""A corpus of bad inputs: each kind is quarantined per row with a reason, or fails the day with
a message naming the file and column before anything is committed. Counts always reconcile, and
a day ingested before is never altered or lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from ranker_assets.config import RankerConfig
from ranker_assets.infra.lake import Lake
from ranker_assets.infra.processes import this_host
from ranker_assets.logs import landing
from ranker_assets.logs.ingestion import IngestResult, commit_day, ingest_day
from ranker_assets.logs.reading import IngestionError
from ranker_assets.logs.screening import event_log_spec, feature_log_spec


@pytest.fixture
def day(landed, cfg: RankerConfig, tmp_path: Path) -> tuple[Path, Lake, str]:
    """One landed day copied for editing, already ingested once (both logs) into a fresh lake."""
    root, reports = landed
    ds = str(reports[1].ds)
    for log in ("feature_log", "event_log"):
        shutil.copytree(
            landing.day_dir(root, log, ds), landing.day_dir(tmp_path / "landing", log, ds)
        )
    lake = Lake(str(tmp_path / "lake"))
    for spec in (feature_log_spec(cfg.features), event_log_spec()):
        commit_day(lake, ingest_day(tmp_path / "landing", spec, ds))
    return tmp_path / "landing", lake, ds


def _snapshot(lake: Lake, log: str, ds: str) -> tuple[int, str]:
    return lake.read(log, [ds]).num_rows, lake.partition_fingerprint(log, ds=ds)


def _reconciles(result: IngestResult) -> bool:
    return result.rows_in == result.kept + result.quarantined + result.duplicates


def _rules(result: IngestResult) -> dict[str, int]:
    return result.reasons()


def _event_file(root: Path, ds: str) -> Path:
    (path,) = landing.day_files(root, "event_log", ds)[:1]
    return path


def _append_lines(root: Path, ds: str, lines: list[bytes]) -> Path:
    path = landing.day_dir(root, "event_log", ds) / "zz-bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _good_event(root: Path, ds: str) -> dict[str, object]:
    return json.loads(_event_file(root, ds).read_text().splitlines()[0])


def test_a_required_column_missing_from_a_file_fails_the_day_by_file_and_column(day, cfg) -> None:
    root, lake, ds = day
    before = _snapshot(lake, "feature_log", ds)
    (path,) = landing.day_files(root, "feature_log", ds)
    pq.write_table(pq.read_table(path).drop_columns(["propensity"]), path)
    with pytest.raises(
        IngestionError, match=rf"{path.name}: required column\(s\) \['propensity'\]"
    ):
        ingest_day(root, feature_log_spec(cfg.features), ds)
    assert _snapshot(lake, "feature_log", ds) == before


def test_a_configured_feature_absent_from_the_logs_is_named(day, cfg) -> None:
    root, _, ds = day
    features = cfg.features.model_copy(update={"dense": (*cfg.features.dense, "no_such_feature")})
    with pytest.raises(IngestionError, match=r"\['no_such_feature'\]"):
        ingest_day(root, feature_log_spec(features), ds)


def test_an_invalid_utf8_byte_quarantines_its_line_only(day) -> None:
    root, _, ds = day
    good = json.dumps({**_good_event(root, ds), "event_id": "utf8-ok"}).encode()
    bad = (
        json.dumps({**_good_event(root, ds), "event_id": "utf8-bad"})
        .encode()
        .replace(b'"utf8-bad"', b'"utf8-\xff"')
    )
    _append_lines(root, ds, [good, bad])
    result = ingest_day(root, event_log_spec(), ds)
    assert _rules(result)["invalid_utf8()"] == 1
    assert "utf8-ok" in result.valid["event_id"].to_pylist()
    assert _reconciles(result)


@pytest.mark.parametrize("position", [2**63, 2**70, -(2**63) - 1])
def test_integers_beyond_int64_are_quarantined_never_wrapped(day, position: int) -> None:
    root, _, ds = day
    line = json.dumps({**_good_event(root, ds), "event_id": "huge", "position": position})
    _append_lines(root, ds, [line.encode()])
    result = ingest_day(root, event_log_spec(), ds)
    assert _rules(result).get("wrong_type(position)") == 1, _rules(result)
    assert "huge" not in result.valid["event_id"].to_pylist()
    assert _reconciles(result)


def test_a_feature_log_position_beyond_int32_is_quarantined_not_wrapped(day, cfg) -> None:
    root, _, ds = day
    (path,) = landing.day_files(root, "feature_log", ds)
    table = pq.read_table(path)
    positions = table["position"].to_numpy().astype("int64")
    positions[0] = 2**32 + 7
    table = table.set_column(
        table.schema.get_field_index("position"), "position", pa.array(positions)
    )
    pq.write_table(table, path)
    features = ingest_day(root, feature_log_spec(cfg.features), ds)
    assert features.reasons()["wrong_type(position)"] == 1
    assert pc.max(features.valid["position"]).as_py() < 2**31
    assert _reconciles(features)


@pytest.mark.parametrize("value", [["e", 1], {"id": "e"}, True, 12.5])
def test_non_scalar_or_mistyped_json_for_a_text_field_is_quarantined(day, value: object) -> None:
    root, _, ds = day
    _append_lines(root, ds, [json.dumps({**_good_event(root, ds), "event_id": value}).encode()])
    result = ingest_day(root, event_log_spec(), ds)
    assert _rules(result)["wrong_type(event_id)"] == 1
    assert all(isinstance(v, str) for v in result.valid["event_id"].to_pylist())
    assert _reconciles(result)


@pytest.mark.parametrize("field", ["request_id", "platform", "timestamp"])
def test_a_json_object_for_any_scalar_field_is_quarantined(day, field: str) -> None:
    root, _, ds = day
    line = json.dumps({**_good_event(root, ds), "event_id": "obj", field: {"nested": 1}})
    _append_lines(root, ds, [line.encode()])
    result = ingest_day(root, event_log_spec(), ds)
    assert _rules(result)[f"wrong_type({field})"] == 1
    assert _reconciles(result)


@pytest.mark.parametrize("how", ["empty folder", "no folder", "every row rejected"])
def test_an_empty_or_missing_landing_day_never_replaces_an_ingested_one(day, how: str) -> None:
    root, lake, ds = day
    before = _snapshot(lake, "event_log", ds)
    folder = landing.day_dir(root, "event_log", ds)
    if how == "every row rejected":
        for path in landing.day_files(root, "event_log", ds):
            path.write_text("not json\n" * 3)
    else:
        shutil.rmtree(folder)
        if how == "empty folder":
            folder.mkdir()
    result = ingest_day(root, event_log_spec(), ds)
    with pytest.raises(IngestionError, match=r"rows ingested before are kept"):
        commit_day(lake, result)
    assert _snapshot(lake, "event_log", ds) == before


def _write_day(args: tuple[str, str, float]) -> int:
    root, ds, start_at = args
    rows = pa.table({"x": pa.array(range(100), pa.int64()), "ds": [ds] * 100})
    time.sleep(max(0.0, start_at - time.time()))  # all writers race for the first commit
    return Lake(root).replace_partition("fresh", rows, {"ds": ds})


def test_concurrent_first_writes_to_a_new_table_all_commit(tmp_path: Path) -> None:
    days = [f"2026-11-{d:02d}" for d in range(1, 7)]
    # Separate processes, as parallel Dagster runs are (spawned: delta-rs's runtime is not
    # fork-safe once this process has used it).
    with ProcessPoolExecutor(max_workers=6, mp_context=get_context("spawn")) as pool:
        start_at = time.time() + 4  # past the workers' start-up
        list(pool.map(_write_day, [(str(tmp_path), d, start_at) for d in days]))
    table = Lake(str(tmp_path)).read("fresh")
    assert sorted(set(table["ds"].to_pylist())) == days and table.num_rows == 600


def test_partition_values_are_validated_before_reaching_a_predicate(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    lake.replace_partition("t", pa.table({"x": [1], "ds": ["2026-11-01"]}), {"ds": "2026-11-01"})
    for bad in ("2026-11-01' OR '1'='1", "a b", ""):
        with pytest.raises(ValueError, match="partition value for ds"):
            lake.files("t", [bad])
        with pytest.raises(ValueError, match="partition value for ds"):
            lake.replace_partition("t", pa.table({"x": [1], "ds": [bad]}), {"ds": bad})


@pytest.mark.spark
def test_staging_leftovers_of_a_killed_spark_write_are_cleaned_by_the_next_write(
    tmp_path: Path, spark
) -> None:
    lake = Lake(str(tmp_path))
    df = spark.range(50).withColumn("ds", F.lit("2026-11-01"))
    lake.spark_replace_day(df, "t", "2026-11-01")
    part = tmp_path / "t" / "ds=2026-11-01"
    committed = {p.name for p in part.iterdir()}
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = int(dead.stdout)
    leftover = part / f"_write-{this_host()}.{dead_pid}.deadbeef"
    in_flight = part / f"_write-{this_host()}.1.cafe"  # pid 1 is alive: a writer in progress
    for folder in (leftover, in_flight):
        folder.mkdir()
        (folder / "part-0.parquet").write_bytes(b"half written")
    lake.spark_replace_day(df, "t", "2026-11-01")
    names = {p.name for p in part.iterdir()}
    assert leftover.name not in names and in_flight.name in names
    assert committed <= names  # the committed version's files are referenced: kept
    assert lake.read("t", ["2026-11-01"]).num_rows == 50


def test_flags_logged_as_0_and_1_are_read_as_booleans_and_other_numbers_are_not(day, cfg) -> None:
    root, _, ds = day
    (path,) = landing.day_files(root, "feature_log", ds)
    table = pq.read_table(path)
    flags = table["impressed"].to_numpy(zero_copy_only=False).astype("int64")
    flags[0] = 2  # not a flag
    table = table.set_column(
        table.schema.get_field_index("impressed"), "impressed", pa.array(flags)
    )
    pq.write_table(table, path)
    result = ingest_day(root, feature_log_spec(cfg.features), ds)
    assert result.reasons() == {"wrong_type(impressed)": 1}
    assert result.kept == table.num_rows - 1 and _reconciles(result)
