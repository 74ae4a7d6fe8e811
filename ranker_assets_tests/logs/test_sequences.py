"""The user's recent actions: simulated from the hidden state, logged once per request, held to
the sequence contract at ingestion (bad sequences quarantined with their reason)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ranker_assets.logs import landing
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.logger import log_day
from ranker_assets.logs.screening import sequence_log_spec
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.traffic import ServedDay, simulate_day
from ranker_assets_tests.conftest import SEED, START, small_config

DS = str(START)
CFG = small_config()


@pytest.fixture(scope="module")
def served() -> ServedDay:
    pop = build_population(CFG.world, SEED)
    state = day_state(CFG.world, pop, SEED, START)
    return simulate_day(CFG.world, pop, state, SEED, START, 3000, HeuristicScorer(), 0.05, 100)


def test_recent_actions_precede_the_request_in_order_and_follow_todays_interest(
    served: ServedDay,
) -> None:
    recent = served.recent
    assert recent is not None
    valid = recent.valid()
    assert recent.count.max() == 100 and recent.count.min() < 100  # light users: shorter
    both = valid[:, 1:] & valid[:, :-1]
    assert (np.diff(recent.ts_us, axis=1)[both] >= 0).all()  # oldest first
    assert (recent.ts_us[valid] < np.repeat(served.request_ts_us, recent.count)).all()
    # Actions of the last day follow today's true interest, older ones the week-old profile:
    # the likelihood of the recent topics is higher under today's interest than the stale one.
    pop = build_population(CFG.world, SEED)
    state = day_state(CFG.world, pop, SEED, START)
    day_old = (served.request_ts_us[:, None] - recent.ts_us) < 86_400 * 10**6
    rows, cols = np.nonzero(valid & day_old)
    user, topic = served.user_id[rows], recent.topic[rows, cols]
    today = np.log(state.user_interest[user, topic]).mean()
    stale = np.log(state.stale_interest[user, topic]).mean()
    assert today > stale


def test_the_sequence_is_logged_once_per_logged_request_never_per_candidate(
    served: ServedDay,
) -> None:
    logged = log_day(served, CFG.logging)
    seq, feats = logged.sequence_log, logged.feature_log
    assert seq is not None
    requests = np.unique(feats["request_id"].to_numpy())
    assert np.array_equal(np.sort(seq["request_id"].to_numpy()), requests)
    # Each row carries its request's whole history, as the world drew it.
    row = {r: i for i, r in enumerate(served.request_id)}
    first = seq.slice(0, 1).to_pylist()[0]
    i = row[first["request_id"]]
    k = served.recent.count[i]
    assert first["action_pin_id"] == served.recent.pin_id[i, 100 - k :].tolist()
    assert first["sequence_source"] == "simulated_from_hidden_state"
    # Stored once per request: the feature log's candidate rows carry none of it.
    assert seq.num_rows < feats.num_rows
    assert not {c for c in feats.column_names if c.startswith("action_")}


def _land(root: Path, table: pa.Table) -> Path:
    folder = landing.day_dir(root, "sequence_log", DS)
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "bad.parquet")
    return root


def _row(request_id: int, **lists: object) -> dict[str, object]:
    noon = datetime(2026, 11, 1, 12, tzinfo=UTC)
    row: dict[str, object] = {
        "request_id": request_id,
        "user_id": 7,
        "request_ts": noon,
        "action_pin_id": [3, 4],
        "action_type": ["click", "repin"],
        "action_ts": [datetime(2026, 11, 1, 9, tzinfo=UTC), datetime(2026, 11, 1, 11, tzinfo=UTC)],
        "action_topic": [1, 2],
        "action_content_type": ["image", "video"],
    }
    row.update(lists)
    return row


def test_every_kind_of_bad_sequence_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    later = datetime(2026, 11, 1, 13, tzinfo=UTC)
    early = datetime(2026, 11, 1, 8, tzinfo=UTC)
    rows = [
        _row(1),
        _row(2, action_pin_id=[3, -4]),  # a negative item id
        _row(3, action_type=["click", "swipe"]),  # not an engagement of the vocabulary
        _row(4, action_ts=[later, later]),  # after the request: would leak the label
        _row(5, action_ts=[later.replace(hour=11), early]),  # not oldest first
        _row(6, action_topic=[1]),  # lists of different lengths
        _row(7, action_pin_id=list(range(101)), action_type=["click"] * 101),  # too long
        _row(8, action_pin_id=None),  # no list at all
        _row(9, action_pin_id=[], action_type=[], action_ts=[], action_topic=[]),  # new user
        _row(1),  # a duplicate request: dropped and counted
    ]
    rows[6]["action_ts"] = [early] * 101
    rows[6]["action_topic"] = [1] * 101
    rows[6]["action_content_type"] = ["image"] * 101
    rows[8]["action_content_type"] = []
    spec = sequence_log_spec(CFG.features.sequence, CFG.vocabulary)
    result = ingest_day(_land(tmp_path, pa.Table.from_pylist(rows)), spec, DS)
    found = {r["row_number"]: (r["rule"], r["column"]) for r in result.quarantine.to_pylist()}
    assert found == {
        2: ("contract", "action_pin_id"),
        3: ("contract", "action_type"),
        4: ("sequence_after_request", "action_ts"),
        5: ("sequence_unsorted", "action_ts"),
        6: ("sequence_length_mismatch", "action_topic"),
        7: ("sequence_too_long", "action_pin_id"),
        8: ("missing_value", "action_pin_id"),
    }
    assert (result.rows_in, result.kept, result.quarantined, result.duplicates) == (10, 2, 7, 1)
    kept = result.valid.to_pylist()
    assert [r["request_id"] for r in kept] == [1, 9] and kept[1]["action_pin_id"] == []
    assert result.valid.schema.field("action_ts").type == pa.list_(pa.timestamp("us", tz="UTC"))


def test_a_sequence_column_of_the_wrong_type_quarantines_every_row_naming_it(
    tmp_path: Path,
) -> None:
    rows = [_row(1, action_pin_id=["a", "b"]), _row(2, action_pin_id=["c"], action_type=["x"])]
    spec = sequence_log_spec(CFG.features.sequence, CFG.vocabulary)
    result = ingest_day(_land(tmp_path, pa.Table.from_pylist(rows)), spec, DS)
    assert result.kept == 0
    assert result.reasons() == {"wrong_type(action_pin_id)": 2}
    assert "int64" in result.quarantine["detail"][0].as_py()
