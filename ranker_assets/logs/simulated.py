"""The simulator as a log source: serve days in the closeup world, pass them through the hybrid
logger and the world's faulty clients, and land the logs where a serving stack's would arrive."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from ranker_assets.config import LoggingConfig, WorldConfig
from ranker_assets.logs.landing import WriteStats, write_day
from ranker_assets.logs.logger import log_day
from ranker_assets.world.holdout import HoldoutScorer, arm_engagement
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.simulator import client_faults, served_days


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
