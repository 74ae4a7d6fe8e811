"""`make bench`: run every benchmark and experiment and write docs/results.md from their output.

Run: .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]
Each bench script runs in its own process; its output goes into docs/results.md verbatim
(markdown from bench_experiments, a code block from the others) with the command, when it ran,
its wall time and the peak resident memory of its largest process (Python or the Spark JVM).
Nothing in docs/results.md is typed by hand: re-run this to refresh it; `--only` re-runs the
named sections and keeps the rest of the file. `--quick` runs every bench small (minutes) and
writes docs/results_quick.md instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from stage_memory import run_peak

REPO = Path(__file__).resolve().parents[1]
PLOTTING = {"cadence", "learning_curve"}  # benches that take --plots
# name (bench/bench_<script>.py), title, full-scale arguments, quick arguments, markdown out
BENCHES = [
    (
        "experiments",
        "Experiments: the article's claims against ground truth",
        [],
        ["--quick"],
        True,
    ),
    (
        "cadence",
        "Refresh cadence in the living world, at three levels of churn",
        [],
        ["--days", "12", "--requests", "3000", "--churn", "1"],
        True,
    ),
    (
        "id_capacity",
        "Id embeddings: how many ids share a bucket in a training window",
        ["--requests", "20000"],
        ["--requests", "4000", "--days", "3"],
        False,
    ),
    (
        "learning_curve",
        "How good is the ranker as data grows (learning curve)",
        ["--requests", "5000,20000,80000"],
        ["--requests", "2000,4000,8000", "--days", "3", "--eval-requests", "6000"],
        True,
    ),
    (
        "off_policy",
        "Off-policy estimates against traffic and the randomized share (experiment 2)",
        ["--days", "7"],
        ["--volumes", "10000,100000", "--days", "2"],
        False,
    ),
    (
        "simulator",
        "Simulator speed and hybrid-vs-full log volume, one day",
        ["--requests", "100000"],
        ["--requests", "10000"],
        False,
    ),
    (
        "ingestion",
        "Ingestion on Spark vs in one frame, 50k to 400k requests/day (1x to 8x)",
        ["--requests", "50000,100000,200000", "--spark-only", "400000"],
        ["--requests", "3000,6000", "--spark-only", "12000"],
        False,
    ),
    (
        "joiner_1x",
        "Ingestion and the Spark Joiner, 50k requests/day (1x)",
        ["--requests", "50000"],
        ["--requests", "5000"],
        False,
    ),
    (
        "joiner_2x",
        "Ingestion and the Spark Joiner, 100k requests/day (2x)",
        ["--requests", "100000"],
        ["--requests", "10000"],
        False,
    ),
    (
        "joiner_4x",
        "Ingestion and the Spark Joiner, 200k requests/day (4x)",
        ["--requests", "200000"],
        ["--requests", "20000"],
        False,
    ),
    (
        "sampler_1x",
        "The Spark Sampler vs DuckDB, 5M rows (1x)",
        ["--rows", "5000000"],
        ["--rows", "200000"],
        False,
    ),
    (
        "sampler_2x",
        "The Spark Sampler vs DuckDB, 10M rows (2x)",
        ["--rows", "10000000"],
        ["--rows", "400000"],
        False,
    ),
    (
        "sampler_4x",
        "The Spark Sampler vs DuckDB, 20M rows (4x)",
        ["--rows", "20000000"],
        ["--rows", "800000"],
        False,
    ),
    (
        "cluster",
        "The Joiner and the Sampler on a standalone Spark cluster vs local mode",
        ["--requests", "20000"],
        ["--requests", "3000"],
        False,
    ),
    (
        "trainer",
        "Trainer: the real loader and loop vs in-memory tensors",
        ["--rows", "300000"],
        ["--rows", "100000"],
        False,
    ),
    (
        "daemon_10k",
        "Landed day to deploy decision under the daemon, 10k requests/day",
        ["--requests", "10000"],
        ["--requests", "2000"],
        False,
    ),
    (
        "daemon_100k",
        "Landed day to deploy decision under the daemon, 100k requests/day",
        ["--requests", "100000"],
        ["--requests", "5000"],
        False,
    ),
]


def script(name: str) -> Path:
    """joiner_2x -> bench/bench_joiner.py: one script, several sizes."""
    return REPO / "bench" / f"bench_{re.sub(r'_[0-9]+[xk]$', '', name)}.py"


def run_measured(argv: list[str]) -> tuple[str, str, int, float]:
    """(stdout, stderr, exit code, peak resident memory in GiB of the process or of the
    largest child it waited for, e.g. the Spark JVM), from wait4's resource usage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), proc.returncode, usage.ru_maxrss / 2**20


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = (
        int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        / 2**20
    )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    packages = ", ".join(
        f"{p} {version(p)}"
        for p in ("dagster", "pyspark", "deltalake", "mlflow", "torch", "duckdb", "scikit-learn")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; Python {platform.python_version()}, "
        f"{java.splitlines()[0] if java else 'no java'}; {packages}"
    )


def sections(text: str) -> dict[str, str]:
    """An earlier results file's sections by title (the text after "## ")."""
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    # The last section carries the old run's total, which no longer applies.
    parts = [re.sub(r"\nAll benches together: .*\n*$", "\n", part) for part in parts]
    # Trailing blank lines stripped: the file joins sections with one, so none accumulate.
    return {part.split("\n", 1)[0]: "## " + part.rstrip("\n") + "\n" for part in parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="bench names to run (default: all)")
    args = parser.parse_args()
    out = REPO / "docs" / ("results_quick.md" if args.quick else "results.md")
    command = "make bench-quick" if args.quick else "make bench"
    unknown = set(args.only or ()) - {b[0] for b in BENCHES}
    if unknown:
        parser.error(f"no bench named {sorted(unknown)}; known: {[b[0] for b in BENCHES]}")
    # --only refreshes those sections and keeps the others from the last run.
    kept = sections(out.read_text()) if args.only and out.exists() else {}
    parts = [
        "# Measured results\n",
        f"Generated by `{command}` (`bench/run_all.py`); every number below is printed by the "
        "script named in its section, which says when it ran (`--only NAME` re-runs one "
        "section). Do not edit by hand: re-run the command.\n",
        f"Machine: {machine()}.\n",
    ]
    total = time.perf_counter()
    for name, title, full, quick, markdown in BENCHES:
        if args.only and name not in args.only:
            if title in kept:
                parts.append(kept[title])
            continue
        path = script(name)
        argv = [sys.executable, str(path.relative_to(REPO)), *(quick if args.quick else full)]
        if name in PLOTTING:
            # Their plots go to docs/results/ (or results_quick/), beside the markdown.
            argv += ["--plots", str(out.with_suffix("").relative_to(REPO))]
        shown = " ".join([".venv/bin/python", *argv[1:]])
        print(f"== {shown}", flush=True)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        stdout, stderr, code, peak = run_measured(argv)
        # A bench that measures stages resets the kernel's peak; it prints the whole run's.
        peak = max(peak, run_peak(stdout) or 0.0)
        seconds = time.perf_counter() - t0
        print(stdout[-2000:], flush=True)
        body = stdout.strip() if markdown else f"```\n{stdout.strip()}\n```"
        if code:
            body += f"\n\n**Failed (exit {code}):**\n\n```\n{stderr[-3000:]}\n```"
        parts.append(
            f"## {title}\n\n`{shown}`: {seconds:.0f} s, peak resident memory "
            f"{peak:.1f} GiB, run {started:%Y-%m-%d %H:%M} UTC.\n\n{body}\n"
        )
    print(f"benches run: {time.perf_counter() - total:.0f} s")
    out.write_text("\n".join(parts))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
