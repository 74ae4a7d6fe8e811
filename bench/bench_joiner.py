"""Ingestion and Joiner throughput at a realistic day, hybrid logging vs the full-logging reference.

Run: .venv/bin/python bench/bench_joiner.py [--requests 100000]
Simulates the same two days twice (same seed, same traffic), once logged the hybrid way and once
logging every served candidate (`full`), ingests both through the contract into Delta, and joins
day 1 with Spark ("ingest e+q": the events of both days and the sequence log of day 1). Prints
one table; the full-logging row is the reference on the same run.
A single-process reference of the same join (DuckDB SQL over the same Delta files, writing
parquet) runs on each arm too: rows/s of both, their ratio, and a check that both produce the
same rows and positives.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
from pyspark.sql import SparkSession
from stage_memory import StageMemory

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.infra.lake import Lake
from ranker_assets.infra.spark_session import get_spark
from ranker_assets.joining.joiner import broadcasts_events, join_day, run_joiner
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.screening import event_log_spec, feature_log_spec, sequence_log_spec
from ranker_assets.logs.simulated import simulate_to_landing


def duckdb_join(
    lake: Lake, days: list[str], cfg: RankerConfig, out: Path
) -> tuple[int, dict[str, int], float]:
    """The Joiner's logic in DuckDB SQL (labels within the maturity window after the
    impression, weight = 1 / keep_rate), written to parquet: (rows, positives, seconds)."""
    vocab, hours = cfg.vocabulary, cfg.joiner.maturity_hours
    feats = [u.removeprefix("file://") for u in lake.files("feature_log", days[:1])]
    events = [u.removeprefix("file://") for u in lake.files("event_log", days)]
    labels = ", ".join(f"'{e}'" for e in vocab.label_events)
    flags = ", ".join(f"max((e.event_type = '{e}')::TINYINT) AS {e}" for e in vocab.label_events)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"""
        COPY (
        WITH f AS (SELECT * FROM read_parquet({feats!r})),
        ev AS (SELECT request_id, pin_id, event_type, "timestamp" AS ts
               FROM read_parquet({events!r})),
        imp AS (SELECT request_id, pin_id, min(ts) AS impression_ts FROM ev
                WHERE event_type = '{vocab.impression_event}' GROUP BY ALL),
        anchored AS (SELECT f.request_id, f.pin_id,
                     coalesce(i.impression_ts, f.request_ts) + INTERVAL ({hours}) HOUR AS deadline
                     FROM f LEFT JOIN imp i USING (request_id, pin_id)),
        lab AS (SELECT a.request_id, a.pin_id, {flags}
                FROM anchored a JOIN ev e USING (request_id, pin_id)
                WHERE e.event_type IN ({labels}) AND e.ts <= a.deadline GROUP BY ALL)
        SELECT f.*, i.impression_ts, (1.0 / f.keep_rate)::FLOAT AS weight,
               {", ".join(f"coalesce(l.{e}, 0)::TINYINT AS {e}_label" for e in vocab.label_events)}
        FROM f LEFT JOIN imp i USING (request_id, pin_id) LEFT JOIN lab l USING (request_id, pin_id)
        ) TO '{out}' (FORMAT parquet)
    """)
    seconds = time.perf_counter() - t0
    sums = ", ".join(f"sum({e}_label)::BIGINT" for e in vocab.label_events)
    n, *pos = con.execute(f"SELECT count(*), {sums} FROM read_parquet('{out}')").fetchone()
    return n, dict(zip(vocab.label_events, pos, strict=True)), seconds


def plan_summary(spark: SparkSession, lake: Lake, days: list[str], cfg: RankerConfig) -> str:
    """Scans, shuffles and the join strategy in the physical plan of the Joiner's one Spark
    job (examples and orphan counts together): what one more pass would show up as."""
    features = lake.spark_read(spark, "feature_log", days[:1])
    events = lake.spark_read(spark, "event_log", days)
    rows = lake.rows("event_log", days)
    broadcast = broadcasts_events(rows, cfg.joiner)
    day = join_day(features, events, days[0], cfg.features, cfg.joiner, cfg.vocabulary, broadcast)
    lines = day.examples._jdf.queryExecution().executedPlan().toString().splitlines()
    scans = sum("Scan parquet" in line for line in lines)
    exchanges = sum("Exchange" in line and "BroadcastExchange" not in line for line in lines)
    strategy = "broadcast" if broadcast else "sort-merge"
    return (
        f"Joiner plan: one job, {scans} parquet scans, {exchanges} shuffle exchange(s), "
        f"{strategy} join ({'unknown' if rows is None else f'{rows:,}'} event rows; "
        f"joiner.broadcast_events_rows {cfg.joiner.broadcast_events_rows:,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cfg = load_config()
    d1 = date(2026, 11, 1)
    days = [str(d1), str(d1 + timedelta(days=1))]
    spark = get_spark(cfg.spark)
    rows = []
    memory = StageMemory(spark)
    with tempfile.TemporaryDirectory() as tmp:
        for i, mode in enumerate(("hybrid", "full", "hybrid")):  # the first pass warms up
            root = Path(tmp) / f"{mode}{i}"
            logging = cfg.logging.model_copy(update={"mode": mode})
            with memory.stage(f"{mode}: simulate and land 2 days"):
                simulate_to_landing(
                    cfg.world, logging, root / "landing", d1, 2, args.requests, args.seed
                )
            lake = Lake(str(root / "lake"))
            t0 = time.perf_counter()
            with memory.stage(f"{mode}: ingest the feature log"):
                f = ingest_day(root / "landing", feature_log_spec(cfg.features), days[0])
                lake.replace_partition("feature_log", f.valid, {"ds": days[0]})
            t1 = time.perf_counter()
            with memory.stage(f"{mode}: ingest 2 days of events"):
                for ds in days:
                    e = ingest_day(root / "landing", event_log_spec(), ds)
                    lake.replace_partition("event_log", e.valid, {"ds": ds})
            if cfg.features.sequence:  # the Joiner counts rows whose request has none
                with memory.stage(f"{mode}: ingest the sequence log"):
                    q = ingest_day(
                        root / "landing", sequence_log_spec(cfg.features.sequence), days[0]
                    )
                    lake.replace_partition("sequence_log", q.valid, {"ds": days[0]})
            t2 = time.perf_counter()
            with memory.stage(f"{mode}: Spark Joiner"):
                _, stats = run_joiner(spark, lake, days[0], cfg.features, cfg.joiner)
            t3 = time.perf_counter()
            with memory.stage(f"{mode}: DuckDB join"):
                ref_rows, ref_pos, ref_s = duckdb_join(lake, days, cfg, root / "duckdb.parquet")
            if i == 0:
                memory.rows.clear()  # the warm-up pass
                plans = plan_summary(spark, lake, days, cfg)
            spark_pos = {h: stats.positives[h] for h in ref_pos}
            assert ref_rows == stats.joined_rows and ref_pos == spark_pos, (ref_pos, spark_pos)
            rows.append(
                (
                    mode,
                    f.rows_in,
                    f.bytes_in,
                    lake.partition_bytes("feature_log", ds=days[0]),
                    t1 - t0,
                    t2 - t1,
                    stats.joined_rows,
                    t3 - t2,
                    ref_s,
                )
            )
    print(f"{args.requests:,} requests/day, ds={days[0]}, Spark {cfg.spark.master}\n")
    head = (
        "logging",
        "feat rows",
        "landed MB",
        "lake MB",
        "ingest f s",
        "ingest e+q",
        "joined",
        "join s",
        "join rows/s",
        "duckdb s",
        "spark/duck",
    )
    print(f"{head[0]:<8}" + "".join(f"{h:>12}" for h in head[1:]))
    for mode, n, landed, lake_b, tf, te, joined, tj, td in rows[1:]:
        print(
            f"{mode:<8}{n:>12,}{landed / 1e6:>12.1f}{lake_b / 1e6:>12.1f}{tf:>12.1f}{te:>12.1f}"
            f"{joined:>12,}{tj:>12.1f}{joined / tj:>12,.0f}{td:>12.1f}{tj / td:>12.2f}"
        )
    hybrid, full = rows[2], rows[1]
    print(
        f"\nhybrid / full: feature-log lake bytes {hybrid[3] / full[3]:.3f}, "
        f"join time {hybrid[7] / full[7]:.3f}"
    )
    print(f"\n{plans}\n\n{memory.table()}")


if __name__ == "__main__":
    main()
