"""Model options against training time and next-day AUC, on the windows of a demo's lake.

Run (after `make demo`, whose lake it reads): .venv/bin/python bench/bench_model_options.py
     [--home .ranker] [--seeds 0 1] [--config balanced] [--window-days N]
     [--arm shipped] [--arm batch_size=512] [--arm early_stopping_patience=1,epochs=10] ...
An arm is the shipped `model:` config with comma-separated `key=value` overrides (YAML values;
`shipped` is none). Each arm trains on every window of the model's length (or --window-days)
whose next day is joined, once per seed, and is scored on that next day's impressed rows (rows
it never trained on). Prints mean AUC per head, epochs and seconds of training per arm, and
each arm minus the first, paired by window and seed (mean [90% interval]).
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ranker_assets.config import ModelConfig, load_config
from ranker_assets.evaluation.rows import EXAMPLES, load_evaluation_rows
from ranker_assets.infra.lake import Lake
from ranker_assets.metrics import weighted_auc
from ranker_assets.sampling.run import SAMPLED_TABLE
from ranker_assets.training.data import load_window
from ranker_assets.training.pipeline import ranker_tensors
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.train import train_ranker


def windows(lake: Lake, config: str, length: int) -> list[list[str]]:
    """Every run of `length` sampled days whose next day has training examples."""
    days = sorted(
        {str(d) for d in lake.read(SAMPLED_TABLE, columns=["ds"], config=config)["ds"].to_pylist()}
    )
    out = []
    for first in days:
        span = [str(date.fromisoformat(first) + timedelta(days=i)) for i in range(length)]
        after = str(date.fromisoformat(span[-1]) + timedelta(days=1))
        if all(d in days for d in span) and lake.has_data(EXAMPLES, after):
            out.append(span)
    return out


def arm(shipped: ModelConfig, overrides: str) -> ModelConfig:
    """The shipped model config with `key=value,...` overrides, validated like the config."""
    if overrides == "shipped":
        return shipped
    update = {}
    for pair in overrides.split(","):
        key, _, value = pair.partition("=")
        update[key.strip()] = yaml.safe_load(value) if value.strip().lower() != "none" else None
    return ModelConfig.model_validate({**shipped.model_dump(), **update})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path(".ranker"))
    parser.add_argument("--arm", action="append", dest="arms")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--config", default="balanced")
    parser.add_argument("--window-days", type=int, help="default: the model's window_days")
    args = parser.parse_args()
    cfg = load_config()
    names = args.arms or ["shipped", "early_stopping_patience=1"]
    arms = {name: arm(cfg.model, name) for name in names}
    lake = Lake(str(args.home / "lake"))
    length = args.window_days or cfg.model.window_days
    spans = windows(lake, args.config, length)
    heads = cfg.model.heads
    print(f"{len(spans)} windows of {length} days x seeds {args.seeds}")
    aucs: dict[str, np.ndarray] = {}
    summary: dict[str, list[float]] = {}
    for name, model_cfg in arms.items():
        rows, spent, epochs = [], 0.0, []
        for span in spans:
            table = load_window(lake, args.config, span, cfg.features, heads)
            after = str(date.fromisoformat(span[-1]) + timedelta(days=1))
            scored = load_evaluation_rows(lake, cfg, after)
            scored = scored[scored["impressed"]].reset_index(drop=True)
            for seed in args.seeds:
                model = model_cfg.model_copy(update={"seed": seed})
                run = cfg.model_copy(update={"model": model})
                t0 = time.perf_counter()
                outcome = train_ranker(ranker_tensors(table, run), run.features, model)
                spent += time.perf_counter() - t0
                epochs.append(len(outcome.history))
                probs = predict_frame(outcome.calibrated, scored, run.features)
                w = scored["weight"].to_numpy()
                rows.append(
                    [
                        weighted_auc(scored[h].to_numpy(), probs[f"p_{h}"].to_numpy(), w)
                        for h in heads
                    ]
                )
        aucs[name] = np.array(rows)
        summary[name] = [*aucs[name].mean(0).round(4), float(np.mean(epochs)), round(spent, 1)]
    table = pd.DataFrame(
        summary, index=[*(f"auc {h}" for h in heads), "epochs", "training seconds"]
    ).T
    print(table.rename_axis("arm").to_string())
    base = names[0]
    print(f"\nminus {base}, paired by window and seed (mean [90% interval]):")
    for name in names[1:]:
        d = aucs[name] - aucs[base]
        mean, half = d.mean(0), 1.645 * d.std(0, ddof=1) / np.sqrt(len(d))
        cells = [
            f"{h} {m:+.4f} [{m - e:+.4f}, {m + e:+.4f}]"
            for h, m, e in zip(heads, mean, half, strict=True)
        ]
        print(f"{name}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
