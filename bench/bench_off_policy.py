"""Off-policy estimates of a ranking's value on randomized traffic, against the true value.

Run: .venv/bin/python bench/bench_off_policy.py [--volumes 100000,1000000] [--days 7]
For each daily traffic volume and randomized share, simulates `days` days of that share's
randomized requests (every served candidate logged with its propensity, as the hybrid logger
does) and estimates what the heuristic policy's top 3 earns per request: IPS, SNIPS and the
position-based PBM, 90% bootstrap intervals over requests, pooled over the days. The reference
is the simulator's true value of the same ranking on the same requests.

Requests are independent given the day, so the randomized slice of a day of V requests at
share s is simulated as s x V requests all served at random: the same distribution without
simulating the production requests the estimate never reads.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np
import pandas as pd

from ranker_assets.config import load_config
from ranker_assets.evaluation.off_policy import slate_estimates
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.simulator import served_days
from ranker_assets.world.truth import candidates_frame, slate_truth

HEADS = ("closeup", "click", "repin", "long_click")
TARGET = 0.05  # the bar: within 5% of the true value
KEEP = ["request_id", "position", "propensity", *HEADS, "p_examine", "p_hide"]


def randomized_log(per_day: int, days: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """`per_day` randomized requests on each of `days` days, and the heuristic's scores of
    their candidates."""
    world = load_config().world
    frames, scores = [], []
    start = date(2026, 11, 1)
    for served in served_days(world, start, days, per_day, seed, HeuristicScorer(), 1.0):
        frame = candidates_frame(served)
        frames.append(frame[KEEP + [f"p_{h}" for h in HEADS]])
        scores.append(HeuristicScorer().score(served.features).ravel())
    return pd.concat(frames, ignore_index=True), np.concatenate(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", default="100000,300000,1000000,3000000")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--shares", default="0.005,0.02,0.05")
    parser.add_argument(
        "--max-randomized",
        type=int,
        default=450_000,
        help="skip cells with more randomized requests (memory)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    world = load_config().world
    t0 = time.perf_counter()
    rows = []
    # Cells with the same randomized requests per day (1M x 0.5% = 100k x 5%) share one log.
    done: dict[int, tuple[pd.DataFrame, dict[str, float]]] = {}
    for volume in (int(v) for v in args.volumes.split(",")):
        for share in (float(s) for s in args.shares.split(",")):
            per_day = round(share * volume)
            if per_day * args.days > args.max_randomized:
                continue
            if per_day not in done:
                logged, scores = randomized_log(per_day, args.days, args.seed)
                done[per_day] = (
                    slate_estimates(logged, scores, HEADS, 3, 200, 0.9, args.seed),
                    slate_truth(logged, scores, HEADS, 3, world),
                )
                del logged, scores
            est, truth = done[per_day]
            for _, e in est.iterrows():
                t = truth[e["head"]]
                rows.append(
                    {
                        "requests/day": volume,
                        "share": share,
                        "randomized": int(e["requests"]),
                        "head": e["head"],
                        "estimator": e["estimator"],
                        "rows": int(e["matched_rows"]),
                        "truth": t,
                        "estimate": e["value"],
                        "error": e["value"] / t - 1,
                        "90% ci ±": (e["ci_high"] - e["ci_low"]) / 2 / t,
                        "covered": e["ci_low"] <= t <= e["ci_high"],
                    }
                )
    table = pd.DataFrame(rows)
    print(
        f"heuristic top-3 value per randomized request, {args.days} days pooled, per daily "
        f"volume and randomized share ({time.perf_counter() - t0:.0f} s); error and interval "
        "half-width relative to the truth\n"
    )
    shown = table[table["estimator"] != "ips"]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    worst = (
        shown.assign(abs_error=shown["error"].abs().fillna(np.inf))
        .groupby(["requests/day", "share", "estimator"])[["abs_error", "90% ci ±"]]
        .max()
    )
    worst["within 5%"] = worst["abs_error"] <= TARGET
    worst["interval within 5%"] = worst["90% ci ±"] <= TARGET
    print("\nworst head per cell: largest |error| and 90% interval half-width\n")
    print(worst.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
