"""Peak resident memory of each stage inside one bench process, Python's and the Spark JVM's.

The process-wide peak (what run_all reports) says which bench is heavy, not which stage. Linux
keeps each process's peak resident set (VmHWM in /proc/<pid>/status) and resets it to the
current one when "5" is written to /proc/<pid>/clear_refs, so a stage resets both peaks,
runs, and reads them. Local Spark runs in a child JVM, whose memory the Python process never
sees: its pid comes from the py4j gateway. A stage's peak includes what was already resident
when it began (the start column), since memory a stage inherits is memory it needs.

Resetting also resets what the kernel reports as the process's lifetime peak (ru_maxrss), so
the whole run's peak is kept here, read before every reset, and printed as RUN_PEAK for
run_all to report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

GIB = 2**20  # /proc reports kB
RUN_PEAK = "largest process's peak resident GiB over the whole run"


def _status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class StageMemory:
    """Context manager per stage; `table()` prints one row per stage measured."""

    def __init__(self, spark: SparkSession | None = None) -> None:
        self.pids = {"python": os.getpid()}
        if spark is not None:
            self.pids["jvm"] = spark.sparkContext._gateway.proc.pid
        self.rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
        self.run_peak = 0.0

    def _peaks(self) -> dict[str, float]:
        peaks = {who: _status_kb(pid, "VmHWM") / GIB for who, pid in self.pids.items()}
        self.run_peak = max(self.run_peak, *peaks.values())
        return peaks

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._peaks()  # the peak so far, before the reset forgets it
        start = {}
        for who, pid in self.pids.items():
            _reset_peak(pid)
            start[who] = _status_kb(pid, "VmRSS") / GIB
        yield
        peak = self._peaks()
        self.rows.append((name, {who: (start[who], peak[who]) for who in self.pids}))

    def table(self) -> str:
        """Per stage: resident GiB at its start and its peak, per process."""
        who = list(self.pids)
        head = f"{'stage (peak resident GiB)':<34}" + "".join(
            f"{w + ' start':>12}{w + ' peak':>12}" for w in who
        )
        lines = [head]
        for name, values in self.rows:
            lines.append(
                f"{name:<34}" + "".join(f"{values[w][0]:>12.2f}{values[w][1]:>12.2f}" for w in who)
            )
        self._peaks()
        lines.append(f"\n{RUN_PEAK}: {self.run_peak:.2f}")
        return "\n".join(lines)


def run_peak(stdout: str) -> float | None:
    """The RUN_PEAK a bench printed, if it measured stages."""
    found = re.search(rf"^{re.escape(RUN_PEAK)}: ([0-9.]+)$", stdout, re.M)
    return float(found.group(1)) if found else None
