"""The training window's checks, on tiny hand-made Delta tables (no Spark)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from ranker_assets.config import FeatureSpec, SequenceSpec
from ranker_assets.infra.lake import Lake
from ranker_assets.training.data import TrainingDataError, load_window, to_tensors
from ranker_assets.training.sequences import take_lists

SPEC = FeatureSpec(dense=("f",), categorical=("pin_id",))
HEADS = ("click", "repin")


def _day(ds: str, clicks: list[int], repins: list[int], impressed: list[bool]) -> pa.Table:
    n = len(clicks)
    return pa.table(
        {
            "f": pa.array([0.5] * n, pa.float32()),
            "pin_id": pa.array(range(n), pa.int64()),
            "click": pa.array(clicks, pa.int8()),
            "repin": pa.array(repins, pa.int8()),
            "weight": pa.array([1.0] * n, pa.float32()),
            "policy": ["production"] * n,
            "request_id": pa.array([1] * n, pa.int64()),
            "impressed": impressed,
            "config": ["c"] * n,
            "ds": [ds] * n,
        }
    )


def test_window_errors_name_the_days_and_heads(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "sampled_dataset",
        _day("2026-11-01", [1, 0], [0, 0], [True, True]),
        {"config": "c", "ds": "2026-11-01"},
    )
    with pytest.raises(
        TrainingDataError, match=r"missing the sampled datasets of \['2026-11-02'\]"
    ):
        load_window(lake, "c", ["2026-11-01", "2026-11-02"], SPEC, HEADS)
    with pytest.raises(TrainingDataError, match=r"no positives for heads \['repin'\]"):
        load_window(lake, "c", ["2026-11-01"], SPEC, HEADS)
    # Only never-shown rows (randomized traffic): nothing to learn from.
    lake.replace_partition(
        "sampled_dataset",
        _day("2026-11-02", [0], [0], [False]),
        {"config": "c", "ds": "2026-11-02"},
    )
    with pytest.raises(TrainingDataError, match=r"2026-11-02..2026-11-02 \('c'\) has no rows"):
        load_window(lake, "c", ["2026-11-02"], SPEC, HEADS)
    with pytest.raises(TrainingDataError, match="sample 'other'"):
        load_window(Lake(str(tmp_path / "empty")), "other", ["2026-11-01"], SPEC, HEADS)


def test_request_ids_repeated_on_another_day_keep_their_own_days_sequence(
    tmp_path: Path,
) -> None:
    """The contract makes request ids unique within a day only: a window of two days that
    both have requests 1 and 2 holds four requests, each with its own day's actions."""
    lake = Lake(str(tmp_path))
    spec = SPEC.model_copy(update={"sequence": SequenceSpec()})
    logged = {"2026-11-01": [[11], [12, 13]], "2026-11-02": [[21, 22, 23], []]}
    when = datetime(2026, 11, 1, tzinfo=UTC)
    for ds, actions in logged.items():
        rows = _day(ds, [1, 0, 1, 0], [1, 0, 0, 1], [True] * 4)
        rows = rows.set_column(
            rows.schema.get_field_index("request_id"), "request_id", pa.array([1, 1, 2, 2])
        ).append_column("request_ts", pa.array([when] * 4, pa.timestamp("us", tz="UTC")))
        lake.replace_partition("sampled_dataset", rows, {"config": "c", "ds": ds})
        sequences = pa.table(
            {
                "request_id": pa.array([1, 2], pa.int64()),
                "action_pin_id": pa.array(actions, pa.list_(pa.int64())),
                "action_type": pa.array([["click"] * len(a) for a in actions]),
                "action_ts": pa.array(
                    [[when] * len(a) for a in actions], pa.list_(pa.timestamp("us", tz="UTC"))
                ),
                "ds": [ds, ds],
            }
        )
        lake.replace_partition("sequence_log", sequences, {"ds": ds})
    table = load_window(lake, "c", list(logged), spec, HEADS)
    attached = {
        (r["ds"], r["request_id"]): r["action_pin_id"]
        for r in table.to_pylist()
        if r["action_pin_id"] is not None
    }
    assert attached == {
        ("2026-11-01", 1): [11],
        ("2026-11-01", 2): [12, 13],
        ("2026-11-02", 1): [21, 22, 23],
        ("2026-11-02", 2): [],
    }
    sequence = to_tensors(table, spec, HEADS, 101, "randomized", 4).sequence
    assert sequence is not None and len(sequence.tokens) == 4  # one sequence per request
    actions = (sequence.tokens[:, :, 0] > 0).sum(1)[sequence.request_index].tolist()
    keys = zip(table["ds"].to_pylist(), table["request_id"].to_pylist(), strict=True)
    assert dict(zip(keys, actions, strict=True)) == {k: len(v) for k, v in attached.items()}

    # A model that reads the newest 2 actions loads only those, and encodes them as it would
    # from the whole log; a request the log lacks, or logged without a history, stays null.
    newest = load_window(lake, "c", list(logged), spec, HEADS, newest=2)
    cut = {k: v[-2:] for k, v in attached.items()}
    assert {
        (r["ds"], r["request_id"]): r["action_pin_id"]
        for r in newest.to_pylist()
        if r["action_pin_id"] is not None
    } == cut
    for name in spec.sequence.columns:
        assert newest[name].null_count == table[name].null_count
    whole, short = (
        to_tensors(t, spec, HEADS, 101, "randomized", 2).sequence for t in (table, newest)
    )
    assert whole is not None and short is not None
    assert torch.equal(whole.tokens, short.tokens) and torch.equal(whole.age_hours, short.age_hours)


def test_list_columns_are_gathered_by_row_and_cut_to_their_newest_entries() -> None:
    times = pa.array([[1, 2, 3], None, [], [4, 5]], pa.list_(pa.int64())).slice(0)
    items = pa.chunked_array([pa.array([[7, 8, 9]]), pa.array([None, [], [10, 11]])])
    rows = np.array([3, -1, 0, 1, 2, 0])  # -1: a row whose request the log lacks
    for newest, expected in (
        (None, [[10, 11], None, [7, 8, 9], None, [], [7, 8, 9]]),
        (2, [[10, 11], None, [8, 9], None, [], [8, 9]]),
    ):
        out = take_lists({"action_ts": times, "action_pin_id": items}, rows, newest)
        assert out["action_pin_id"].to_pylist() == expected
        assert out["action_ts"].to_pylist() == [
            None if v is None else [x - 6 for x in v] for v in expected
        ]
        assert out["action_ts"].type == times.type
