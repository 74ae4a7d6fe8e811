"""The Spark sampler's statistical and exact guarantees, on synthetic training examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ranker_assets.config.sampling import NegativeTarget, SamplingConfig
from ranker_assets.sampling.health import dataset_health
from ranker_assets.sampling.sampler import sample_day
from ranker_assets.world.vocabulary import CLOSEUP

LABELS = CLOSEUP.label_events

pytestmark = pytest.mark.spark
N = 200_000


@pytest.fixture(scope="module")
def examples(spark) -> DataFrame:
    """200k rows: 20 candidates per request, 400 users, known label rates, 2% randomized."""

    def u(salt: int) -> F.Column:
        return F.pmod(F.xxhash64(F.lit(salt), F.col("id")), F.lit(10_000)) / 10_000.0

    df = (
        spark.range(N)
        .withColumn("request_id", (F.col("id") / 20).cast("long"))
        .withColumn("pin_id", F.col("id") % 20 + 1000)
        .withColumn("user_id", F.col("request_id") % 400)
        .withColumn(
            "content_type",
            F.element_at(
                F.array(*map(F.lit, ["image", "video", "product"])),
                (F.col("id") % 3 + 1).cast("int"),
            ),
        )
        .withColumn(
            "policy", F.when(F.col("request_id") % 50 == 0, "randomized").otherwise("production")
        )
        .withColumn("closeup", (u(1) < 0.20).cast("tinyint"))
        .withColumn("click", (u(2) < 0.06).cast("tinyint"))
        .withColumn("repin", (u(3) < 0.05).cast("tinyint"))
        .withColumn("long_click", ((F.col("click") == 1) & (u(4) < 0.5)).cast("tinyint"))
        .withColumn("hide", (u(5) < 0.01).cast("tinyint"))
        # Impression-only rows were logged at 10%: their example weight is 10.
        .withColumn("weight", F.when(F.greatest(*LABELS) == 1, 1.0).otherwise(10.0).cast("float"))
        .withColumn("ds", F.lit("2026-11-01"))
        .drop("id")
    )
    return df.cache()


def _pd(df: DataFrame) -> pd.DataFrame:
    return df.toPandas()


def _weighted_means(df: pd.DataFrame) -> pd.Series:
    return df[list(LABELS)].mul(df["weight"], axis=0).sum() / df["weight"].sum()


def _assert_calibrated(full: pd.DataFrame, sampled: pd.DataFrame) -> None:
    """Weighted label means of the sample equal the full data's within 4 standard errors."""
    want, got = _weighted_means(full), _weighted_means(sampled)
    w = sampled["weight"].astype("float64")
    for lab in LABELS:
        resid = sampled[lab].astype("float64") - got[lab]
        se = np.sqrt(((w * resid) ** 2).sum()) / w.sum()
        assert abs(got[lab] - want[lab]) < 4 * se + 1e-9, (lab, want[lab], got[lab], se)


def test_keep_rates_follow_the_config(examples) -> None:
    cfg = SamplingConfig(
        name="t",
        seed=3,
        label_keep={"repin": 1.0, "closeup": 0.5},
        negative_keep=0.2,
        content_type_boost={"video": 2.0},
        randomized="drop",
    )
    full, sampled = _pd(examples), _pd(sample_day(examples, cfg)[0])
    prod = full[full["policy"] == "production"]
    kept = prod.merge(
        sampled[["request_id", "pin_id"]], on=["request_id", "pin_id"], how="left", indicator=True
    )
    kept["kept"] = kept.pop("_merge") == "both"

    def share(mask: pd.Series) -> tuple[float, int]:
        return kept.loc[mask, "kept"].mean(), int(mask.sum())

    repin = kept["repin"] == 1
    closeup_only = (kept["closeup"] == 1) & ~repin
    negative = (kept["repin"] == 0) & (kept["closeup"] == 0)
    image, video = kept["content_type"] == "image", kept["content_type"] == "video"
    assert share(repin)[0] == 1.0
    expected = [
        (closeup_only & image, 0.5),
        (closeup_only & video, 1.0),
        (negative & image, 0.2),
        (negative & video, 0.4),
    ]
    for mask, rate in expected:
        got, n = share(mask)
        assert abs(got - rate) <= 4 * np.sqrt(rate * (1 - rate) / n) + 1e-9, (rate, got, n)
    assert (sampled["policy"] == "production").all()
    # Without caps, the weight is the example weight over the keep probability.
    both = sampled.merge(full, on=["request_id", "pin_id"], suffixes=("", "_full"))
    assert np.allclose(both["weight"] * both["keep_prob"], both["weight_full"], rtol=1e-6)


@pytest.mark.parametrize("broadcast_caps", [False, True], ids=["window", "broadcast"])
def test_caps_are_honoured_exactly_and_weights_stay_unbiased(examples, broadcast_caps) -> None:
    cfg = SamplingConfig(name="t", seed=5, negative_keep=0.5, max_per_request=6, max_per_user=150)
    full = _pd(examples)
    sampled = _pd(sample_day(examples, cfg, broadcast_caps=broadcast_caps)[0])
    assert sampled.groupby("request_id").size().max() == 6
    assert sampled.groupby("user_id").size().max() == 150
    # Weighted label rates of the sample match the full data's (the model stays calibrated).
    _assert_calibrated(full, sampled)
    # Randomized rows are never downsampled by rate with keep_all (only by the hard caps).
    rand = sampled[sampled["policy"] == "randomized"]
    assert (rand["keep_prob"] == 1.0).all() and len(rand) > 0


@pytest.mark.parametrize("logging", ["shown only", "full"])
def test_both_ways_of_capping_keep_the_same_rows_with_the_same_weights(examples, logging) -> None:
    """The broadcast thresholds keep exactly the rows the window ranks first (never-shown rows
    pass both untouched), and the window path shuffles the rows where the other does not."""
    cfg = SamplingConfig(name="t", seed=3, negative_keep=0.6, max_per_request=5, max_per_user=120)
    day = _fully_logged(examples) if logging == "full" else examples
    got = {}
    for broadcast in (False, True):
        sampled = sample_day(day, cfg, broadcast_caps=broadcast)[0]
        plan = sampled._jdf.queryExecution().executedPlan().toString()
        assert ("Window" in plan) != broadcast and ("BroadcastHashJoin" in plan) == broadcast
        rows = sampled.select("request_id", "pin_id", "weight").collect()
        got[broadcast] = sorted((r[0], r[1], round(r[2], 4)) for r in rows)
    assert got[False] == got[True]
    assert len({w for *_, w in got[True]}) > 2  # some weights were raised by a cap


def test_weighted_label_means_match_without_caps(examples) -> None:
    cfg = SamplingConfig(
        name="t",
        seed=7,
        label_keep={"repin": 1.0, "click": 0.7, "closeup": 0.4},
        negative_keep=0.15,
        content_type_boost={"product": 1.8},
    )
    full, sampled = _pd(examples), _pd(sample_day(examples, cfg)[0])
    _assert_calibrated(full, sampled)
    assert len(sampled) < 0.5 * len(full)


def test_sampling_is_deterministic_per_seed(examples) -> None:
    cfg = SamplingConfig(name="t", seed=11, negative_keep=0.3, max_per_request=8)

    def keys(c: SamplingConfig) -> list[tuple[int, int]]:
        rows = sample_day(examples, c)[0].select("request_id", "pin_id").collect()
        return sorted((r[0], r[1]) for r in rows)

    first = keys(cfg)
    assert first == keys(cfg)
    assert first != keys(cfg.model_copy(update={"seed": 12}))


def test_a_target_positive_ratio_sets_the_negative_rate(examples) -> None:
    target = NegativeTarget(head="repin", positive_ratio=0.3)
    cfg = SamplingConfig(
        name="t", seed=1, label_keep={"repin": 1.0}, negative_keep=target, randomized="drop"
    )
    sampled, rate = sample_day(examples, cfg)
    df = _pd(sampled)
    assert 0 < rate < 1
    assert df["repin"].mean() == pytest.approx(0.3, abs=0.01)


def _fully_logged(examples: DataFrame) -> DataFrame:
    """The examples as full logging has them: 8 of each request's 20 candidates shown."""
    shown = F.col("pin_id") % 20 < 8
    return examples.withColumn("impressed", shown).select(
        *[
            F.when(shown, F.col(c)).otherwise(F.lit(0).cast("tinyint")).alias(c)
            if c in LABELS
            else F.col(c)
            for c in examples.columns
        ],
        "impressed",
    )


@pytest.mark.parametrize("broadcast_caps", [False, True], ids=["window", "broadcast"])
def test_only_rows_that_can_train_are_sampled_capped_and_targeted(examples, broadcast_caps) -> None:
    """Full logging also logs never-shown production candidates: they cannot train, so they are
    not sampled, and neither caps nor the positive-ratio target count them; a randomized
    request's never-shown rows stay whole for replay."""
    logged = _fully_logged(examples)
    target = NegativeTarget(head="repin", positive_ratio=0.3)
    cfg = SamplingConfig(
        name="t", seed=1, label_keep={"repin": 1.0}, negative_keep=target, max_per_request=5
    )
    sampled, _ = sample_day(logged, cfg, broadcast_caps=broadcast_caps)
    df, full = _pd(sampled), _pd(logged)
    prod, rand = df[df["policy"] == "production"], df[df["policy"] == "randomized"]
    assert prod["impressed"].all()  # never-shown production rows are not sampled
    full_rand = full[full["policy"] == "randomized"]
    assert len(rand[~rand["impressed"]]) == len(full_rand[~full_rand["impressed"]])
    per_request = df[df["impressed"]].groupby("request_id").size()
    assert per_request.max() <= 5  # the cap counts shown rows only
    shown_prod = prod[prod["policy"] == "production"]
    assert shown_prod["repin"].mean() == pytest.approx(0.3, abs=0.03)


def test_dataset_health_from_streamed_batches_matches_the_rows() -> None:
    """Health is summed batch by batch from Arrow: the totals, shares and the top 1% of users
    must be those of the whole table, whatever the batch boundaries."""
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame(
        {
            "impressed": rng.random(n) < 0.8,
            "weight": rng.uniform(1, 10, n).astype("float32"),
            "click": (rng.random(n) < 0.1).astype("int8"),
            "content_type": rng.choice(["image", "video"], n),
            "user_id": rng.zipf(1.5, n) % 500,
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    health = dataset_health(
        table.to_batches(max_chunksize=2048),
        table.to_batches(max_chunksize=777),
        0.5,
        ("click",),
        ("image", "video"),
    )
    shown = frame[frame["impressed"]]
    assert health.rows_in == health.rows_out == n
    assert health.positives == {"click": int(shown["click"].sum())}
    assert health.positive_ratio["click"] == pytest.approx(shown["click"].mean())
    rate = (shown["weight"] * shown["click"]).sum() / shown["weight"].sum()
    assert health.weighted_rate_out["click"] == pytest.approx(rate, rel=1e-6)
    assert health.content_type_share["video"] == pytest.approx(
        (shown["content_type"] == "video").mean()
    )
    counts = shown.groupby("user_id").size().sort_values(ascending=False)
    top = counts.iloc[: int(np.ceil(0.01 * len(counts)))].sum()
    assert health.top1pct_user_share == pytest.approx(top / len(shown))
