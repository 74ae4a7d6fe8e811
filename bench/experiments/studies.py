"""The experiments themselves: what a logging, sampling, calibration, refresh or training choice
buys, each a loop over arms (arms.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pyspark.sql import SparkSession

from experiments.arms import (
    Arm,
    Scale,
    build_arm,
    fit,
    judge,
    model_policy,
    online,
    replay_frame,
    sampled_rows,
    scorer_of,
    served_day,
    with_logging,
)
from ranker_assets.config import RankerConfig
from ranker_assets.config.sampling import sampling_config
from ranker_assets.infra.lake import Lake
from ranker_assets.metrics import weighted_auc
from ranker_assets.sampling.run import SAMPLED_TABLE
from ranker_assets.training.data import load_window
from ranker_assets.training.train import TrainingOutcome
from ranker_assets.world.policies import HeuristicScorer, Scorer
from ranker_assets.world.truth import candidates_frame
from ranker_assets.world.vocabulary import CONTENT_TYPES


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
