"""Off-policy estimates of a ranking's value on randomized traffic, against the true value.

Run: .venv/bin/python bench/bench_off_policy.py [--requests 100000] [--days 7]
For each randomized share, simulates `days` days at `requests` per day, keeps the randomized
requests (every served candidate logged with its propensity, as the hybrid logger does) and
estimates what the heuristic policy's top 3 earns per request (IPS, SNIPS and the
position-based PBM, 90% bootstrap intervals over requests), pooled over the days. The
reference is the simulator's true value of the same ranking on the same requests.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

import pandas as pd

from ranker_assets.config import load_config
from ranker_assets.evaluation.off_policy import slate_estimates
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.traffic import simulate_day
from ranker_assets.world.truth import candidates_frame, slate_truth

HEADS = ("closeup", "click", "repin", "long_click")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--shares", default="0.005,0.02,0.05")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    world = load_config().world
    pop = build_population(world, args.seed)
    t0 = time.perf_counter()
    rows = []
    for share in (float(s) for s in args.shares.split(",")):
        frames = []
        for i in range(args.days):
            ds = date(2026, 11, 1) + timedelta(days=i)
            state = day_state(world, pop, args.seed, ds)
            served = simulate_day(
                world, pop, state, args.seed, ds, args.requests, HeuristicScorer(), share
            )
            frame = candidates_frame(served)
            frames.append(frame[frame["propensity"] < 1.0])  # the randomized requests
        logged = pd.concat(frames, ignore_index=True)
        scores = HeuristicScorer().score({c: logged[c].to_numpy() for c in logged.columns})
        est = slate_estimates(logged, scores, HEADS, 3, 200, 0.9, args.seed)
        truth = slate_truth(logged, scores, HEADS, 3, world)
        for head in HEADS:
            e = est[est["head"] == head].set_index("estimator")
            row = {
                "share": share,
                "head": head,
                "requests": int(e.loc["snips", "requests"]),
                "truth": truth[head],
                "ips": e.loc["ips", "value"],
            }
            for name in ("snips", "pbm"):
                low, high = e.loc[name, "ci_low"], e.loc[name, "ci_high"]
                row |= {
                    f"{name}_rows": int(e.loc[name, "matched_rows"]),
                    name: e.loc[name, "value"],
                    f"{name}_90ci": f"[{low:.4f}, {high:.4f}]",
                    f"{name}_error": e.loc[name, "value"] / truth[head] - 1,
                    f"{name}_covered": low <= truth[head] <= high,
                }
            rows.append(row)
    table = pd.DataFrame(rows)
    print(
        f"heuristic top-3 value per randomized request, {args.days} days x "
        f"{args.requests:,} requests/day ({time.perf_counter() - t0:.0f} s)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
