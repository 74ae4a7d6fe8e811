"""The Spark sampler: one day of training examples + a sampling config -> a sampled dataset.

Every decision is a deterministic function of (config seed, request_id, pin_id), so re-running
gives the same rows. Each kept row's weight is divided by its keep probability, and rows that
survive a cap are up-weighted by (rows kept in the group / cap), so weighted label rates of the
sample estimate those of the full data: the trained model stays calibrated.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ranker_assets.config import Vocabulary
from ranker_assets.config.sampling import NegativeTarget, SamplingConfig

CLOSEUP = Vocabulary()  # the defaults: the closeup ranker's label events and policy names

_U53 = float(2**53)


def uniform(seed: int, salt: str) -> Column:
    """A stable U[0, 1) per (request, pin): xxhash64 is the same on every executor and run."""
    h = F.xxhash64(F.lit(seed), F.lit(salt), F.col("request_id"), F.col("pin_id"))
    return (F.pmod(h, F.lit(2**53)).cast("double") / F.lit(_U53)).alias(f"u_{salt}")


def _protected_rate(cfg: SamplingConfig, labels: tuple[str, ...]) -> Column:
    """Keep rate of a row from its positive labels (null when it has none)."""
    rates = [F.when(F.col(lab) == 1, F.lit(rate)) for lab, rate in cfg.keep_rates(labels).items()]
    return F.greatest(*rates, F.lit(None).cast("double")) if rates else F.lit(None).cast("double")


def _boost(cfg: SamplingConfig) -> Column:
    boost = F.lit(1.0)
    for ctype, factor in cfg.content_type_boost.items():
        boost = F.when(F.col("content_type") == ctype, F.lit(factor)).otherwise(boost)
    return boost


def trainable(df: DataFrame) -> Column:
    """Rows a ranker can learn from: shown ones. Never-shown candidates (randomized requests,
    or full logging) have all-zero labels that are not outcomes: they serve replay only."""
    return F.col("impressed") if "impressed" in df.columns else F.lit(True)


def negative_rate(
    df: DataFrame,
    cfg: SamplingConfig,
    labels: tuple[str, ...] = CLOSEUP.label_events,
    randomized: str = CLOSEUP.randomized_policy,
) -> float:
    """The keep rate for label-free rows: fixed, or solved for the target positive ratio.

    With P the expected kept positives of the head, K the expected kept protected rows and B
    the boosted count of label-free rows, rate = (P / ratio - K) / B, floored at `min_rate`.
    """
    target = cfg.negative_keep
    if not isinstance(target, NegativeTarget):
        return float(target)
    protected = _protected_rate(cfg, labels)
    # Null for label-free rows (least() would skip the null and return 1).
    pos_p = F.when(protected.isNotNull(), F.least(F.lit(1.0), protected * _boost(cfg)))
    row = (
        df.where(trainable(df))
        .where(F.col("policy") != randomized if cfg.randomized != "sample" else F.lit(True))
        .agg(
            F.sum(F.when(F.col(target.head) == 1, pos_p).otherwise(0.0)).alias("p"),
            F.sum(F.coalesce(pos_p, F.lit(0.0))).alias("k"),
            F.sum(F.when(protected.isNull(), _boost(cfg)).otherwise(0.0)).alias("b"),
        )
        .first()
    )
    p, k, b = (float(row[c] or 0.0) for c in ("p", "k", "b"))
    if b == 0:
        return 1.0
    return min(1.0, max(target.min_rate, (p / target.positive_ratio - k) / b))


def _draw(seed: int, group: str) -> Column:
    """A row's place in its group's random order: the `cap` lowest draws survive a cap."""
    return F.struct(uniform(seed, f"cap_{group}").alias("u"), F.col("pin_id").alias("pin"))


def _upweighted(cap: int, capped: Column) -> Column:
    """Survivors of a group of n > cap rows are a uniform subset, each kept with chance
    cap / n, so their weight is multiplied by n / cap."""
    return F.when(capped & (F.col("_n") > cap), F.col("weight") * F.col("_n") / F.lit(cap))


def _cap_by_window(df: DataFrame, group: str, cap: int | None, seed: int) -> DataFrame:
    """Keep at most `cap` rows per group (a hashed random subset), ranking the rows by a
    window: every row is shuffled by group."""
    if cap is None:
        return df
    draw = _draw(seed, group)
    return (
        df.withColumn("_rank", F.row_number().over(Window.partitionBy(group).orderBy(draw)))
        .withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy(group)))
        .where(F.col("_rank") <= cap)
        .withColumn("weight", F.coalesce(_upweighted(cap, F.lit(True)), F.col("weight")))
        .select(*df.columns)
    )


def _cap_by_threshold(
    df: DataFrame, group: str, cap: int | None, seed: int, counted: Column
) -> DataFrame:
    """The same cap without moving the rows: each group over its cap gets its cap-th lowest
    draw from an aggregate of two columns, broadcast to every task, and rows are filtered
    where they are. Only `counted` rows count against the cap and are cut by it; the others
    pass (and rows where `counted` is null are dropped, as the window path drops them)."""
    if cap is None:
        return df
    draw = _draw(seed, group)
    over = (
        df.where(counted)
        .select(F.col(group).alias("_g"), draw.alias("_d"))
        .groupBy("_g")
        .agg(F.count(F.lit(1)).alias("_n"), F.sort_array(F.collect_list("_d")).alias("_ds"))
        .where(F.col("_n") > cap)
        .select("_g", "_n", F.element_at("_ds", cap).alias("_last"))
    )
    # Null-safe, as a window's partition: rows without a group are one group there too.
    joined = df.join(F.broadcast(over), df[group].eqNullSafe(over["_g"]), "left")
    kept = F.when(counted, F.col("_last").isNull() | (draw <= F.col("_last"))).otherwise(~counted)
    return (
        joined.where(kept)
        .withColumn("weight", F.coalesce(_upweighted(cap, counted), F.col("weight")))
        .select(*df.columns)
    )


def column_lineage(columns: list[str], labels: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """The training_examples columns each sampled column comes from: all are carried as they
    are, except the keep probability (from labels and policy) and the weight it rescales."""
    lineage = {c: [("training_examples", c)] for c in columns if c not in ("keep_prob", "config")}
    lineage["config"] = []  # the partition's sampling config, not data
    keep = [("training_examples", c) for c in (*labels, "policy", "impressed") if c in columns]
    lineage["keep_prob"] = keep
    lineage["weight"] = [("training_examples", "weight"), *keep]
    return lineage


def sample_day(
    df: DataFrame,
    cfg: SamplingConfig,
    labels: tuple[str, ...] = CLOSEUP.label_events,
    randomized: str = CLOSEUP.randomized_policy,
    broadcast_caps: bool = False,
) -> tuple[DataFrame, float]:
    """Sample one day of training examples; returns (sampled rows, the negative keep rate).

    `labels` are the ranker's label events and `randomized` its randomized policy's name.
    Adds `keep_prob` and rescales `weight`; the columns are otherwise those of the input.
    `broadcast_caps` applies the caps without shuffling the rows (`_cap_by_threshold`).
    """
    neg = negative_rate(df, cfg, labels, randomized)
    protected = _protected_rate(cfg, labels)
    keep_prob = F.least(F.lit(1.0), F.coalesce(protected, F.lit(neg)) * _boost(cfg))
    is_randomized = F.col("policy") == randomized
    if cfg.randomized == "keep_all":
        keep_prob = F.when(is_randomized, F.lit(1.0)).otherwise(keep_prob)
    elif cfg.randomized == "drop":
        keep_prob = F.when(is_randomized, F.lit(0.0)).otherwise(keep_prob)
    # Never-shown rows: a randomized request's are kept whole for replay (unless randomized
    # rows are dropped); any others (full logging) cannot train and are not sampled.
    replay = F.lit(0.0 if cfg.randomized == "drop" else 1.0)
    keep_prob = F.when(trainable(df), keep_prob).when(is_randomized, replay).otherwise(0.0)
    columns = df.columns
    sampled = (
        df.withColumn("keep_prob", keep_prob)
        .withColumn("_u", uniform(cfg.seed, "keep"))
        .where(F.col("_u") < F.col("keep_prob"))
        .withColumn("weight", (F.col("weight") / F.col("keep_prob")).cast("double"))
        .drop("_u")
    )
    # Caps bound what trains: only trainable rows count against (and are cut by) them.
    caps = (("request_id", cfg.max_per_request), ("user_id", cfg.max_per_user))
    if broadcast_caps:
        for group, cap in caps:
            sampled = _cap_by_threshold(sampled, group, cap, cfg.seed, trainable(sampled))
    else:
        train, rest = sampled.where(trainable(sampled)), sampled.where(~trainable(sampled))
        for group, cap in caps:
            train = _cap_by_window(train, group, cap, cfg.seed)
        sampled = train.unionByName(rest)
    sampled = sampled.select(*columns, "keep_prob")
    return sampled.withColumn("weight", F.col("weight").cast("float")), neg
