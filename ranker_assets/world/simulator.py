"""The closeup world simulator: plays the online side of a closeup surface into a landing zone.

It serves traffic with a policy, runs the client, passes everything through the hybrid logger,
and lands the logs as files, exactly where a real serving stack's logs would arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ranker_assets.config import LoggingConfig, WorldConfig
from ranker_assets.hybrid_logging.landing import WriteStats, write_day
from ranker_assets.hybrid_logging.logger import log_day
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.holdout import HoldoutScorer, arm_engagement
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.traffic import ServedDay, simulate_day

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


@dataclass(frozen=True)
class DayReport:
    ds: date
    requests: int
    served: int
    impressed: int
    log_requests: int
    written: dict[str, WriteStats]
    seconds: float
    # With a holdout experiment: engagements per request of each arm ("champion", "previous").
    arms: dict[str, dict[str, float]] | None = None


def simulate_to_landing(
    world: WorldConfig,
    logging: LoggingConfig,
    landing: Path,
    start: date,
    days: int,
    requests: int,
    seed: int,
    scorer: Scorer | None = None,
) -> list[DayReport]:
    """Simulate `days` consecutive days from `start` and land their logs; same args, same bytes."""
    policy = scorer or HeuristicScorer()
    reports = []
    t0 = time.perf_counter()
    for served in served_days(
        world,
        start,
        days,
        requests,
        seed,
        policy,
        logging.randomized_share,
        logging.sequence_length,
    ):
        ds = served.ds
        logged = log_day(served, logging)
        faulty = client_faults(logged.event_log, world.client_fault_share, seed, ds)
        written = write_day(landing, ds, replace(logged, event_log=faulty))
        arms = (
            arm_engagement(served, policy.arm(served.user_id))
            if isinstance(policy, HoldoutScorer)
            else None
        )
        reports.append(
            DayReport(
                ds,
                requests,
                logged.n_served,
                logged.n_impressed,
                logged.n_log_requests,
                written,
                time.perf_counter() - t0,
                arms,
            )
        )
        t0 = time.perf_counter()
    return reports


def served_days(
    world: WorldConfig,
    start: date,
    days: int,
    requests: int,
    seed: int,
    policy: Scorer,
    randomized_share: float,
    sequence_length: int = 0,
) -> Iterator[ServedDay]:
    """`days` consecutive days from `start`, each served by `policy` with `randomized_share`
    of its requests in random order (and each request's last `sequence_length` actions): the
    same arguments give the same days."""
    pop = build_population(world, seed)
    for i in range(days):
        ds = start + timedelta(days=i)
        state = day_state(world, pop, seed, ds)
        yield simulate_day(
            world, pop, state, seed, ds, requests, policy, randomized_share, sequence_length
        )
