"""The Joiner (PySpark): logged features of day D + labels from the events of D and D+1.

A label is an engagement on the same (request, pin) within `maturity_hours` of its impression
(or of the request, for candidates never impressed: those are randomized-traffic rows and get
all-zero labels). Later events are ignored, so a day's labels do not change once mature.
The output is flat and typed, ready for the sampler and trainer, with a weight of 1 / keep_rate
that undoes the logger's impression sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from ranker_assets.config import (
    FEATURE_LOG_KEY_COLUMNS,
    FeatureSpec,
    JoinerConfig,
    Vocabulary,
)
from ranker_assets.infra.lake import Lake

KEY = ["request_id", "pin_id"]


def context_columns(vocab: Vocabulary) -> tuple[str, ...]:
    """Carried from the feature log as they are: the contract's columns that this ranker's logs
    have (log_reason is the logger's bookkeeping, not data)."""
    skip = {*KEY, "log_reason", *vocab.absent_columns}
    return tuple(c for c in FEATURE_LOG_KEY_COLUMNS if c not in skip)


def column_lineage(spec: FeatureSpec, vocab: Vocabulary) -> dict[str, list[tuple[str, str]]]:
    """The (log, column) pairs each training_examples column is computed from, for the UI."""
    lineage = {c: [("feature_log", c)] for c in (*context_columns(vocab), *spec.dense)}
    lineage.update({c: [("feature_log", c)] for c in spec.categorical})
    lineage.update({k: [("feature_log", k), ("event_log", k)] for k in KEY})
    event = [("event_log", "event_type"), ("event_log", "timestamp")]
    lineage["impression_ts"] = event
    lineage["weight"] = [("feature_log", "keep_rate")]
    # A label is an engagement event within the maturity window after the impression.
    lineage.update({lab: [*event, ("feature_log", "request_ts")] for lab in vocab.label_events})
    lineage["ds"] = [("feature_log", "ds")]
    return lineage


@dataclass(frozen=True)
class JoinStats:
    feature_rows: int
    joined_rows: int
    features_without_impression: int  # impressed per the feature log, no impression event
    engaged_without_features: int  # engaged and impressed on D, but no feature row
    positives: dict[str, int]
    rows_without_sequence: int | None = None  # None: this ranker has no sequence log
    labels_from: str = ""  # which events the labels came from, and why they count as final

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


def label_days(
    lake: Lake, ds: str, cfg: JoinerConfig, timezone: str, now: datetime | None = None
) -> tuple[list[str], str] | None:
    """The event days whose engagements label `ds`, and why those labels count as final.

    D+1's events when they are ingested; else, once `labels_final_hours` have passed since
    the day ended, D's alone (a finished log has no next day). None: not final yet.
    """
    nxt = next_day(ds)
    if lake.has_data("event_log", nxt):
        return [ds, nxt], f"events of {ds} and {nxt}"
    end = datetime.combine(date.fromisoformat(nxt), time(), ZoneInfo(timezone))
    waited = ((now or datetime.now(UTC)) - end).total_seconds() / 3600
    if cfg.labels_final_hours is not None and waited >= cfg.labels_final_hours:
        return [ds], (
            f"events of {ds} only: {nxt} has no events, and labels count as final "
            f"{cfg.labels_final_hours:g} h after the day ended ({waited:.0f} h ago)"
        )
    return None


@dataclass(frozen=True)
class DayJoin:
    """One day's join as a single Spark job: the examples to write, and the counts Spark
    observes while writing them (filled in by the write: no second pass, no recount)."""

    examples: DataFrame
    engaged: Observation  # events side: engaged keys whose impression was on the day
    written: Observation  # examples side: how many of those keys have a feature row


def broadcasts_events(event_rows: int | None, cfg: JoinerConfig) -> bool:
    """Whether the label days' events (`Lake.rows`: Delta log statistics, None when unknown)
    are few enough to broadcast."""
    return event_rows is not None and event_rows <= cfg.broadcast_events_rows


def join_day(
    features: DataFrame,
    events: DataFrame,
    ds: str,
    spec: FeatureSpec,
    cfg: JoinerConfig,
    vocab: Vocabulary,
    broadcast_events: bool = False,
) -> DayJoin:
    """Training examples of `ds`: the day's feature rows, each with its labels.

    With `broadcast_events` the events' per-key summary is sent whole to every feature-log task
    and the wide feature rows are never shuffled; without it both sides are shuffled by key.
    A request's recent actions are not copied onto its examples: readers take them from
    `sequence_log` by request_id (training.data.attach_sequences)."""
    labels_ = vocab.label_events
    context = context_columns(vocab)
    id_type = "long" if vocab.id_type == "int64" else "string"
    feats = features.where(F.col("ds") == ds)
    # One pass over the events: per (request, pin), the first impression and the first event of
    # each label. An engagement counts when it is within the maturity window, and the first
    # one is within it exactly when any is, so the first of each type is all a label needs.
    is_impression = F.col("event_type") == vocab.impression_event
    engaged_on_day = F.lit(False)
    for lab in labels_:
        engaged_on_day = engaged_on_day | F.col(f"_{lab}").isNotNull()
    engaged_on_day = engaged_on_day & F.coalesce(
        F.col("_impression_day") == F.lit(ds).cast("date"), F.lit(False)
    )
    engaged = Observation("engaged")
    per_key = (
        events.where(F.col("event_type").isin([vocab.impression_event, *labels_]))
        .groupBy(*KEY)
        .agg(
            F.min(F.when(is_impression, F.col("timestamp"))).alias("impression_ts"),
            # As a date: a string minimum would force a sort-based aggregation of every event.
            F.min(F.when(is_impression, F.col("ds").cast("date"))).alias("_impression_day"),
            *[
                F.min(F.when(F.col("event_type") == lab, F.col("timestamp"))).alias(f"_{lab}")
                for lab in labels_
            ],
        )
        .withColumn("_engaged_on_day", engaged_on_day)
        .drop("_impression_day")
        .observe(engaged, F.count(F.when(F.col("_engaged_on_day"), 1)).alias("keys"))
    )
    deadline = F.coalesce("impression_ts", "request_ts") + F.expr(
        f"make_dt_interval(0, 0, 0, {cfg.maturity_hours * 3600:.6f})"
    )
    # The strategy is the config's call, not Spark's size estimate of a compressed scan.
    joined = feats.join(per_key.hint("broadcast" if broadcast_events else "merge"), KEY, "left")
    examples = joined.select(
        *KEY,
        *context,
        "impression_ts",
        (F.lit(1.0) / F.col("keep_rate")).cast("float").alias("weight"),
        *[F.col(c).cast("float").alias(c) for c in spec.dense],
        *[F.col(c).cast(id_type).alias(c) for c in spec.categorical if c not in (*KEY, *context)],
        *[
            F.coalesce(F.col(f"_{lab}") <= deadline, F.lit(False)).cast("tinyint").alias(lab)
            for lab in labels_
        ],
        F.lit(ds).alias("ds"),
        "_engaged_on_day",
    )
    written = Observation("written")
    # A left join on the feature log's unique keys matches each engaged key at most once.
    examples = examples.observe(
        written, F.count(F.when(F.col("_engaged_on_day"), 1)).alias("engaged_with_features")
    ).drop("_engaged_on_day")
    return DayJoin(examples, engaged, written)


def run_joiner(
    spark: SparkSession,
    lake: Lake,
    ds: str,
    spec: FeatureSpec,
    cfg: JoinerConfig,
    timezone: str = "UTC",
    now: datetime | None = None,
    vocab: Vocabulary | None = None,
) -> tuple[int, JoinStats]:
    """Join day `ds` from the lake's feature_log and event_log into training_examples.

    Refuses to join a day whose labels are not final (see `label_days`), so a day's labels
    are never silently truncated.
    """
    logs = ("feature_log", "event_log", *(("sequence_log",) if spec.sequence else ()))
    missing = [f"{t}[{ds}]" for t in logs if not lake.has_data(t, ds)]
    labels = label_days(lake, ds, cfg, timezone, now)
    if labels is None:
        missing.append(f"event_log[{next_day(ds)}]")
    if missing:
        wait = (
            f", or wait until {cfg.labels_final_hours:g} h after the day's end"
            if cfg.labels_final_hours is not None
            else "; joiner.labels_final_hours lets a finished log's last day join without it"
        )
        raise LabelsNotReadyError(
            f"cannot join {ds}: no ingested rows for {', '.join(missing)}; the labels of {ds} "
            f"need the events of {ds} and {next_day(ds)} (materialize those partitions first"
            f"{wait})"
        )
    days, labels_from = labels
    features = lake.spark_read(spark, "feature_log", [ds])
    events = lake.spark_read(spark, "event_log", days)
    vocab = vocab or Vocabulary()
    broadcast = broadcasts_events(lake.rows("event_log", days), cfg)
    day = join_day(features, events, ds, spec, cfg, vocab, broadcast)
    version, rows = lake.spark_replace_day(day.examples, "training_examples", ds)
    # The orphans were counted by Spark during the write; the rest comes from what was written
    # (Arrow batches of a few columns: memory stays that of a batch), not from a second pass.
    orphans = day.engaged.get["keys"] - day.written.get["engaged_with_features"]
    no_impression, no_sequence, positives = 0, 0, dict.fromkeys(vocab.label_events, 0)
    logged = (
        lake.read("sequence_log", [ds], columns=["request_id"])["request_id"].combine_chunks()
        if spec.sequence
        else None
    )
    columns = ["impressed", "impression_ts", *vocab.label_events, "request_id"]
    for batch in lake.batches("training_examples", [ds], columns):
        missing = pc.and_(batch["impressed"], pc.is_null(batch["impression_ts"]))
        no_impression += int(pc.sum(missing.cast(pa.int64())).as_py() or 0)
        if logged is not None:  # rows whose request has no recent actions logged
            has = pc.is_in(batch["request_id"], value_set=logged)
            no_sequence += len(batch) - int(pc.sum(has.cast(pa.int64())).as_py() or 0)
        for lab in positives:
            positives[lab] += int(pc.sum(batch[lab].cast(pa.int64())).as_py() or 0)
    stats = JoinStats(
        feature_rows=rows,
        joined_rows=rows,
        features_without_impression=no_impression,
        engaged_without_features=orphans,
        positives=positives,
        labels_from=labels_from,
        rows_without_sequence=no_sequence if spec.sequence else None,
    )
    return version, stats
