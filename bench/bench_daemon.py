"""From a landed day to a deploy decision under `dagster dev`, nobody clicking: per stage.

Run: .venv/bin/python bench/bench_daemon.py [--requests 100000] [--history 3]
Builds a ranker home whose first `history` days (ending two days ago) are simulated at
`requests` per day and backfilled in-process, starts the webserver and daemon on a free
loopback port, lands yesterday, and waits for `deployed_ranker` of the day before (its labels
needed yesterday's events) to be materialized by the automation sensor. Prints every run since
the landing: when it was queued, started and ended relative to the landing. The reference, in
the same run, is the compute itself: the sum of the runs' own durations, so the rest of the
latency is scheduling (observation minute, 30 s ticks, run start-up, queueing on the pools).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ranker_assets.config import load_config
from ranker_assets.entrypoints.local_dagster import (
    LocalDagster,
    ranker_home_with_history,
    run_assets,
    run_tags,
)
from ranker_assets.logs.simulated import simulate_to_landing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    today = datetime.now(UTC).date()
    first = today - timedelta(days=args.history + 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        env = ranker_home_with_history(root, first, args.history, args.requests, args.seed, {})
        print(
            f"history: {args.history} days x {args.requests:,} requests from {first}, "
            f"simulated and backfilled in {time.perf_counter() - t0:.0f} s"
        )
        cfg = load_config(env["RANKER_CONFIG"])
        landed = today - timedelta(days=1)
        joined = str(landed - timedelta(days=1))
        with LocalDagster(env, root / "dagster_dev.log") as dagster:
            dagster.wait_for_sensors(300)
            t1 = time.perf_counter()
            simulate_to_landing(
                cfg.world, cfg.logging, root / "landing", landed, 1, args.requests, args.seed + 1
            )
            print(
                f"landed {landed} ({args.requests:,} requests) in {time.perf_counter() - t1:.0f} s"
            )
            landed_at = time.time()
            latency = dagster.wait(
                f"deployed_ranker[{joined}]",
                lambda: dagster.materializations("deployed_ranker", [joined]),
                args.timeout,
            )
            runs = [r for r in dagster.runs() if r["creationTime"] >= landed_at]
    print(
        f"\n{'stage':<36}{'partition':<26}{'status':<9}{'queued':>8}{'start':>8}"
        f"{'end':>8}{'secs':>7}"
    )
    compute = 0.0
    for r in runs:
        start, end = r["startTime"] or landed_at, r["endTime"] or landed_at
        compute += end - start
        print(
            f"{','.join(run_assets(r)):<36}{run_tags(r).get('dagster/partition', ''):<26}"
            f"{r['status']:<9}{r['creationTime'] - landed_at:>8.0f}{start - landed_at:>8.0f}"
            f"{end - landed_at:>8.0f}{end - start:>7.0f}"
        )
    print(
        f"\nlanded day -> deploy decision: {latency:.0f} s (target: 300 s); the runs' own "
        f"time: {compute:.0f} s; scheduling and start-up: {latency - compute:.0f} s"
    )


if __name__ == "__main__":
    main()
