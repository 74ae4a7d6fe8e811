"""Ingestion's time and memory per log as the day grows: in one in-process frame vs Spark tasks.

Run: .venv/bin/python bench/bench_ingestion.py [--requests 50000,100000] [--spark-only 400000]
One simulated day per size and logging mode is ingested both ways from the same landed files
(the in-memory engine is the reference; at `--spark-only` sizes it does not fit this machine
and only Spark runs). Per log: seconds, and the peak resident memory of this Python process,
of the Spark JVM and of the largest Spark Python worker (sampled from /proc every 0.1 s: workers
are the JVM's children). Rows and quarantine counts of both engines are checked equal.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import TypeVar

from stage_memory import GIB, StageMemory

from ranker_assets.config import load_config
from ranker_assets.infra.lake import Lake
from ranker_assets.infra.spark_session import get_spark
from ranker_assets.logs.ingestion import IngestCounts, commit_day, ingest_day
from ranker_assets.logs.screening import log_specs
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.logs.spark_ingestion import ingest_day_on_spark

DS = date(2026, 11, 1)
T = TypeVar("T")


class WorkerPeak:
    """The largest resident set of any Spark Python worker while a stage runs."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _workers_kb() -> list[int]:
        sizes = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"pyspark.daemon" not in cmd and b"pyspark.worker" not in cmd:
                    continue
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]))
        return sizes

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_kb = max(self.peak_kb, *self._workers_kb(), 0)

    def __enter__(self) -> WorkerPeak:
        self.peak_kb = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _in_memory(landing: Path, lake: Path, log: str) -> tuple[float, float, IngestCounts]:
    """The reference, in a fresh process so its peak is its own: seconds, peak GiB, counts."""
    spec = next(s for s in log_specs(load_config()) if s.name == log)
    t0 = time.perf_counter()
    result = ingest_day(landing, spec, str(DS))
    commit_day(Lake(str(lake)), result)
    seconds = time.perf_counter() - t0
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / GIB, result.counts()


def _fresh(fn: Callable[..., T], *args: object) -> T:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", default="50000,100000,200000")
    parser.add_argument("--spark-only", default="400000", help="sizes too big for one frame")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cfg = load_config()
    both = [int(r) for r in args.requests.split(",") if r]
    spark_only = [int(r) for r in args.spark_only.split(",") if r]
    spark = get_spark(cfg.spark)
    memory = StageMemory(spark)
    workers = WorkerPeak()
    rows = []
    runs = [(both[0], "hybrid", False)]  # a warm-up pass, not reported
    runs += [(r, m, True) for r in both for m in ("full", "hybrid")]
    runs += [(r, "full", False) for r in spark_only]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (requests, mode, reference) in enumerate(runs):
            root = Path(tmp) / f"{i}"
            logging = cfg.logging.model_copy(update={"mode": mode})
            _fresh(
                simulate_to_landing,
                cfg.world,
                logging,
                root / "landing",
                DS,
                1,
                requests,
                args.seed,
            )
            for spec in log_specs(cfg):
                label = f"{requests // 1000}k {mode} {spec.name}"
                ref = (
                    _fresh(_in_memory, root / "landing", root / "memory", spec.name)
                    if reference
                    else None
                )
                t0 = time.perf_counter()
                with memory.stage(label), workers:
                    counts, _ = ingest_day_on_spark(
                        spark,
                        Lake(str(root / "spark")),
                        root / "landing",
                        spec,
                        str(DS),
                        cfg.ingestion.batch_rows,
                        cfg.ingestion.batch_bytes,
                    )
                seconds = time.perf_counter() - t0
                stage = memory.rows[-1][1]
                if ref is not None:
                    same = ("rows_in", "kept", "quarantined", "duplicates", "reasons")
                    assert all(getattr(counts, f) == getattr(ref[2], f) for f in same), ref
                rows.append(
                    (
                        label,
                        counts.rows_in,
                        counts.bytes_in / 2**20,
                        ref,
                        seconds,
                        stage["python"][1],
                        workers.peak_kb / GIB,
                        stage["jvm"][1],
                        counts.batches,
                    )
                )
            if i == 0:
                rows.clear()
                memory.rows.clear()
    frames = f"batch_rows {cfg.ingestion.batch_rows:,}, batch_bytes {cfg.ingestion.batch_bytes:,}"
    print(f"Spark {cfg.spark.master}, {frames}; peak resident GiB\n")
    print(
        f"{'day and log':<26}{'rows in':>12}{'landed MB':>11}{'memory s':>10}{'memory GiB':>11}"
        f"{'spark s':>9}{'driver GiB':>11}{'worker GiB':>11}{'jvm GiB':>9}{'batches':>9}"
    )
    for label, rows_in, mb, ref, seconds, driver, worker, jvm, batches in rows:
        mem = f"{ref[0]:>10.1f}{ref[1]:>11.2f}" if ref else f"{'-':>10}{'-':>11}"
        print(
            f"{label:<26}{rows_in:>12,}{mb:>11.1f}{mem}{seconds:>9.1f}{driver:>11.2f}"
            f"{worker:>11.2f}{jvm:>9.2f}{batches:>9,}"
        )
    print(f"\n{memory.table().splitlines()[-1]}")


if __name__ == "__main__":
    main()
