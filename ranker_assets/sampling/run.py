"""Run the sampler for one (day, config): reuse by lineage, else sample, write, assess health."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from ranker_assets.config import ModelConfig, SamplingSettings, Vocabulary
from ranker_assets.config.sampling import SamplingConfig
from ranker_assets.infra.lake import Lake
from ranker_assets.sampling.health import DatasetHealth, dataset_health, health_problems
from ranker_assets.sampling.sampler import sample_day

# The Delta table of sampled datasets, partitioned by (config, ds): written by the sampler,
# read by the trainer.
SAMPLED_TABLE = "sampled_dataset"

HEALTH = "sampled_dataset_health"
CLOSEUP_HEADS = ModelConfig().heads


@dataclass(frozen=True)
class SampleOutcome:
    reused: bool  # lineage unchanged: nothing was recomputed or rewritten
    lineage: str  # config hash + upstream fingerprint: the partition's data version
    health: DatasetHealth
    previous: DatasetHealth | None
    problems: list[str]


def recorded_health(lake: Lake, config: str, ds: str) -> dict[str, object] | None:
    """The stored health/lineage row of a partition, if it was ever sampled."""
    if not lake.exists(HEALTH):
        return None
    rows = lake.read(HEALTH, [ds], config=config).to_pylist()
    return rows[0] if rows else None


def run_sampler(
    spark: Callable[[], SparkSession],
    lake: Lake,
    ds: str,
    cfg: SamplingConfig,
    max_ratio_change: float,
    heads: tuple[str, ...] = CLOSEUP_HEADS,
    vocab: Vocabulary | None = None,
    broadcast_cap_groups: int = SamplingSettings().broadcast_cap_groups,
) -> SampleOutcome:
    """Sample `ds` with `cfg`, unless the same config already sampled the same upstream data.

    Health is judged on the ranker's `heads`; names come from its `vocab` (closeup's by
    default). `spark` is called only when the partition has to be recomputed.
    """
    vocab = vocab or Vocabulary()
    cfg.check_names(vocab.label_events, vocab.content_types)
    if not lake.has_data("training_examples", ds):
        raise FileNotFoundError(f"training_examples has no rows for {ds}: join that day first")
    config_hash = cfg.content_hash()
    upstream = lake.partition_fingerprint("training_examples", ds=ds)
    prev_row = recorded_health(lake, cfg.name, str(date.fromisoformat(ds) - timedelta(days=1)))
    previous = DatasetHealth.from_row(prev_row) if prev_row else None
    record = recorded_health(lake, cfg.name, ds)
    lineage = f"{config_hash}-{upstream}"
    reused = bool(
        record and record["config_hash"] == config_hash and record["upstream"] == upstream
    )
    if reused and record is not None:
        health = DatasetHealth.from_row(record)
    else:
        df_in = lake.spark_read(spark(), "training_examples", [ds])
        rows = lake.rows("training_examples", [ds])
        caps = [c for c in (cfg.max_per_request, cfg.max_per_user) if c is not None]
        broadcast = rows is not None and all(rows // c <= broadcast_cap_groups for c in caps)
        sampled, neg_rate = sample_day(
            df_in, cfg, vocab.label_events, vocab.randomized_policy, broadcast
        )
        lake.spark_replace_partition(
            sampled.withColumn("config", F.lit(cfg.name)),
            SAMPLED_TABLE,
            {"config": cfg.name, "ds": ds},
        )
        # Health from the day's rows and what was written, streamed by Arrow (a few columns):
        # the sample is computed once, never cached or recounted.
        wanted = ["impressed", "weight", *heads, *(["content_type"] if vocab.content_types else [])]
        columns = [c for c in wanted if c in df_in.columns]  # logs may lack `impressed`
        health = dataset_health(
            lake.batches("training_examples", [ds], columns),
            lake.batches(SAMPLED_TABLE, [ds], [*columns, "user_id"], config=cfg.name),
            neg_rate,
            heads,
            vocab.content_types,
        )
        # Written last: it is also the lineage record, so a crash above means "recompute".
        lake.replace_partition(
            HEALTH,
            health.to_row(cfg.name, ds, config_hash, upstream),
            {"config": cfg.name, "ds": ds},
        )
    return SampleOutcome(
        reused=reused,
        lineage=lineage,
        health=health,
        previous=previous,
        problems=health_problems(health, previous, max_ratio_change),
    )
