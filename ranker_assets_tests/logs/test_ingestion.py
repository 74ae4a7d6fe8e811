from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ranker_assets.logs import landing
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.reading import IngestionError, _parse_jsonl_fast, read_jsonl
from ranker_assets.logs.screening import _coerce, event_log_spec, feature_log_spec, screen
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets_tests.conftest import SEED, START, small_config

DS = "2026-11-02"


def _event(event_id: str, **over: object) -> dict[str, object]:
    row = {
        "event_id": event_id,
        "request_id": 10,
        "pin_id": 20,
        "user_id": 30,
        "event_type": "click",
        "position": 1,
        "timestamp": f"{DS}T08:00:00.000Z",
        "platform": "ios",
    }
    row.update(over)
    return row


def _write_lines(root: Path, lines: list[str]) -> Path:
    folder = landing.day_dir(root, "event_log", DS)
    folder.mkdir(parents=True)
    (folder / "client.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _rules(result) -> dict[int, tuple[str, str | None]]:
    q = result.quarantine.to_pylist()
    return {r["row_number"]: (r["rule"], r["column"]) for r in q}


def test_every_kind_of_bad_event_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    lines = [
        json.dumps(_event("ok-1")),
        '{"event_id": "broken", "request_id": ',  # 2: malformed JSON
        json.dumps(_event("t-1", position="three")),  # 3: wrong type
        json.dumps(_event("t-2", request_id=1.5)),  # 4: non-integral id
        json.dumps({k: v for k, v in _event("m-1").items() if k != "pin_id"}),  # 5: missing id
        json.dumps(_event("n-1", position=-2)),  # 6: negative position
        json.dumps(_event("u-1", event_type="swipe")),  # 7: unknown event type
        json.dumps(_event("w-1", timestamp="2026-11-03T00:00:00.000Z")),  # 8: next day
        json.dumps(_event("w-2", timestamp="2026-11-01T23:59:59.999Z")),  # 9: previous day
        json.dumps(_event("ok-1")),  # 10: duplicate event id: dropped and counted
        json.dumps(_event("ok-2", user_id=None)),  # 11: null id
        "[1, 2, 3]",  # 12: JSON but not an object
        json.dumps(_event("ok-3", timestamp="2026-11-02T23:59:59.999Z")),  # 13: last ms of the day
    ]
    result = ingest_day(_write_lines(tmp_path, lines), event_log_spec(), DS)
    assert _rules(result) == {
        2: ("malformed_json", None),
        3: ("wrong_type", "position"),
        4: ("wrong_type", "request_id"),
        5: ("missing_value", "pin_id"),
        6: ("contract", "position"),
        7: ("contract", "event_type"),
        8: ("outside_partition", "timestamp"),
        9: ("outside_partition", "timestamp"),
        11: ("missing_value", "user_id"),
        12: ("malformed_json", None),
    }
    assert result.valid.column("event_id").to_pylist() == ["ok-1", "ok-3"]
    assert (result.rows_in, result.kept, result.quarantined, result.duplicates) == (13, 2, 10, 1)
    assert result.rows_in == result.kept + result.quarantined + result.duplicates
    raw = {r["row_number"]: r["raw_payload"] for r in result.quarantine.to_pylist()}
    assert raw[2] == lines[1] and json.loads(raw[7])["event_type"] == "swipe"
    detail = {r["row_number"]: r["detail"] for r in result.quarantine.to_pylist()}
    assert "non-negative" in detail[6] and "swipe" not in detail[6]
    assert result.valid.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def test_bad_feature_rows_are_quarantined_and_a_missing_column_fails_the_day_by_name(
    tmp_path: Path, landed, cfg
) -> None:
    root, reports = landed
    table = landing.read_feature_log(root, reports[1].ds)
    df = table.to_pandas().head(40).copy()
    df.loc[3, "keep_rate"] = 0.0
    df.loc[4, "request_ts"] = pd.Timestamp("2020-01-01", tz="UTC")
    df.loc[5, "platform"] = "fax"
    dup = df.iloc[[7]]
    folder = landing.day_dir(tmp_path, "feature_log", reports[1].ds)
    folder.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pandas(pd.concat([df, dup]), preserve_index=False), folder / "a.parquet"
    )
    spec = feature_log_spec(cfg.features)
    result = ingest_day(tmp_path, spec, reports[1].ds)
    rules = [
        (r["source_file"][-9:], r["row_number"], r["rule"], r["column"])
        for r in result.quarantine.to_pylist()
    ]
    assert ("a.parquet", 4, "contract", "keep_rate") in rules
    assert ("a.parquet", 5, "outside_partition", "request_ts") in rules
    assert ("a.parquet", 6, "contract", "platform") in rules
    assert (result.rows_in, result.quarantined, result.duplicates) == (41, 3, 1)
    assert result.kept == 37
    # A file without a declared feature fails the day, naming the file and the column.
    other = df.head(5).drop(columns=["pin_quality_score"])
    other["request_id"] += 10**9
    pq.write_table(pa.Table.from_pandas(other, preserve_index=False), folder / "b.parquet")
    with pytest.raises(
        IngestionError, match=r"b\.parquet: required column\(s\) \['pin_quality_score'\]"
    ):
        ingest_day(tmp_path, spec, reports[1].ds)


def test_simulated_client_faults_are_caught_and_counts_reconcile(tmp_path: Path) -> None:
    cfg = small_config(client_fault_share=0.02)
    simulate_to_landing(cfg.world, cfg.logging, tmp_path, START, 1, 1500, SEED)
    result = ingest_day(tmp_path, event_log_spec(), str(START))
    reasons = result.reasons()
    assert set(reasons) == {"contract(event_type)", "contract(position)", "missing_value(user_id)"}
    assert result.duplicates > 0
    assert 0.01 < result.quarantine_share < 0.03
    assert result.rows_in == result.kept + result.quarantined + result.duplicates


def test_an_empty_or_missing_day_ingests_to_zero_rows(tmp_path: Path) -> None:
    result = ingest_day(tmp_path, event_log_spec(), DS)
    assert (result.rows_in, result.kept, result.quarantined) == (0, 0, 0)


def test_fast_json_path_agrees_with_the_careful_parser(tmp_path: Path) -> None:
    """Clean-but-faulty client files take Arrow's reader; the result must not depend on it."""
    cfg = small_config(client_fault_share=0.02)
    simulate_to_landing(cfg.world, cfg.logging, tmp_path, START, 1, 800, SEED)
    files = landing.day_files(tmp_path, "event_log", str(START))
    assert all(_parse_jsonl_fast(f.read_bytes(), str(f), 1) is not None for f in files)
    spec = event_log_spec()
    fast = screen(read_jsonl(files, fast=True)[0], spec, str(START))
    careful = screen(read_jsonl(files, fast=False)[0], spec, str(START))
    for a, b in zip(fast[:2], careful[:2], strict=True):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert fast[2] == careful[2] > 0
    assert len(fast[1]) > 0  # the faults were seen on both paths


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([2**63 + 5, 2**62 + 1], dtype="uint64"), [None, 2**62 + 1]),
        (
            pd.Series([3.0, 3.5, np.inf, 2.0**63, -(2.0**63), np.nan]),
            [3, None, None, None, -(2**63), None],
        ),
        (
            pd.Series([2**62 + 1, "x", 2**70, 4.0, None], dtype=object),
            [2**62 + 1, None, None, 4, None],
        ),
    ],
)
def test_integers_are_read_exactly_and_out_of_range_ones_are_refused(values, expected) -> None:
    """Typed columns are checked as arrays, mixed JSON values one by one: the same verdicts,
    and ids above 2**53 beside a refused value are never rounded through floating point."""
    cast = _coerce(values, "int64")
    assert [None if pd.isna(v) else int(v) for v in cast] == expected
