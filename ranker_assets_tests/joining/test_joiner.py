"""The Joiner on small hand-made logs whose answers are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from ranker_assets.config import FeatureSpec, JoinerConfig, SequenceSpec, Vocabulary
from ranker_assets.infra.lake import Lake
from ranker_assets.joining.joiner import LabelsNotReadyError, join_day, run_joiner
from ranker_assets.training.data import attach_sequences

pytestmark = pytest.mark.spark
D, D1 = "2026-11-01", "2026-11-02"
SPEC = FeatureSpec(dense=("f1",), categorical=("pin_id", "pin_topic"))


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _features(rows: list[tuple]) -> pa.Table:
    """rows: (request, pin, request_ts, impressed, policy, propensity, keep_rate)."""
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "request_id": pa.array(cols[0], pa.int64()),
            "pin_id": pa.array(cols[1], pa.int64()),
            "user_id": pa.array([7] * n, pa.int64()),
            "query_pin_id": pa.array([1] * n, pa.int64()),
            "request_ts": pa.array([_ts(t) for t in cols[2]], pa.timestamp("us", tz="UTC")),
            "position": pa.array(range(n), pa.int32()),
            "impressed": pa.array(cols[3]),
            "platform": ["ios"] * n,
            "content_type": ["image"] * n,
            "policy": list(cols[4]),
            "propensity": pa.array(cols[5], pa.float64()),
            "keep_rate": pa.array(cols[6], pa.float64()),
            "log_reason": ["engagement"] * n,
            "f1": pa.array([0.5] * n, pa.float32()),
            "pin_topic": pa.array([3] * n, pa.int64()),
            "ds": [D] * n,
        }
    )


def _events(rows: list[tuple[int, int, str, str]], ds: str) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "event_id": [f"{r}-{p}-{t}" for r, p, t, _ in rows],
            "request_id": pa.array(cols[0], pa.int64()),
            "pin_id": pa.array(cols[1], pa.int64()),
            "user_id": pa.array([7] * n, pa.int64()),
            "event_type": list(cols[2]),
            "position": pa.array([0] * n, pa.int64()),
            "timestamp": pa.array([_ts(t) for t in cols[3]], pa.timestamp("us", tz="UTC")),
            "platform": ["ios"] * n,
            "ds": [ds] * n,
        }
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "feature_log",
        _features(
            [
                # request 1, production, late in the evening
                (1, 100, f"{D}T23:59:00", True, "production", 1.0, 1.0),  # click after midnight
                (1, 101, f"{D}T23:59:00", True, "production", 1.0, 1.0),  # closeup past maturity
                (1, 102, f"{D}T23:59:00", True, "production", 1.0, 0.1),  # sampled impression only
                (
                    1,
                    105,
                    f"{D}T23:59:00",
                    True,
                    "production",
                    1.0,
                    1.0,
                ),  # no impression event: orphan
                # request 2, randomized: everything served is logged, with propensities
                (2, 200, f"{D}T10:00:00", False, "randomized", 0.5, 1.0),
                (2, 201, f"{D}T10:00:00", True, "randomized", 0.5, 1.0),
            ]
        ),
        {"ds": D},
    )
    lake.replace_partition(
        "event_log",
        _events(
            [
                (1, 100, "impression", f"{D}T23:59:01"),
                (1, 101, "impression", f"{D}T23:59:01"),
                (1, 102, "impression", f"{D}T23:59:01"),
                (2, 201, "impression", f"{D}T10:00:01"),
                (2, 201, "repin", f"{D}T10:00:20"),
                (2, 201, "hide", f"{D}T10:00:30"),
                (
                    3,
                    300,
                    "impression",
                    f"{D}T12:00:00",
                ),  # engaged, but the logger lost its features
                (3, 300, "click", f"{D}T12:00:05"),
            ],
            D,
        ),
        {"ds": D},
    )
    lake.replace_partition(
        "event_log",
        _events(
            [
                (1, 100, "click", f"{D1}T00:00:30"),
                (1, 100, "long_click", f"{D1}T00:01:00"),
                (1, 101, "closeup", f"{D1}T23:59:30"),  # 24h29s after its impression
                # engaged without features, but impressed on D+1: an orphan of D+1's join
                (4, 400, "impression", f"{D1}T01:00:00"),
                (4, 400, "click", f"{D1}T01:00:05"),
            ],
            D1,
        ),
        {"ds": D1},
    )
    return lake


@pytest.mark.parametrize("broadcast_events_rows", [0, 1_000], ids=["shuffled", "broadcast"])
def test_join_labels_weights_propensities_and_orphans(
    lake: Lake, spark, broadcast_events_rows: int
) -> None:
    """Both join strategies give the same rows and the same counts, observed in one pass."""
    cfg = JoinerConfig(maturity_hours=24, broadcast_events_rows=broadcast_events_rows)
    day = join_day(
        lake.spark_read(spark, "feature_log", [D]),
        lake.spark_read(spark, "event_log", [D, D1]),
        D,
        SPEC,
        cfg,
        Vocabulary(),
        broadcast_events=broadcast_events_rows > 0,
    )
    plan = day.examples._jdf.queryExecution().executedPlan().toString()
    assert ("BroadcastHashJoin" in plan) == (broadcast_events_rows > 0), plan
    assert ("SortMergeJoin" in plan) == (broadcast_events_rows == 0), plan
    # The events are summarized by hash aggregation: a buffer Spark cannot update in place (a
    # string minimum) turns it into a sort of every event.
    assert "HashAggregate" in plan and "SortAggregate" not in plan, plan
    version, stats = run_joiner(spark, lake, D, SPEC, cfg)
    rows = {r["pin_id"]: r for r in lake.read("training_examples", [D]).to_pylist()}
    labels = ("closeup", "click", "repin", "long_click", "hide")
    got = {pin: tuple(r[lab] for lab in labels) for pin, r in rows.items()}
    assert got == {
        100: (0, 1, 0, 1, 0),  # labels that arrived after midnight count
        101: (0, 0, 0, 0, 0),  # the closeup came after the maturity window
        102: (0, 0, 0, 0, 0),
        105: (0, 0, 0, 0, 0),
        200: (0, 0, 0, 0, 0),
        201: (0, 0, 1, 0, 1),
    }
    assert rows[102]["weight"] == pytest.approx(10.0) and rows[100]["weight"] == 1.0
    assert rows[200]["propensity"] == 0.5 and rows[200]["policy"] == "randomized"
    assert rows[200]["impression_ts"] is None and rows[201]["impression_ts"] is not None
    assert rows[100]["f1"] == pytest.approx(0.5) and rows[100]["pin_topic"] == 3
    assert stats.feature_rows == stats.joined_rows == 6
    assert stats.features_without_impression == 1  # pin 105
    assert stats.engaged_without_features == 1  # pin 300, not pin 400 (impressed on D+1)
    assert stats.positives == {"closeup": 0, "click": 1, "repin": 1, "long_click": 1, "hide": 1}
    # A longer maturity window picks up the late closeup; re-running replaces the day.
    run_joiner(spark, lake, D, SPEC, cfg.model_copy(update={"maturity_hours": 25}))
    again = {r["pin_id"]: r["closeup"] for r in lake.read("training_examples", [D]).to_pylist()}
    assert again[101] == 1 and len(again) == 6
    assert lake.table("training_examples").version() == version + 1


def test_a_day_is_not_joined_before_its_labels_are_mature(lake: Lake, spark) -> None:
    with pytest.raises(LabelsNotReadyError, match=r"event_log\[2026-11-03\]"):
        run_joiner(spark, lake, D1, SPEC, JoinerConfig())


def test_a_finished_logs_last_day_is_joined_once_its_labels_count_as_final(
    lake: Lake, spark, tmp_path: Path
) -> None:
    finished = Lake(str(tmp_path / "finished"))  # day D, and no day after it
    for log in ("feature_log", "event_log"):
        finished.replace_partition(log, lake.read(log, [D]), {"ds": D})
    cfg = JoinerConfig(labels_final_hours=36)
    day_end = datetime(2026, 11, 2, tzinfo=UTC)  # D ends at midnight UTC
    with pytest.raises(LabelsNotReadyError, match=r"wait until 36 h after the day's end"):
        run_joiner(spark, finished, D, SPEC, cfg, now=day_end + timedelta(hours=35))
    _, stats = run_joiner(spark, finished, D, SPEC, cfg, now=day_end + timedelta(hours=37))
    assert stats.labels_from.startswith(f"events of {D} only: {D1} has no events")
    assert stats.joined_rows == 6 and stats.positives["click"] == 0  # its click came after midnight
    # In Los Angeles the same instant is only 29 h after the day's end: not final yet.
    with pytest.raises(LabelsNotReadyError):
        run_joiner(
            spark, finished, D, SPEC, cfg, "America/Los_Angeles", day_end + timedelta(hours=37)
        )


def test_each_example_reaches_its_requests_recent_actions_intact(lake: Lake, spark) -> None:
    """Examples keep no copy of the lists (one per request is in sequence_log); readers attach
    them by request_id, once per request, exactly as logged."""
    spec = SPEC.model_copy(update={"sequence": SequenceSpec(attributes={"topic": "pin_topic"})})
    actions = [[9, 8, 7], []]  # request 1 has a history, request 2 a new user's empty one
    lake.replace_partition(
        "sequence_log",
        pa.table(
            {
                "request_id": pa.array([1, 2], pa.int64()),
                "user_id": pa.array([7, 7], pa.int64()),
                "request_ts": pa.array(
                    [_ts(f"{D}T23:59:00"), _ts(f"{D}T10:00:00")], pa.timestamp("us", tz="UTC")
                ),
                "action_pin_id": pa.array(actions, pa.list_(pa.int64())),
                "action_type": pa.array([["click", "repin", "click"], []]),
                "action_ts": pa.array(
                    [[_ts(f"{D}T0{h}:00:00") for h in (1, 2, 3)], []],
                    pa.list_(pa.timestamp("us", tz="UTC")),
                ),
                "action_topic": pa.array([[1, 2, 3], []], pa.list_(pa.int64())),
                "ds": [D, D],
            }
        ),
        {"ds": D},
    )
    _, stats = run_joiner(spark, lake, D, spec, JoinerConfig())
    examples = lake.read("training_examples", [D])
    assert not set(spec.sequence.columns) & set(examples.column_names)
    rows = attach_sequences(lake, examples, [D], spec).to_pylist()
    by_request = {r["request_id"]: r for r in rows if r["action_pin_id"] is not None}
    assert by_request[1]["action_pin_id"] == [9, 8, 7] and by_request[2]["action_pin_id"] == []
    assert by_request[1]["action_type"] == ["click", "repin", "click"]
    assert by_request[1]["action_ts"][2] == _ts(f"{D}T03:00:00")
    assert by_request[1]["action_topic"] == [1, 2, 3]
    assert len(rows) == 6 and len(by_request) == 2  # lists once per request, nulls elsewhere
    assert stats.rows_without_sequence == 0
    # A request the sequence log lacks joins with no history, and is counted.
    lake.replace_partition("sequence_log", lake.read("sequence_log", [D]).slice(0, 1), {"ds": D})
    _, stats = run_joiner(spark, lake, D, spec, JoinerConfig())
    assert stats.rows_without_sequence == 2  # request 2's two candidates
