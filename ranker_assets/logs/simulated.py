"""The simulator as a log source: serve days in the closeup world, pass them through the hybrid
logger and the world's faulty clients, and land the logs where a serving stack's would arrive.

The users' engagements carry from day to day into their sequences (`world.sequence_history`),
also across calls: after each day the simulator keeps its users' engagement history beside the
logs (`engagement_history/ds=<day>`, simulator state like the ground truth, not a log), and a
call that starts the day after reads it. Without it a day's sequences are drawn alone."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from ranker_assets.config import LoggingConfig, WorldConfig
from ranker_assets.logs.landing import WriteStats, day_dir, write_day, write_parquet_atomic
from ranker_assets.logs.logger import log_day
from ranker_assets.world.holdout import HoldoutScorer, arm_engagement
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.recent_actions import EngagementHistory
from ranker_assets.world.simulator import client_faults, served_days

HISTORY = "engagement_history"


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
    """Simulate `days` consecutive days from `start` and land their logs; the same args (and the
    same engagement history before `start`) give the same bytes."""
    policy = scorer or HeuristicScorer()
    reports = []
    history = (
        _history(landing, start - timedelta(days=1), logging.sequence_length)
        if logging.sequence_length and world.sequence_history
        else None
    )
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
        history,
    ):
        ds = served.ds
        if history is not None and ds > start:  # moved past the day before by now
            _keep_history(landing, ds - timedelta(days=1), history)
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
    if history is not None and reports:
        _keep_history(landing, reports[-1].ds, history)
    return reports


def _history_path(landing: Path, ds: date) -> Path:
    return day_dir(landing, HISTORY, ds) / "engagements.parquet"


def _history(landing: Path, before: date, length: int) -> EngagementHistory:
    """The users' engagements up to the end of `before`, if its day was simulated here."""
    path = _history_path(landing, before)
    if not path.exists():
        return EngagementHistory.empty(length)
    return EngagementHistory.from_table(pq.read_table(path), length)


def _keep_history(landing: Path, ds: date, history: EngagementHistory) -> None:
    write_parquet_atomic(history.table(), _history_path(landing, ds))
