"""The closeup world simulator: plays the online side of a closeup surface into a landing zone.

It serves traffic with a policy, runs the client, passes everything through the hybrid logger,
and lands the logs as files, exactly where a real serving stack's logs would arrive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from ranker_assets.config import LoggingConfig, WorldConfig
from ranker_assets.hybrid_logging.landing import WriteStats, write_day
from ranker_assets.hybrid_logging.logger import log_day
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.traffic import simulate_day


@dataclass(frozen=True)
class DayReport:
    ds: date
    requests: int
    served: int
    impressed: int
    log_requests: int
    written: dict[str, WriteStats]
    seconds: float


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
    pop = build_population(world, seed)
    policy = scorer or HeuristicScorer()
    reports = []
    for i in range(days):
        t0 = time.perf_counter()
        ds = start + timedelta(days=i)
        served = simulate_day(
            world,
            pop,
            day_state(world, pop, seed, ds),
            seed,
            ds,
            requests,
            policy,
            logging.randomized_share,
        )
        logged = log_day(served, logging)
        written = write_day(landing, ds, logged)
        reports.append(
            DayReport(
                ds,
                requests,
                logged.n_served,
                logged.n_impressed,
                logged.n_log_requests,
                written,
                time.perf_counter() - t0,
            )
        )
    return reports
