"""The user's recent actions: simulated from the hidden state, logged once per request, held to
the sequence contract at ingestion (bad sequences quarantined with their reason)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ranker_assets.logs import landing
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.logger import log_day
from ranker_assets.logs.screening import sequence_log_spec
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.recent_actions import ACTION_TYPES, OBSERVED_SOURCE, SOURCE
from ranker_assets.world.simulator import served_days
from ranker_assets.world.traffic import ServedDay, simulate_day
from ranker_assets.world.vocabulary import EVENT_TYPES
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


def test_later_days_sequences_carry_the_engagements_users_really_made_on_earlier_days() -> None:
    """Days simulated in one run: from the second day on, a request's history holds its user's
    real engagements of the days before (as many as the log says), merged by time with the
    drawn part; the first day, and any day simulated alone, has the drawn part only, with
    the same length distribution."""
    world = CFG.world.model_copy(update={"n_users": 300})  # users come back: histories fill
    days = list(served_days(world, START, 3, 2000, SEED, HeuristicScorer(), 0.05, 100))
    engaged: dict[int, set[tuple[int, str, int]]] = {}
    for day in days[:2]:
        end = int(datetime(day.ds.year, day.ds.month, day.ds.day, tzinfo=UTC).timestamp() + 86400)
        for r, s, t, ts in zip(
            day.event_request, day.event_slot, day.event_type, day.event_ts_us, strict=True
        ):
            if EVENT_TYPES[t] in ACTION_TYPES and ts < end * 10**6:
                key = (int(day.pin_id[r, s]), EVENT_TYPES[t], int(ts))
                engaged.setdefault(int(day.user_id[r]), set()).add(key)
    first, last = days[0].recent, days[2].recent
    assert first is not None and last is not None
    assert set(first.sources()) == {SOURCE}
    assert (last.observed > 0).mean() > 0.5 and set(last.sources()) == {SOURCE, OBSERVED_SOURCE}
    valid = last.valid()
    for i in np.flatnonzero(last.observed > 0)[:200]:
        entries = zip(
            last.pin_id[i][valid[i]], last.action[i][valid[i]], last.ts_us[i][valid[i]], strict=True
        )
        real = {(int(p), ACTION_TYPES[a], int(t)) for p, a, t in entries}
        assert len(real & engaged[int(days[2].user_id[i])]) == last.observed[i]
    # Simulated alone, the same day draws the same requests, with the drawn part only.
    alone = next(served_days(world, days[2].ds, 1, 2000, SEED, HeuristicScorer(), 0.05, 100))
    assert alone.recent is not None and set(alone.recent.sources()) == {SOURCE}
    assert np.array_equal(alone.request_ts_us, days[2].request_ts_us)
    assert abs(alone.recent.count.mean() / last.count.mean() - 1) < 0.02
    # Switched off by the config: every day as if alone.
    off = world.model_copy(update={"sequence_history": False})
    third = list(served_days(off, START, 3, 2000, SEED, HeuristicScorer(), 0.05, 100))[2]
    assert third.recent is not None and np.array_equal(third.recent.count, alone.recent.count)
    mask = alone.recent.valid()
    assert np.array_equal(third.recent.pin_id[mask], alone.recent.pin_id[mask])
    assert days[2].ds == START + timedelta(days=2)


def test_days_landed_one_call_at_a_time_carry_the_history_as_one_run(tmp_path: Path) -> None:
    """The demo lands a day per call: the engagement history kept beside the logs carries the
    users' engagements across calls, so day-by-day landing writes the same sequences as one
    run; a day landed without the day before draws its sequences alone, and says so."""
    world = CFG.world.model_copy(update={"n_users": 300})
    simulate_to_landing(world, CFG.logging, tmp_path / "run", START, 3, 800, SEED)
    for i in range(3):
        day = START + timedelta(days=i)
        simulate_to_landing(world, CFG.logging, tmp_path / "daily", day, 1, 800, SEED)
    simulate_to_landing(
        world, CFG.logging, tmp_path / "alone", START + timedelta(days=2), 1, 800, SEED
    )

    def sequences(root: str, i: int) -> pa.Table:
        ds = START + timedelta(days=i)
        return pq.read_table(landing.day_dir(tmp_path / root, "sequence_log", ds))

    for i in range(3):
        assert sequences("daily", i).equals(sequences("run", i)), i
    assert OBSERVED_SOURCE in sequences("run", 2)["sequence_source"].to_pylist()
    assert set(sequences("alone", 2)["sequence_source"].to_pylist()) == {SOURCE}


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
