"""The Joiner (PySpark): logged features of day D + labels from the events of D and D+1.

A label is an engagement on the same (request, pin) within `maturity_hours` of its impression
(or of the request, for candidates never impressed: those are randomized-traffic rows and get
all-zero labels). Later events are ignored, so a day's labels do not change once mature.
The output is flat and typed, ready for the sampler and trainer, with a weight of 1 / keep_rate
that undoes the logger's impression sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ranker_assets.config import (
    ENGAGEMENT_TYPES,
    FEATURE_LOG_KEY_COLUMNS,
    FeatureSpec,
    JoinerConfig,
)
from ranker_assets.lake import Lake

LABELS: tuple[str, ...] = ENGAGEMENT_TYPES
KEY = ["request_id", "pin_id"]
# Carried from the feature log as they are; log_reason is the logger's bookkeeping, not data.
CONTEXT_COLUMNS = tuple(c for c in FEATURE_LOG_KEY_COLUMNS if c not in (*KEY, "log_reason"))


@dataclass(frozen=True)
class JoinStats:
    feature_rows: int
    joined_rows: int
    features_without_impression: int  # impressed per the feature log, no impression event
    engaged_without_features: int  # engaged and impressed on D, but no feature row
    positives: dict[str, int]

    @property
    def orphan_share(self) -> float:
        """The larger disagreement share between the two logs."""
        return max(
            self.features_without_impression / max(self.feature_rows, 1),
            self.engaged_without_features / max(self.feature_rows, 1),
        )


class LabelsNotReadyError(RuntimeError):
    """The inputs a day's join needs are not all in the lake yet."""


def next_day(ds: str) -> str:
    return str(date.fromisoformat(ds) + timedelta(days=1))


def join_day(
    features: DataFrame, events: DataFrame, ds: str, spec: FeatureSpec, cfg: JoinerConfig
) -> tuple[DataFrame, DataFrame]:
    """Return (training examples of `ds`, engaged keys of `ds` that have no feature row)."""
    feats = features.where(F.col("ds") == ds)
    imp = (
        events.where(F.col("event_type") == "impression")
        .groupBy(*KEY)
        .agg(F.min("timestamp").alias("impression_ts"), F.min("ds").alias("impression_ds"))
    )
    engagements = events.where(F.col("event_type") != "impression").select(
        *KEY, "event_type", F.col("timestamp").alias("event_ts")
    )
    anchored = feats.select(*KEY, "request_ts").join(imp, KEY, "left")
    deadline = F.coalesce("impression_ts", "request_ts") + F.expr(
        f"make_dt_interval(0, 0, 0, {cfg.maturity_hours * 3600:.6f})"
    )
    labels = (
        anchored.join(engagements, KEY, "inner")
        .where(F.col("event_ts") <= deadline)
        .groupBy(*KEY)
        .agg(*[F.max((F.col("event_type") == lab).cast("tinyint")).alias(lab) for lab in LABELS])
    )
    examples = (
        feats.join(anchored.select(*KEY, "impression_ts"), KEY, "left")
        .join(labels, KEY, "left")
        .fillna(0, subset=list(LABELS))
        .select(
            *KEY,
            *CONTEXT_COLUMNS,
            "impression_ts",
            (F.lit(1.0) / F.col("keep_rate")).cast("float").alias("weight"),
            *[F.col(c).cast("float").alias(c) for c in spec.dense],
            *[
                F.col(c).cast("long").alias(c)
                for c in spec.categorical
                if c not in (*KEY, "user_id")
            ],
            *[F.col(lab).cast("tinyint").alias(lab) for lab in LABELS],
            F.lit(ds).alias("ds"),
        )
    )
    engaged_today = (
        engagements.select(*KEY)
        .distinct()
        .join(imp.where(F.col("impression_ds") == ds), KEY, "inner")
    )
    orphans = engaged_today.join(feats.select(*KEY), KEY, "left_anti")
    return examples, orphans


def run_joiner(
    spark: SparkSession, lake: Lake, ds: str, spec: FeatureSpec, cfg: JoinerConfig
) -> tuple[int, JoinStats]:
    """Join day `ds` from the lake's feature_log and event_log into training_examples.

    Refuses to join a day whose labels are not mature (event_log of D+1 not ingested yet), so
    a day's labels are never silently truncated.
    """
    needed = {"feature_log": [ds], "event_log": [ds, next_day(ds)]}
    missing = [f"{t}[{d}]" for t, days in needed.items() for d in days if not lake.has_data(t, d)]
    if missing:
        raise LabelsNotReadyError(
            f"cannot join {ds}: no ingested rows for {', '.join(missing)}; the labels of {ds} "
            f"need the events of {ds} and {next_day(ds)} (materialize those partitions first)"
        )
    features = lake.spark_read(spark, "feature_log", [ds])
    events = lake.spark_read(spark, "event_log", [ds, next_day(ds)])
    examples, orphans = join_day(features, events, ds, spec, cfg)
    examples = examples.cache()
    try:
        version, rows = lake.spark_replace_day(examples, "training_examples", ds)
        agg = examples.agg(
            F.sum((F.col("impressed") & F.col("impression_ts").isNull()).cast("long")).alias(
                "no_imp"
            ),
            *[F.sum(F.col(lab).cast("long")).alias(lab) for lab in LABELS],
        ).first()
    finally:
        examples.unpersist()
    stats = JoinStats(
        feature_rows=features.count(),
        joined_rows=rows,
        features_without_impression=int(agg["no_imp"] or 0),
        engaged_without_features=orphans.count(),
        positives={lab: int(agg[lab] or 0) for lab in LABELS},
    )
    return version, stats
