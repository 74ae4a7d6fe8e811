"""Simulator speed and hybrid-vs-full log volume for one simulated day.

Run: .venv/bin/python bench/bench_simulator.py [--requests 100000]
Prints one table; the `full` logging mode is the reference the hybrid logger is compared with
on the same simulated traffic (same seed, same day). The sequence log (the users' last actions,
once per request) is measured beside the features, and against copying it onto every logged
candidate row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from ranker_assets.config import load_config
from ranker_assets.logs.landing import write_day, write_parquet_atomic
from ranker_assets.logs.logger import log_day
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.traffic import ServedDay, simulate_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cfg = load_config()
    ds = date(2026, 11, 1)
    t0 = time.perf_counter()
    pop = build_population(cfg.world, args.seed)
    state = day_state(cfg.world, pop, args.seed, ds)
    t1 = time.perf_counter()
    served = simulate_day(
        cfg.world,
        pop,
        state,
        args.seed,
        ds,
        args.requests,
        HeuristicScorer(),
        cfg.logging.randomized_share,
        cfg.logging.sequence_length,
    )
    t2 = time.perf_counter()
    n_cand = served.pin_id.size
    print(
        f"day {ds}: {args.requests:,} requests x {served.n_candidates} candidates"
        f" = {n_cand:,} served"
    )
    print(
        f"world build {t1 - t0:.2f}s, traffic simulation {t2 - t1:.2f}s "
        f"({n_cand / (t2 - t1) / 1e6:.2f}M candidates/s)\n"
    )
    print(
        f"{'logging':<8}{'log s':>8}{'land s':>8}{'feature rows':>14}{'feature MB':>12}"
        f"{'bytes/req':>11}{'event rows':>12}{'event MB':>10}{'sequence rows':>15}"
        f"{'sequence MB':>13}{'seq. per row MB':>17}"
    )
    rows = {}
    for mode in ("hybrid", "full"):
        logging = cfg.logging.model_copy(update={"mode": mode})
        a = time.perf_counter()
        logged = log_day(served, logging)
        b = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            written = write_day(Path(tmp), ds, logged)
        c = time.perf_counter()
        f, e, q = written["feature_log"], written["event_log"], written["sequence_log"]
        rows[mode] = f
        # The same sequences copied onto every logged candidate row: what logging them per
        # candidate would land (measured, same Parquet settings; hybrid only: in full mode that
        # is 5M rows of 100-entry lists, tens of GB in memory).
        assert logged.sequence_log is not None
        copied = float("nan")
        if mode == "hybrid":
            per_row = logged.sequence_log.take(
                np.searchsorted(
                    logged.sequence_log["request_id"].to_numpy(),
                    logged.feature_log["request_id"].to_numpy(),
                )
            )
            with tempfile.TemporaryDirectory() as tmp:
                copied = write_parquet_atomic(per_row, Path(tmp) / "per_row.parquet")
        print(
            f"{mode:<8}{b - a:>8.2f}{c - b:>8.2f}{f.rows:>14,}{f.bytes / 1e6:>12.1f}"
            f"{f.bytes / args.requests:>11.0f}{e.rows:>12,}{e.bytes / 1e6:>10.1f}"
            f"{q.rows:>15,}{q.bytes / 1e6:>13.1f}{copied / 1e6:>17.1f}"
        )
    h, full = rows["hybrid"], rows["full"]
    print(
        f"\nhybrid / full feature log: rows {h.rows / full.rows:.3f},"
        f" bytes {h.bytes / full.bytes:.3f}"
    )
    print_catalogue(served)


def print_catalogue(served: ServedDay) -> None:
    """How old the served candidates are, and how engaging by age (docs/world.md)."""
    age = served.features["pin_age_days"]
    print("\nServed candidates by pin age (the living catalogue):\n")
    print(f"{'age':<14}{'share':>8}{'p(click)':>10}{'p(repin)':>10}{'no counts':>11}")
    bands = [(0, 1), (1, 3), (3, 7), (7, 30), (30, 105), (105, np.inf)]
    for lo, hi in bands:
        sel = (age >= lo) & (age < hi)
        print(
            f"{f'[{lo}, {hi}) days':<14}{sel.mean():>8.3f}"
            f"{served.truth['p_click'][sel].mean():>10.4f}"
            f"{served.truth['p_repin'][sel].mean():>10.4f}"
            f"{(served.features['pin_popularity'][sel] == 0).mean():>11.3f}"
        )
    distinct = len(np.unique(served.pin_id))
    print(f"\nmedian age {np.median(age):.0f} days; distinct pins {distinct:,}")


if __name__ == "__main__":
    main()
