"""An experiment's arms: each built through the real stages (simulation and landing, validated
ingestion, the Spark Joiner and Sampler into Delta tables, the trainer) from the same seeds and
days, and judged against the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from ranker_assets.config import LoggingConfig, RankerConfig
from ranker_assets.config.sampling import sampling_config
from ranker_assets.deployment.closed_loop import ModuleScorer
from ranker_assets.evaluation.offline import (
    bootstrap_interval,
    metric_batch,
    request_multipliers,
)
from ranker_assets.infra.lake import Lake
from ranker_assets.joining.joiner import run_joiner
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.screening import event_log_spec, log_specs
from ranker_assets.logs.simulated import DayReport, simulate_to_landing
from ranker_assets.metrics import calibration_ratio, weighted_auc
from ranker_assets.sampling.run import SAMPLED_TABLE, run_sampler
from ranker_assets.training.data import load_window
from ranker_assets.training.model import CalibratedRanker
from ranker_assets.training.pipeline import ranker_tensors
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.train import TrainingOutcome, train_ranker
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.simulator import served_days
from ranker_assets.world.traffic import ServedDay
from ranker_assets.world.truth import candidates_frame
from ranker_assets.world.vocabulary import CONTENT_TYPES, EVENT_TYPES


@dataclass(frozen=True)
class Scale:
    """How much traffic an experiment simulates; the same for every arm."""

    requests: int = 20_000  # per training day
    days: int = 5  # training days (the window)
    eval_requests: int = 20_000  # fully randomized requests of the day after, for judging
    seed: int = 7
    start: date = date(2026, 11, 1)

    def day(self, i: int) -> str:
        return str(self.start + timedelta(days=i))


@dataclass
class Arm:
    """One arm's lake: its sampled training days and what its logs cost."""

    cfg: RankerConfig
    lake: Lake
    days: list[str]
    reports: list[DayReport]

    def logged(self) -> dict[str, float]:
        """Rows and MB landed per day and log, averaged over the training days. The feature
        log is what hybrid logging shrinks; client events are the same either way."""
        out = {}
        for log in ("feature_log", "event_log"):
            stats = [r.written[log] for r in self.reports]
            out[f"{log}_rows"] = float(np.mean([w.rows for w in stats]))
            out[f"{log}_mb"] = float(np.mean([w.bytes for w in stats])) / 1e6
        return out


def build_arm(
    spark: SparkSession,
    cfg: RankerConfig,
    root: Path,
    scale: Scale,
    configs: Sequence[str],
    days: int | None = None,
    policy: Scorer | None = None,
) -> Arm:
    """Simulate `days` days (and the next day, for labels) served by `policy`, land their
    logs, ingest them, join each day and sample it with every config in `configs`."""
    n = days or scale.days
    landing, lake = root / "landing", Lake(str(root / "lake"))
    reports = simulate_to_landing(
        cfg.world, cfg.logging, landing, scale.start, n + 1, scale.requests, scale.seed, policy
    )
    samplers = [sampling_config(cfg.sampling.configs_path, c, cfg.vocabulary) for c in configs]
    for i in range(n + 1):  # a day's labels need the next day's events: all events first
        events = ingest_day(landing, event_log_spec(cfg.vocabulary), scale.day(i)).valid
        lake.replace_partition("event_log", events, {"ds": scale.day(i)})
    for ds in (scale.day(i) for i in range(n)):
        for spec in (s for s in log_specs(cfg) if s.name != "event_log"):
            lake.replace_partition(spec.name, ingest_day(landing, spec, ds).valid, {"ds": ds})
        run_joiner(spark, lake, ds, cfg.features, cfg.joiner, cfg.timezone, vocab=cfg.vocabulary)
        for sampler in samplers:
            run_sampler(
                lambda: spark,
                lake,
                ds,
                sampler,
                cfg.sampling.max_ratio_change,
                cfg.model.heads,
                cfg.vocabulary,
            )
    return Arm(cfg, lake, [scale.day(i) for i in range(n)], reports[:n])


def fit(
    arm: Arm,
    config: str,
    days: Sequence[str] | None = None,
    teacher: CalibratedRanker | None = None,
    init_state: dict | None = None,
) -> TrainingOutcome:
    """Train the ranker of `arm.cfg` on `config`'s sampled rows of `days` (all by default)."""
    cfg = arm.cfg
    table = load_window(arm.lake, config, list(days or arm.days), cfg.features, cfg.model.heads)
    return train_ranker(
        ranker_tensors(table, cfg), cfg.features, cfg.model, teacher=teacher, init_state=init_state
    )


def sampled_rows(arm: Arm, config: str) -> int:
    return arm.lake.read(SAMPLED_TABLE, arm.days, columns=["ds"], config=config).num_rows


def served_day(
    cfg: RankerConfig, scale: Scale, day: int, requests: int, policy: Scorer, randomized: float
) -> ServedDay:
    """Day `day` of the experiment's world served by `policy` (common random numbers: every
    arm sees the same users, requests and candidates)."""
    start = scale.start + timedelta(days=day)
    length = cfg.logging.sequence_length if cfg.features.sequence else 0
    return next(served_days(cfg.world, start, 1, requests, scale.seed, policy, randomized, length))


def replay_frame(
    cfg: RankerConfig, scale: Scale, day: int, randomized: float = 1.0
) -> pd.DataFrame:
    """The impressed candidates of a day served by the heuristic, fully at random by default
    (the replay day; 0: all production traffic): features, labels, true p_<head>."""
    served = served_day(cfg, scale, day, scale.eval_requests, HeuristicScorer(), randomized)
    frame = candidates_frame(served)
    return frame[frame["impressed"]].reset_index(drop=True)


def judge(
    models: dict[str, Callable[[pd.DataFrame], pd.DataFrame]],
    frame: pd.DataFrame,
    heads: Sequence[str],
    reference: str | None = None,
    seed: int = 0,
    samples: int = 200,
    confidence: float = 0.9,
) -> pd.DataFrame:
    """Per model and head on replayed rows: AUC, and predicted / actual engagement (the
    calibration ratio, 1.0 is calibrated). The oracle (true probabilities) is a row too.

    With a `reference` model, each AUC also gets a bootstrap interval over requests, and its
    difference to the reference's AUC a paired one (the same resampled requests)."""
    scored = {**{name: score(frame) for name, score in models.items()}, "oracle": frame}
    rows = []
    w = np.ones(len(frame))
    codes = pd.factorize(frame["request_id"])[0]
    mult = request_multipliers(int(codes.max()) + 1, samples, seed) if reference else None
    tail = (1 - confidence) / 2
    for h in heads:
        y = frame[h].to_numpy()
        aucs = {}
        if mult is not None:
            aucs = {
                name: metric_batch(y, p[f"p_{h}"].to_numpy(), w, codes, mult, 1)["auc"]
                for name, p in scored.items()
            }
        for name, p in scored.items():
            row = {
                "model": name,
                "head": h,
                "auc": weighted_auc(y, p[f"p_{h}"].to_numpy()),
                "pred_over_actual": calibration_ratio(y, p[f"p_{h}"].to_numpy(), w),
            }
            if aucs:
                row["auc_low"], row["auc_high"] = bootstrap_interval(aucs[name], tail)
                diff = aucs[name] - aucs[reference]
                row[f"minus_{reference}"] = float(diff[0])
                low, high = bootstrap_interval(diff, tail)
                row[f"minus_{reference}_low"], row[f"minus_{reference}_high"] = low, high
            rows.append(row)
    return pd.DataFrame(rows)


def scorer_of(
    outcome: TrainingOutcome, cfg: RankerConfig
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The calibrated model as a frame -> p_<head> function."""
    return lambda frame: predict_frame(outcome.calibrated, frame, cfg.features)


def online(
    cfg: RankerConfig, scale: Scale, day: int, requests: int, policy: Scorer
) -> pd.DataFrame:
    """Engagements per request by action and content type when `policy` serves all of `day`."""
    served = served_day(cfg, scale, day, requests, policy, 0.0)
    kinds = served.content_type[served.event_request, served.event_slot]
    out = {}
    for code, action in enumerate(EVENT_TYPES[1:], start=1):
        hit = served.event_type == code
        out[action] = {
            ctype: float((hit & (kinds == k)).sum()) / served.n_requests
            for k, ctype in enumerate(CONTENT_TYPES)
        }
        out[action]["all"] = float(hit.sum()) / served.n_requests
    return pd.DataFrame(out)


def model_policy(outcome: TrainingOutcome, cfg: RankerConfig, name: str) -> Scorer:
    return ModuleScorer(outcome.calibrated, cfg.features, cfg.ranking_weights(), name)


def with_logging(cfg: RankerConfig, **changes: object) -> RankerConfig:
    logging: LoggingConfig = cfg.logging.model_copy(update=changes)
    return cfg.model_copy(update={"logging": logging})


# -- 1. Hybrid vs full logging -------------------------------------------------------------
