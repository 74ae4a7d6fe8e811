"""Does retraining pay in the living world? Refresh cadences over simulated days, at three
levels of catalogue churn.

Run: .venv/bin/python bench/bench_cadence.py [--days 28] [--requests 10000]
     [--churn 0.5,1,2] [--plots docs/results]
Per churn level (a multiple of `world.new_pin_share_per_day`), the same simulated days train a
ranker per cadence (retrain every N days on the last `model.window_days`, or never: frozen);
each day the serving model of every cadence is judged on that day served in uniform random
order (replay AUC against the truth) and by its online engagement when it serves the day.
Frozen is the reference: differences are paired by day, with a 90% bootstrap interval over
days.
Prints markdown for docs/results.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from experiments.arms import Scale
from experiments.studies import cadence_experiment

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.infra.spark_session import get_spark

BOOTSTRAP = 2000  # resamples of the days, for the interval of a mean paired difference
CADENCES = {"frozen": None, "bi-weekly": 14, "weekly": 7, "every 3 days": 3, "daily": 1}


def with_churn(cfg: RankerConfig, multiple: float) -> RankerConfig:
    share = cfg.world.new_pin_share_per_day * multiple
    world = cfg.world.model_copy(update={"new_pin_share_per_day": share})
    return cfg.model_copy(update={"world": world})


def paired_vs_frozen(days: pd.DataFrame, value: str, heads: tuple[str, ...]) -> pd.DataFrame:
    """Mean per-day difference of each cadence against frozen, per head, '+d [lo, hi]'."""
    wide = days.pivot_table(index=["day", "head"], columns="cadence", values=value)
    out = {}
    for name in list(CADENCES)[1:]:
        cells = {}
        for head in heads:
            diff = (wide[name] - wide["frozen"]).xs(head, level="head").dropna().to_numpy()
            rng = np.random.default_rng(0)
            means = diff[rng.integers(0, len(diff), (BOOTSTRAP, len(diff)))].mean(axis=1)
            lo, hi = np.quantile(means, [0.05, 0.95])
            cells[head] = f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        out[name] = cells
    return pd.DataFrame(out).T


def plot(days: pd.DataFrame, heads: tuple[str, ...], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, len(heads), figsize=(4 * len(heads), 3.4), squeeze=False)
    for ax, head in zip(axes[0], heads, strict=True):
        for name in [*CADENCES, "oracle"]:
            sel = days[(days["cadence"] == name) & (days["head"] == head)]
            style = "--" if name == "oracle" else "-"
            ax.plot(sel["day"].str[5:], sel["auc"], label=name, linestyle=style)
        ax.set_title(f"{title}: replay AUC {head}", fontsize=8)
        ax.tick_params(axis="x", rotation=60, labelsize=6)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--churn", default="0.5,1,2", help="multiples of the default churn")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plots", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    base = load_config()
    heads = base.model.heads
    primary = base.gates.primary_head
    args.plots.mkdir(parents=True, exist_ok=True)
    spark = get_spark(base.spark)
    scale = Scale(args.requests, base.model.window_days, args.requests, args.seed)
    print(
        f"{args.days} simulated days of {args.requests:,} requests from {scale.start}; each "
        f"ranker trains on {base.model.window_days} days; judged each day on "
        f"{args.requests // 2:,} requests served at random; seed {args.seed}.\n"
    )
    for multiple in (float(m) for m in args.churn.split(",")):
        cfg = with_churn(base, multiple)
        share = cfg.world.new_pin_share_per_day
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            days = cadence_experiment(spark, cfg, Path(tmp), scale, args.days, CADENCES)
        print(
            f"### Churn x{multiple:g}: {share:.2%} of the catalogue born per day\n\n"
            f"({time.perf_counter() - t:.0f} s)\n"
        )
        mean = days.pivot_table(index="cadence", columns="head", values="auc", aggfunc="mean")
        print(
            "Mean replay AUC per head over the days after the first window:\n\n"
            + mean.reindex([*CADENCES, "oracle"]).round(4).to_markdown()
            + "\n"
        )
        print(
            "Replay AUC minus frozen's, paired by day (mean [90% interval]):\n\n"
            + paired_vs_frozen(days, "auc", heads).to_markdown()
            + "\n"
        )
        engaged = days[days["head"] == primary].pivot_table(
            index="cadence", values="engagement", aggfunc="mean"
        )
        print(
            f"Mean online {primary}s per request when each cadence's ranker serves, and the "
            "paired difference against frozen:\n\n"
            + engaged.reindex(list(CADENCES)).round(4).to_markdown()
            + "\n\n"
            + paired_vs_frozen(days[days["cadence"] != "oracle"], "engagement", heads)[
                [primary]
            ].to_markdown()
            + "\n"
        )
        name = f"cadence_auc_churn{multiple:g}.png"
        plot(days, heads, args.plots / name, f"churn x{multiple:g}")
        print(f"![replay AUC per day and cadence, churn x{multiple:g}]({args.plots.name}/{name})\n")


if __name__ == "__main__":
    main()
