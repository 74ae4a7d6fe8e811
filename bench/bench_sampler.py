"""Sampler throughput on a 5M-row day: the Spark sampler vs a DuckDB reference, same config.

Run: .venv/bin/python bench/bench_sampler.py [--rows 5000000] [--config balanced]
Builds a synthetic day of training examples (as a Delta table), samples it with the Spark
sampler as the sampled_dataset asset runs it (read, sample, cap, write Delta through delta-rs,
then the day's dataset health) and with a DuckDB SQL implementation of the same config (read
the same parquet files, write parquet; no health), and prints one table. The two
use different hash functions, so rows differ; their counts and weighted label rates must agree.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from stage_memory import StageMemory

from ranker_assets.config import load_config
from ranker_assets.config.sampling import SamplingConfig, load_sampling_configs
from ranker_assets.infra.lake import Lake
from ranker_assets.infra.spark_session import get_spark
from ranker_assets.sampling.run import run_sampler
from ranker_assets.sampling.sampler import sample_day
from ranker_assets.world.vocabulary import CLOSEUP

LABELS = CLOSEUP.label_events

DS = "2026-11-01"


def synthetic_day(spark: SparkSession, rows: int) -> DataFrame:
    """Rows shaped like the Joiner's output (label rates of a simulated day, 8 dense features)."""

    def u(salt: int) -> F.Column:
        return F.pmod(F.xxhash64(F.lit(salt), F.col("id")), F.lit(1_000_000)) / 1_000_000.0

    df = (
        spark.range(rows)
        .withColumn("request_id", (F.col("id") / 20).cast("long"))
        .withColumn("pin_id", F.col("id") % 20 + 7)
        .withColumn("user_id", F.pmod(F.xxhash64(F.col("request_id")), F.lit(rows // 200)))
        .withColumn(
            "content_type",
            F.element_at(
                F.array(*map(F.lit, ("image", "video", "product"))),
                (F.col("id") % 3 + 1).cast("int"),
            ),
        )
        .withColumn(
            "policy", F.when(F.col("request_id") % 50 == 0, "randomized").otherwise("production")
        )
        .withColumn("closeup", (u(1) < 0.30).cast("tinyint"))
        .withColumn("click", (u(2) < 0.16).cast("tinyint"))
        .withColumn("repin", (u(3) < 0.18).cast("tinyint"))
        .withColumn("long_click", ((F.col("click") == 1) & (u(4) < 0.5)).cast("tinyint"))
        .withColumn("hide", (u(5) < 0.013).cast("tinyint"))
        .withColumn("weight", F.when(F.greatest(*LABELS) == 1, 1.0).otherwise(10.0).cast("float"))
    )
    for i in range(8):
        df = df.withColumn(f"f{i}", u(10 + i).cast("float"))
    return df.drop("id").withColumn("ds", F.lit(DS))


def duckdb_reference(files: list[str], cfg: SamplingConfig, neg: float, out: Path) -> int:
    """The same config in SQL: keep probability, hashed draw, caps with up-weighting, weights."""
    protected = (
        "GREATEST("
        + ", ".join(
            f"CASE WHEN {lab} = 1 THEN {rate} END" for lab, rate in cfg.keep_rates(LABELS).items()
        )
        + ")"
    )
    boost = (
        "CASE "
        + " ".join(f"WHEN content_type = '{c}' THEN {f}" for c, f in cfg.content_type_boost.items())
        + " ELSE 1.0 END"
        if cfg.content_type_boost
        else "1.0"
    )
    keep = f"LEAST(1.0, COALESCE({protected}, {neg}) * {boost})"
    if cfg.randomized == "keep_all":
        keep = f"CASE WHEN policy = 'randomized' THEN 1.0 ELSE {keep} END"
    elif cfg.randomized == "drop":
        keep = f"CASE WHEN policy = 'randomized' THEN 0.0 ELSE {keep} END"

    def cap(src: str, group: str, limit: int | None) -> str:
        if limit is None:
            return src
        return f"""(SELECT * EXCLUDE (_r, _n) REPLACE (
                        CASE WHEN _n > {limit} THEN weight * _n / {limit} ELSE weight END AS weight)
                    FROM (SELECT *,
                            row_number() OVER (PARTITION BY {group} ORDER BY
                                hash({cfg.seed}, 'cap_{group}', request_id, pin_id), pin_id) AS _r,
                            count(*) OVER (PARTITION BY {group}) AS _n
                          FROM {src})
                    WHERE _r <= {limit})"""

    file_list = ", ".join(f"'{f}'" for f in files)
    sampled = f"""(SELECT * EXCLUDE (_u) REPLACE (weight / keep_prob AS weight) FROM (
                     SELECT *, {keep} AS keep_prob,
                            hash({cfg.seed}, 'keep', request_id, pin_id) / {2.0**64} AS _u
                     FROM read_parquet([{file_list}])) WHERE _u < keep_prob)"""
    query = cap(cap(sampled, "request_id", cfg.max_per_request), "user_id", cfg.max_per_user)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"COPY (SELECT * FROM {query}) TO '{out}' (FORMAT PARQUET)")
    ((rows,),) = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()
    return rows


def weighted_rates(files: list[str]) -> dict[str, float]:
    """Weighted label rates of parquet files (of a Delta table: the files its log lists)."""
    sums = ", ".join(f"sum(weight * {lab}) / sum(weight)" for lab in LABELS)
    paths = ", ".join(f"'{f}'" for f in files)
    (row,) = duckdb.sql(f"SELECT {sums} FROM read_parquet([{paths}])").fetchall()
    return dict(zip(LABELS, row, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--config", default="balanced")
    args = parser.parse_args()
    ranker = load_config()
    cfg = load_sampling_configs(ranker.sampling.configs_path)[args.config]
    spark = get_spark(ranker.spark)
    memory = StageMemory(spark)
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(str(Path(tmp) / "lake"))
        t = time.perf_counter()
        with memory.stage("build the day (Spark)"):
            lake.spark_replace_day(synthetic_day(spark, args.rows), "training_examples", DS)
        built = time.perf_counter() - t
        print(f"built {args.rows:,} synthetic rows in {built:.1f}s; config {cfg.name!r}")
        files = lake.files("training_examples", [DS])
        # Warm up the JVM on a small slice so the timing is the sampler, not Spark's start
        # (both ways of capping: the run takes one of them, by the day's size).
        head = lake.spark_read(spark, "training_examples", [DS]).limit(10_000)
        for broadcast in (False, True):
            sample_day(head, cfg, broadcast_caps=broadcast)[0].count()

        t = time.perf_counter()
        with memory.stage("Spark sampler"):
            # What the sampled_dataset asset runs: sample, write, and the day's health.
            outcome = run_sampler(
                lambda: spark,
                lake,
                DS,
                cfg,
                ranker.sampling.max_ratio_change,
                ranker.model.heads,
                ranker.vocabulary,
            )
        spark_s = time.perf_counter() - t
        spark_rows, neg = outcome.health.rows_out, outcome.health.negative_keep_rate

        out = Path(tmp) / "duckdb.parquet"
        t = time.perf_counter()
        # The negative rate depends on the data; both implementations use the same value.
        with memory.stage("DuckDB sampler"):
            duck_rows = duckdb_reference(files, cfg, neg, out)
        duck_s = time.perf_counter() - t
        spark_rates = weighted_rates(lake.files("sampled_dataset", [DS]))
        duck_rates = weighted_rates([str(out)])
        full_rates = weighted_rates(files)

    print(f"\n{'impl':<22}{'rows in':>12}{'rows out':>12}{'seconds':>10}{'rows/s':>14}")
    for name, rows, secs in (
        ("spark sampler (ours)", spark_rows, spark_s),
        ("duckdb reference", duck_rows, duck_s),
    ):
        print(f"{name:<22}{args.rows:>12,}{rows:>12,}{secs:>10.1f}{args.rows / secs:>14,.0f}")
    print(f"\nspark / duckdb time ratio: {spark_s / duck_s:.2f} (negative keep rate {neg:.4f})")
    print(f"\n{'weighted rate':<14}{'full':>10}{'spark':>10}{'duckdb':>10}")
    for lab in LABELS:
        print(f"{lab:<14}{full_rates[lab]:>10.5f}{spark_rates[lab]:>10.5f}{duck_rates[lab]:>10.5f}")
    print(f"\n{memory.table()}")


if __name__ == "__main__":
    main()
