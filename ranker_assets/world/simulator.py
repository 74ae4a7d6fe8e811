"""The closeup world simulator: plays the online side of a closeup surface, day by day.

It serves traffic with a policy and runs the client (faults included); what it served is a
data source that the logging stage (logs/simulated.py) passes through the hybrid logger and
lands as files, exactly where a real serving stack's logs would arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from ranker_assets.config import WorldConfig
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import Scorer
from ranker_assets.world.recent_actions import ACTION_TYPES, EngagementHistory
from ranker_assets.world.traffic import US_PER_S, ServedDay, simulate_day
from ranker_assets.world.vocabulary import EVENT_TYPES

# What a faulty client sends instead of a good event, in equal shares.
FAULTS = ("retry", "unknown_event_type", "negative_position", "missing_user_id")


def client_faults(events: pd.DataFrame, share: float, seed: int, ds: date) -> pd.DataFrame:
    """Corrupt a `share` of client events the way real clients do: retries and broken rows."""
    if share <= 0 or events.empty:
        return events
    rng = np.random.default_rng([seed, 4, ds.toordinal()])
    hit = np.flatnonzero(rng.random(len(events)) < share)
    kind = rng.integers(0, len(FAULTS), len(hit))
    out = events.copy()
    out["user_id"] = out["user_id"].astype(object)
    out.loc[out.index[hit[kind == 1]], "event_type"] = "unknown"
    out.loc[out.index[hit[kind == 2]], "position"] = -1
    out.loc[out.index[hit[kind == 3]], "user_id"] = None
    retries = out.iloc[hit[kind == 0]]
    return pd.concat([out, retries]).sort_values(["timestamp", "event_id"], kind="stable")


def served_days(
    world: WorldConfig,
    start: date,
    days: int,
    requests: int,
    seed: int,
    policy: Scorer,
    randomized_share: float,
    sequence_length: int = 0,
    history: EngagementHistory | None = None,
) -> Iterator[ServedDay]:
    """`days` consecutive days from `start`, each served by `policy` with `randomized_share`
    of its requests in random order (and each request's last `sequence_length` actions): the
    same arguments give the same days.

    With `world.sequence_history`, the users' engagements of each day enter the next days'
    sequences; `history` holds those of the days before `start` (a new one when None) and is
    moved past each day once the next is asked for."""
    pop = build_population(world, seed)
    if history is None and sequence_length and world.sequence_history:
        history = EngagementHistory.empty(sequence_length)
    for i in range(days):
        ds = start + timedelta(days=i)
        state = day_state(world, pop, seed, ds)
        served = simulate_day(
            world,
            pop,
            state,
            seed,
            ds,
            requests,
            policy,
            randomized_share,
            sequence_length,
            history,
        )
        yield served
        if history is not None:
            add_engagements(history, served)


def add_engagements(history: EngagementHistory, day: ServedDay) -> None:
    """Move `history` past `day`: the engagements its users made (closeups, clicks, repins, long
    clicks: the sequence's action types), as received by the day's end."""
    code = np.full(len(EVENT_TYPES), -1, dtype=np.int8)
    code[[EVENT_TYPES.index(a) for a in ACTION_TYPES]] = np.arange(len(ACTION_TYPES))
    action = code[day.event_type]
    engaged = action >= 0
    r, s = day.event_request[engaged], day.event_slot[engaged]
    day_end = datetime(day.ds.year, day.ds.month, day.ds.day, tzinfo=UTC) + timedelta(days=1)
    history.add(
        int(day_end.timestamp()) * US_PER_S,
        day.user_id[r],
        day.event_ts_us[engaged],
        day.pin_id[r, s],
        action[engaged],
        day.features["pin_topic"][r, s],
        day.content_type[r, s],
    )
