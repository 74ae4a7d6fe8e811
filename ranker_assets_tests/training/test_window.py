"""The training window's checks, on tiny hand-made Delta tables (no Spark)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ranker_assets.config import FeatureSpec
from ranker_assets.infra.lake import Lake
from ranker_assets.training.data import TrainingDataError, load_window

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
