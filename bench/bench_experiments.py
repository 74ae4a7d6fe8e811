"""The article's claims, measured against the simulator's ground truth, arms side by side.

Run: .venv/bin/python bench/bench_experiments.py [--requests 20000] [--days 5]
     [--eval-requests 20000]
Prints markdown (tables and plot links) for docs/results.md; `--quick` runs small.
Every arm uses the same seeds and days; models are judged on the day after their window,
served in uniform random order (free of position bias), against the oracle's AUC. How good
the ranker is as data grows: bench/bench_learning_curve.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from experiments.arms import Scale
from experiments.studies import (
    calibration_experiment,
    evaluation_bias,
    logging_experiment,
    sampling_experiment,
    teacher_experiment,
)

from ranker_assets.config import load_config
from ranker_assets.infra.spark_session import get_spark


def table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.round(digits).to_markdown()


def by_head(quality: pd.DataFrame, value: str = "auc") -> pd.DataFrame:
    return quality.pivot(index="model", columns="head", values=value)


def section(title: str, started: float) -> None:
    print(f"\n### {title}\n\n({time.perf_counter() - started:.0f} s)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--eval-requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small scale, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.days, args.eval_requests = 4000, 3, 6000
    cfg = load_config()
    scale = Scale(args.requests, args.days, args.eval_requests, args.seed)
    spark = get_spark(cfg.spark)
    print(
        f"Scale: {args.requests:,} requests/day, a {args.days}-day window, judged on "
        f"{args.eval_requests:,} fully randomized requests of the next day; seed {args.seed}."
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        t = time.perf_counter()
        volume, quality = logging_experiment(spark, cfg, root / "logging", scale)
        section("1. Hybrid vs full logging", t)
        print(table(volume.set_index("logging"), 2) + "\n")
        print("Replay AUC per head:\n\n" + table(by_head(quality)) + "\n")
        print(
            "Predicted / actual engagement on the replay day (1.0 = calibrated):\n\n"
            + table(by_head(quality, "pred_over_actual"))
            + "\n"
        )

        t = time.perf_counter()
        configs = sorted(p.stem for p in cfg.sampling.configs_path.glob("*.yaml"))
        quality, engagement, outcomes = sampling_experiment(
            spark, cfg, root / "sampling", scale, configs
        )
        section(f"3. Sampling configs ({', '.join(configs)}): offline and a simulated A/B", t)
        print("Replay AUC per head:\n\n" + table(by_head(quality)) + "\n")
        base = engagement.xs("heuristic", level="policy")
        lift = {p: (engagement.xs(p, level="policy") / base - 1) * 100 for p in configs}
        print(
            f"Online engagement when each serves all of the next day ({args.eval_requests:,} "
            "requests, no randomized traffic), % vs the heuristic, per action and content "
            "type:\n"
        )
        for p, frame in lift.items():
            print(f"{p}:\n\n{table(frame, 1)}\n")

        t = time.perf_counter()
        bias = evaluation_bias(cfg, scale, outcomes[cfg.sampling.default], args.eval_requests)
        section("2. Randomized traffic: evaluating on production vs randomized rows", t)
        print(
            f"The {cfg.sampling.default} ranker's AUC measured on a day's production rows "
            "and on its randomized rows (5% randomized traffic), against its AUC on a fully "
            "randomized day (truth):\n\n" + table(bias.set_index(["measured_on", "head"]))
        )
        print(
            "\nThe off-policy estimators' error against traffic and the randomized share: "
            "`bench/bench_off_policy.py` below.\n"
        )

        t = time.perf_counter()
        calibration = calibration_experiment(spark, cfg, root / "calibration", scale)
        section("2. Randomized traffic: calibration with and without randomized rows", t)
        for traffic, part in calibration.groupby("traffic", sort=False):
            served = "at random" if traffic == "randomized" else "by production (the heuristic)"
            for value, what in (
                ("pred_over_true", "predicted / true expected engagement (1.0 = calibrated)"),
                ("relative_ece", "binned calibration error against the truth, / the rate"),
            ):
                wide = part.pivot(index="model", columns="head", values=value)
                print(f"On a day served {served}, {what}:\n\n{table(wide)}\n")

        t = time.perf_counter()
        quality = teacher_experiment(spark, cfg, root / "teacher", scale)
        section("5. Warm start, distillation and a bad teacher", t)
        print(
            "Replay AUC per head of the last day's ranker, trained on the last "
            f"{args.days - 1} days:\n\n" + table(by_head(quality)) + "\n"
        )

    spark.stop()


if __name__ == "__main__":
    main()
