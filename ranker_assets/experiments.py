"""Experiments against the simulator's ground truth: what a logging, sampling, refresh or
training choice buys, with every arm built from the same seeds and days.

Each arm goes through the real stages as plain functions (simulation and landing, validated
ingestion, the Spark Joiner and Sampler into Delta tables, the trainer), without Dagster or
MLflow, so an experiment is a loop over arms. Models are judged on days served in uniform
random order (free of position bias, with the true engagement probabilities: the oracle), and
online by serving a simulated day with them. `bench/bench_experiments.py` runs them at full
scale; the tests run them small and assert the direction of each effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pyspark.sql import SparkSession

from ranker_assets.closed_loop import ModuleScorer
from ranker_assets.config import LoggingConfig, RankerConfig
from ranker_assets.evaluation.metrics import calibration_ratio, weighted_auc
from ranker_assets.evaluation.offline import (
    bootstrap_interval,
    metric_batch,
    request_multipliers,
)
from ranker_assets.ingestion import event_log_spec, ingest_day, log_specs
from ranker_assets.joiner import run_joiner
from ranker_assets.lake import Lake
from ranker_assets.sampling.config import SAMPLED_TABLE, sampling_config
from ranker_assets.sampling.run import run_sampler
from ranker_assets.training.data import load_window
from ranker_assets.training.model import CalibratedRanker
from ranker_assets.training.pipeline import ranker_tensors
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.train import TrainingOutcome, train_ranker
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.simulator import DayReport, served_days, simulate_to_landing
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
def logging_experiment(
    spark: SparkSession, cfg: RankerConfig, root: Path, scale: Scale
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(volume per arm, replay quality per arm and head) for hybrid and full logging."""
    config = cfg.sampling.default
    frame = replay_frame(cfg, scale, scale.days)
    volume, models = [], {}
    for mode in ("hybrid", "full"):
        arm = build_arm(spark, with_logging(cfg, mode=mode), root / mode, scale, [config])
        outcome = fit(arm, config)
        volume.append(
            {
                "logging": mode,
                **arm.logged(),
                "sampled_rows": sampled_rows(arm, config),
                "trained_rows": outcome.rows["train"],
            }
        )
        models[mode] = scorer_of(outcome, cfg)
    return pd.DataFrame(volume), judge(models, frame, cfg.model.heads)


# -- 2. Randomized traffic -----------------------------------------------------------------
def evaluation_bias(
    cfg: RankerConfig, scale: Scale, outcome: TrainingOutcome, requests: int
) -> pd.DataFrame:
    """A model's per-head AUC measured on a day's production rows and on its randomized rows
    (as the logs would give them), against its AUC on a large fully randomized day (truth)."""
    served = served_day(cfg, scale, scale.days, requests, HeuristicScorer(), 0.05)
    frame = candidates_frame(served)
    randomized = np.repeat(served.randomized, served.pin_id.shape[1])
    frame = frame.assign(randomized=randomized)[frame["impressed"]]
    truth = judge(
        {"model": scorer_of(outcome, cfg)}, replay_frame(cfg, scale, scale.days), cfg.model.heads
    )
    rows = []
    for where, part in (
        ("production", frame[~frame["randomized"]]),
        ("randomized", frame[frame["randomized"]]),
    ):
        measured = judge({"model": scorer_of(outcome, cfg)}, part, cfg.model.heads)
        for h in cfg.model.heads:
            got = measured[(measured["model"] == "model") & (measured["head"] == h)]["auc"].item()
            true = truth[(truth["model"] == "model") & (truth["head"] == h)]["auc"].item()
            rows.append(
                {
                    "measured_on": where,
                    "head": h,
                    "rows": len(part),
                    "auc": got,
                    "true_auc": true,
                    "bias": got - true,
                }
            )
    return pd.DataFrame(rows)


def calibration_experiment(
    spark: SparkSession, cfg: RankerConfig, root: Path, scale: Scale
) -> pd.DataFrame:
    """The served ranker's calibration against the truth, trained with the randomized rows
    (the default config keeps them whole), without them (the same config dropping them), and
    calibrated on them alone (`model.calibrate_on: randomized`). Judged on the day after the
    window served at random and served by production (the heuristic): per head, predicted /
    true expected engagement and the binned calibration error relative to the rate."""
    config = cfg.sampling.default
    dropped = f"{config}_without_randomized"
    folder = root / "sampling_configs"
    folder.mkdir(parents=True, exist_ok=True)
    for path in cfg.sampling.configs_path.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    base = sampling_config(cfg.sampling.configs_path, config, cfg.vocabulary)
    variant = base.model_dump(mode="json") | {"name": dropped, "randomized": "drop"}
    (folder / f"{dropped}.yaml").write_text(yaml.safe_dump(variant))
    sampling = cfg.sampling.model_copy(update={"configs_dir": str(folder)})
    arm = build_arm(
        spark, cfg.model_copy(update={"sampling": sampling}), root, scale, [config, dropped]
    )
    on_randomized = cfg.model.model_copy(update={"calibrate_on": "randomized"})
    outcomes = {
        "with randomized rows": fit(arm, config),
        "without randomized rows": fit(arm, dropped),
        "calibrated on randomized rows": fit(_with_model(arm, on_randomized), config),
    }
    frames = {
        "randomized": replay_frame(cfg, scale, scale.days),
        "production": replay_frame(cfg, scale, scale.days, randomized=0.0),
    }
    rows = []
    for traffic, frame in frames.items():
        for name, outcome in outcomes.items():
            scores = scorer_of(outcome, cfg)(frame)
            for h in cfg.model.heads:
                p = scores[f"p_{h}"].to_numpy(dtype=np.float64)
                expected = frame["p_examine"] * (1 - frame["p_hide"]) * frame[f"p_{h}"]
                rows.append(
                    {
                        "traffic": traffic,
                        "model": name,
                        "head": h,
                        "pred_over_true": p.sum() / expected.sum(),
                        "relative_ece": binned_error(p, expected.to_numpy()) / expected.mean(),
                        "auc": weighted_auc(frame[h].to_numpy(), p),
                    }
                )
    return pd.DataFrame(rows)


def binned_error(predicted: np.ndarray, expected: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error against the true probabilities: rows in `bins` equal-count
    bins by prediction, the row-weighted mean |mean predicted - mean true| over bins."""
    order = np.argsort(predicted, kind="stable")
    return float(
        sum(
            len(part) * abs(predicted[part].mean() - expected[part].mean())
            for part in np.array_split(order, bins)
            if len(part)
        )
        / len(predicted)
    )


# -- 3. Sampling configs: offline and a simulated A/B ---------------------------------------
def sampling_experiment(
    spark: SparkSession, cfg: RankerConfig, root: Path, scale: Scale, configs: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, TrainingOutcome]]:
    """(replay quality per config and head, online engagement per action and content type
    when each config's ranker or the heuristic serves the day after, the trained rankers)."""
    arm = build_arm(spark, cfg, root, scale, configs)
    frame = replay_frame(cfg, scale, scale.days)
    outcomes = {c: fit(arm, c) for c in configs}
    quality = judge({c: scorer_of(o, cfg) for c, o in outcomes.items()}, frame, cfg.model.heads)
    policies: dict[str, Scorer] = {"heuristic": HeuristicScorer()}
    policies |= {c: model_policy(o, cfg, c) for c, o in outcomes.items()}
    engagement = pd.concat(
        {
            name: online(cfg, scale, scale.days, scale.eval_requests, p)
            for name, p in policies.items()
        },
        names=["policy", "content_type"],
    )
    return quality, engagement, outcomes


# -- 4. Refresh cadence ----------------------------------------------------------------------
def cadence_experiment(
    spark: SparkSession,
    cfg: RankerConfig,
    root: Path,
    scale: Scale,
    total_days: int,
    cadences: dict[str, int | None],
) -> pd.DataFrame:
    """Per day after the first full window and per cadence (retrain every N days, None:
    frozen): the serving model's replay AUC per head, the oracle's, and online engagement."""
    config = cfg.sampling.default
    window = cfg.model.window_days
    arm = build_arm(spark, cfg, root, scale, [config], days=total_days)
    first = window - 1  # the first day with a full window behind it
    trained: dict[int, TrainingOutcome] = {}

    def model_through(day: int) -> TrainingOutcome:
        if day not in trained:
            trained[day] = fit(arm, config, arm.days[day - window + 1 : day + 1])
        return trained[day]

    rows = []
    eval_scale = Scale(
        scale.requests, scale.days, scale.eval_requests // 2, scale.seed, scale.start
    )
    for day in range(first + 1, total_days):
        frame = replay_frame(cfg, eval_scale, day)
        for name, every in cadences.items():
            last = first if every is None else first + ((day - 1 - first) // every) * every
            outcome = model_through(last)
            quality = judge({name: scorer_of(outcome, cfg)}, frame, cfg.model.heads)
            engaged = online(
                cfg, eval_scale, day, eval_scale.eval_requests, model_policy(outcome, cfg, name)
            )
            oracle = quality["model"] == "oracle"
            if name != next(iter(cadences)):  # the oracle's rows once per day
                quality = quality[~oracle]
            for _, q in quality.iterrows():
                model = q["model"] == name
                rows.append(
                    {
                        "day": scale.day(day),
                        "cadence": q["model"],
                        "head": q["head"],
                        "auc": q["auc"],
                        "trained_through": scale.day(last) if model else "",
                        "engagement": engaged.loc["all", q["head"]] if model else np.nan,
                    }
                )
    return pd.DataFrame(rows)


# -- 5. Warm start, distillation and a bad teacher -------------------------------------------
def teacher_experiment(
    spark: SparkSession, cfg: RankerConfig, root: Path, scale: Scale
) -> pd.DataFrame:
    """The ranker of the last day trained fresh, warm-started from the previous day's ranker,
    distilled from it, and distilled from a poisoned one (its labels shuffled). The gate row
    says whether the no-regression gate would have let the poisoned ranker become champion."""
    config = cfg.sampling.default
    arm = build_arm(spark, cfg, root, scale, [config])
    before, last = arm.days[:-1], arm.days[1:]
    teacher = fit(arm, config, before)
    poisoned = fit(poison(arm, config, before, root), config, before)
    distill = cfg.model.model_copy(update={"distillation_weight": 1.0})
    arms = {
        "fresh": fit(arm, config, last),
        "warm start": fit(arm, config, last, init_state=teacher.raw.state_dict()),
        "distilled (good teacher)": fit(_with_model(arm, distill), config, last, teacher.raw),
        "distilled (poisoned teacher)": fit(_with_model(arm, distill), config, last, poisoned.raw),
        "teacher": teacher,
        "poisoned teacher": poisoned,
    }
    frame = replay_frame(cfg, scale, scale.days)
    return judge({k: scorer_of(o, cfg) for k, o in arms.items()}, frame, cfg.model.heads)


def poison(arm: Arm, config: str, days: Sequence[str], root: Path) -> Arm:
    """A copy of `arm` whose sampled labels of `days` are shuffled across rows: what a
    logging bug that mislabels engagements would train on."""
    rng = np.random.default_rng(0)
    lake = Lake(str(root / "poisoned"))
    for ds in days:
        table = arm.lake.read(SAMPLED_TABLE, [ds], config=config)
        for h in arm.cfg.model.heads:
            table = table.set_column(
                table.schema.get_field_index(h), h, pa.array(rng.permutation(table[h].to_numpy()))
            )
        lake.replace_partition(SAMPLED_TABLE, table, {"ds": ds, "config": config})
    return Arm(arm.cfg, lake, list(days), arm.reports)


def _with_model(arm: Arm, model: object) -> Arm:
    return Arm(arm.cfg.model_copy(update={"model": model}), arm.lake, arm.days, arm.reports)


# -- How good is the ranker: against a gradient-boosted reference -------------------------
def sequence_aggregates(frame: pd.DataFrame, cfg: RankerConfig) -> pd.DataFrame:
    """Hand-made features of the recent actions, the boosted reference's fair share of the
    sequence: per request, how many of its actions fall in each topic and content type, and
    per row how many match the candidate's own topic and content type."""
    _, first, index = np.unique(
        frame["request_id"].to_numpy(), return_index=True, return_inverse=True
    )
    out = {}
    matched = {}
    for attribute, candidate, names in (
        ("action_topic", "pin_topic", range(cfg.world.n_topics)),
        ("action_content_type", "content_type", CONTENT_TYPES),
    ):
        lists = pa.array([v for v in frame[attribute].to_numpy()[first]])
        parent = pc.list_parent_indices(lists).to_numpy()
        values = pd.Categorical(pc.list_flatten(lists).to_numpy(zero_copy_only=False), list(names))
        counts = np.zeros((len(first), len(names)))
        np.add.at(counts, (parent, values.codes), 1.0)
        for j, name in enumerate(names):
            out[f"recent_{attribute}_{name}"] = counts[index, j]
        own = pd.Categorical(frame[candidate].to_numpy(), list(names)).codes
        matched[f"recent_same_{candidate}"] = counts[index, own]
    return pd.DataFrame({**out, **matched}, index=frame.index)


def reference_experiment(
    spark: SparkSession, cfg: RankerConfig, root: Path, scale: Scale
) -> pd.DataFrame:
    """Per head on the replay day: the MMoE ranker (with and without the recent actions when
    the logs have them), a gradient-boosted reference trained on the same sampled rows and
    weights (scikit-learn HistGradientBoosting on the dense features, the topics and, with a
    sequence, hand-made aggregates of it), the heuristic serving policy and the oracle. Each AUC
    has a bootstrap interval over requests, and its paired difference to the boosted one."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    config = cfg.sampling.default
    arm = build_arm(spark, cfg, root, scale, [config])
    outcome = fit(arm, config)
    table = load_window(arm.lake, config, arm.days, cfg.features, cfg.model.heads).to_pandas()
    with_sequence = cfg.features.sequence is not None
    columns = [
        *cfg.features.dense,
        *(c for c in ("pin_topic", "query_topic") if c in cfg.features.categorical),
    ]
    categorical = [c not in cfg.features.dense for c in columns]

    def boosted_inputs(frame: pd.DataFrame) -> pd.DataFrame:
        if not with_sequence:
            return frame[columns]
        return pd.concat([frame[columns], sequence_aggregates(frame, cfg)], axis=1)

    inputs = boosted_inputs(table)
    flags = [*categorical, *([False] * (inputs.shape[1] - len(columns)))]
    models = {
        h: HistGradientBoostingClassifier(
            max_iter=200, categorical_features=flags, random_state=0
        ).fit(inputs, table[h], sample_weight=table["weight"])
        for h in cfg.model.heads
    }

    def boosted(frame: pd.DataFrame) -> pd.DataFrame:
        x = boosted_inputs(frame)
        return pd.DataFrame(
            {f"p_{h}": models[h].predict_proba(x)[:, 1] for h in cfg.model.heads},
            index=frame.index,
        )

    heuristic = HeuristicScorer()

    def heuristic_scores(frame: pd.DataFrame) -> pd.DataFrame:
        s = heuristic.score({c: frame[c].to_numpy() for c in frame.columns})
        return pd.DataFrame({f"p_{h}": s for h in cfg.model.heads}, index=frame.index)

    rankers = {"mmoe": scorer_of(outcome, cfg)}
    if with_sequence:
        plain_cfg = cfg.model_copy(
            update={"features": cfg.features.model_copy(update={"sequence": None})}
        )
        plain = fit(replace(arm, cfg=plain_cfg), config)
        rankers = {"mmoe + sequence": rankers["mmoe"], "mmoe": scorer_of(plain, plain_cfg)}
    frame = replay_frame(cfg, scale, scale.days)
    quality = judge(
        {**rankers, "boosted": boosted, "heuristic": heuristic_scores},
        frame,
        cfg.model.heads,
        reference="boosted",
        seed=scale.seed,
    )
    return quality.assign(trained_rows=outcome.rows["train"])
