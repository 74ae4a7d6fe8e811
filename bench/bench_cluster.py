"""The same days through a standalone Spark cluster and through local mode: identical outputs.

Run: .venv/bin/python bench/bench_cluster.py [--requests 5000] [--batch-rows 20000]
Starts a standalone Spark master and one worker from the pyspark installation, both bound to
127.0.0.1, simulates and lands two days, then runs ingestion (Spark tasks, `--batch-rows` rows
at a time), the Joiner and the Sampler for day 1 twice, each in its own process (Spark allows
one session per process) into its own lake: once with `spark.master` set to the cluster's URL,
once `local[2]`. Prints each stage's time per mode and whether the two lakes' tables (the three
logs, the quarantine, training_examples and sampled_dataset) hold the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyspark

from ranker_assets.config import load_config
from ranker_assets.config.sampling import sampling_config
from ranker_assets.infra.lake import Lake
from ranker_assets.infra.spark_session import get_spark, prepare_environment
from ranker_assets.joining.joiner import run_joiner
from ranker_assets.logs.ingestion import QUARANTINE_TABLE
from ranker_assets.logs.screening import log_specs
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.logs.spark_ingestion import ingest_day_on_spark
from ranker_assets.sampling.run import run_sampler

D1 = date(2026, 11, 1)
DAYS = [str(D1), str(D1 + timedelta(days=1))]
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def standalone_cluster(work: Path, cores: int, memory: str) -> Iterator[str]:
    """A master and one worker on loopback; yields the master URL once the worker is ALIVE."""
    prepare_environment()
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    port, ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    master = [
        SPARK_CLASS, "org.apache.spark.deploy.master.Master",
        "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui),
    ]  # fmt: skip
    worker = [
        SPARK_CLASS, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
        "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
        "--work-dir", str(work / "worker"),
    ]  # fmt: skip
    logs = [open(work / f"{name}.log", "w") for name in ("master", "worker")]  # noqa: SIM115
    procs = [subprocess.Popen(master, env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        _wait(lambda: _master_state(ui) is not None, "the master", work / "master.log")
        procs.append(subprocess.Popen(worker, env=env, stdout=logs[1], stderr=subprocess.STDOUT))
        _wait(lambda: _alive_workers(ui) > 0, "the worker", work / "worker.log")
        yield url
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
        for f in logs:
            f.close()


def _master_state(ui: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as r:
            return json.load(r)
    except OSError:
        return None


def _alive_workers(ui: int) -> int:
    state = _master_state(ui) or {}
    return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))


def _wait(ready: Callable[[], bool], what: str, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout:.0f} s; see {log}")
        time.sleep(1)


def child(master: str, landing: str, lake_dir: str, batch_rows: str) -> None:
    """Ingest, join and sample day 1 in this process with `master`; prints stage times as JSON."""
    cfg = load_config()
    conf = {"spark.executor.memory": "2g"} if master.startswith("spark://") else {}
    spark = get_spark(cfg.spark.model_copy(update={"master": master, "conf": conf}))
    lake = Lake(lake_dir)
    t0 = time.perf_counter()
    for spec in log_specs(cfg):
        for ds in DAYS if spec.name == "event_log" else DAYS[:1]:
            ingest_day_on_spark(
                spark, lake, Path(landing), spec, ds, int(batch_rows), cfg.ingestion.batch_bytes
            )
    t1 = time.perf_counter()
    run_joiner(spark, lake, DAYS[0], cfg.features, cfg.joiner, vocab=cfg.vocabulary)
    t2 = time.perf_counter()
    sampling = sampling_config(cfg.sampling.configs_path, cfg.sampling.default, cfg.vocabulary)
    heads = tuple(cfg.model.heads)
    run_sampler(
        lambda: spark, lake, DAYS[0], sampling, cfg.sampling.max_ratio_change, heads, cfg.vocabulary
    )
    t3 = time.perf_counter()
    times = {"ingest_s": t1 - t0, "join_s": t2 - t1, "sample_s": t3 - t2}
    print(json.dumps({"master": spark.sparkContext.master, **times}))


def run_child(master: str, landing: Path, lake_dir: Path, batch_rows: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", master, str(landing), str(lake_dir), str(batch_rows)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# What orders each table's rows canonically (Spark writes them in any order).
KEYS = {
    "event_log": ["event_id"],
    "sequence_log": ["request_id"],
    QUARANTINE_TABLE: ["log", "source_file", "row_number"],
}
TABLES = ["feature_log", "event_log", "sequence_log", QUARANTINE_TABLE]
TABLES += ["training_examples", "sampled_dataset"]


def rows(lake_dir: Path, table: str) -> pa.Table:
    """A table's rows (all days) sorted by its key, columns by name."""
    data = Lake(str(lake_dir)).read(table)
    key = KEYS.get(
        table, ["request_id", "pin_id", *(["config"] if "config" in data.column_names else [])]
    )
    return data.sort_by([(k, "ascending") for k in key]).select(sorted(data.column_names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    cfg = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        landing = root / "landing"
        simulate_to_landing(cfg.world, cfg.logging, landing, D1, 2, args.requests, args.seed)
        prepare_s = time.perf_counter() - t0
        lakes = {"local": root / "local", "cluster": root / "cluster"}
        results = {"local": run_child("local[2]", landing, lakes["local"], args.batch_rows)}
        with standalone_cluster(root, cores=2, memory="3g") as url:
            results["cluster"] = run_child(url, landing, lakes["cluster"], args.batch_rows)
        local = {t: rows(lakes["local"], t) for t in TABLES}
        same = {t: local[t].equals(rows(lakes["cluster"], t)) for t in TABLES}
        counts = {t: local[t].num_rows for t in TABLES}
    print(
        f"{args.requests:,} requests/day, day {DAYS[0]}, ingestion in frames of "
        f"{args.batch_rows:,} rows (simulate and land 2 days: {prepare_s:.0f} s)\n"
    )
    print(f"{'mode':<9}{'master':<26}{'ingest s':>10}{'join s':>8}{'sample s':>10}")
    for mode, r in results.items():
        print(
            f"{mode:<9}{r['master']:<26}{r['ingest_s']:>10.1f}{r['join_s']:>8.1f}"
            f"{r['sample_s']:>10.1f}"
        )
    print()
    for table, ok in same.items():
        verdict = "identical" if ok else "DIFFERENT"
        print(f"{table}: {counts[table]:,} rows, local and cluster {verdict}")
    if not all(same.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
