"""`dagster dev` (webserver and daemon) for one ranker home, driven through GraphQL.

Used by the end-to-end test and the daemon benchmark: it starts the code location of this
repository on a free loopback port with its own Dagster home and environment, answers what the
instance knows (materializations, runs, sensor ticks), and stops every process it started by
its own id (the webserver, the daemon, the code server, run workers and their JVMs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

MATERIALIZATIONS = """
query($key: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { assetMaterializations(partitions: $partitions) { runId timestamp } }
  }
}"""
RUNS = """
query { runsOrError(limit: 500) { ... on Runs { results {
  runId status creationTime startTime endTime assetSelection { path } tags { key value } } } } }"""
STEPS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { stepStats { stepKey status } } } }"""
SENSOR_TICKS = """
query($name: String!) { sensorOrError(sensorSelector: {repositoryLocationName: "ranker_assets",
  repositoryName: "__repository__", sensorName: $name}) {
  ... on Sensor { sensorState { ticks(limit: 1) { status } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def run_assets(run: dict[str, Any]) -> list[str]:
    return [a["path"][-1] for a in run["assetSelection"] or []]


class LocalDagster:
    """`dagster dev -w workspace.yaml` on 127.0.0.1 with `env` (RANKER_HOME, DAGSTER_HOME...)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalDagster:
        dagster = str(Path(sys.executable).parent / "dagster")
        args = [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGKILL every process it started, children first found (dagster dev ignores TERM
        when started from a non-interactive shell)."""
        if self.proc is None:
            return
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        if "errors" in payload:
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def materializations(self, asset: str, partitions: list[str]) -> list[dict[str, Any]]:
        data = self.graphql(MATERIALIZATIONS, {"key": {"path": [asset]}, "partitions": partitions})
        return data["assetNodeOrError"].get("assetMaterializations") or []

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first."""
        runs = self.graphql(RUNS)["runsOrError"]["results"]
        return sorted(runs, key=lambda r: r["creationTime"])

    def failed_steps(self, run_id: str) -> set[str]:
        steps = self.graphql(STEPS, {"id": run_id})["runOrError"]["stepStats"]
        return {s["stepKey"] for s in steps if s["status"] == "FAILURE"}

    def ticked(self, sensor: str) -> bool:
        data = self.graphql(SENSOR_TICKS, {"name": sensor})["sensorOrError"]
        state = data.get("sensorState")
        return bool(state and state["ticks"])

    def wait_for_sensors(self, timeout_s: float) -> float:
        """Until both sensors have ticked once: a landing after that is new to them."""
        sensors = ("ranker_automation", "observe_sources")
        return self.wait(
            "the sensors' first ticks", lambda: all(self.ticked(s) for s in sensors), timeout_s
        )

    def wait(self, what: str, ready: Callable[[], object], timeout_s: float) -> float:
        """Poll `ready` every 5 s; returns the seconds waited, raises TimeoutError past
        `timeout_s` or RuntimeError if dagster dev died (with the tail of its log)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited:\n{self.log.read_text()[-3000:]}")
            with suppress(OSError):
                if ready():
                    return time.monotonic() - t0
            time.sleep(5)
        raise TimeoutError(f"{what}: not after {timeout_s:.0f} s\n{self.log.read_text()[-3000:]}")


def ranker_home_with_history(
    root: Path,
    first: date,
    days: int,
    requests: int,
    seed: int,
    overrides: dict[str, dict[str, Any]],
    configs: tuple[str, ...] = ("balanced",),
    stages: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """A ranker home under `root` whose config (the shipped one with `overrides` per section
    and only `configs` as sampling configs) starts at `first`, with `days` simulated days landed
    and backfilled through `stages` (default: every stage) into its Dagster home. Returns the
    environment that points `dagster dev` (or the CLI) at it."""
    import dagster as dg

    from ranker_assets.config import DEFAULT_CONFIG_PATH, load_config
    from ranker_assets.definitions import build_definitions
    from ranker_assets.entrypoints.backfill import backfill
    from ranker_assets.infra.lake import Lake
    from ranker_assets.logs.simulated import simulate_to_landing
    from ranker_assets.orchestration.automation import STAGES

    sampling = root / "sampling"
    sampling.mkdir(parents=True)
    for name in configs:
        shutil.copy(DEFAULT_CONFIG_PATH.parent / "sampling" / f"{name}.yaml", sampling)
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["start_date"] = str(first)
    raw["sampling"]["configs_dir"] = str(sampling)
    for section, values in overrides.items():
        raw[section].update(values)
    # The home's own MLflow store, named in its config: never whatever MLFLOW_TRACKING_URI this
    # process holds (`mlflow.set_tracking_uri` rewrites it for the whole process).
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{root / 'mlflow.db'}"
    config = root / "ranker.yaml"
    config.write_text(yaml.safe_dump(raw))
    (root / "dagster").mkdir()
    shutil.copy(REPO / "configs" / "dagster.yaml", root / "dagster" / "dagster.yaml")
    env = {
        **os.environ,
        "RANKER_HOME": str(root),
        "RANKER_CONFIG": str(config),
        "DAGSTER_HOME": str(root / "dagster"),
        "MLFLOW_TRACKING_URI": raw["mlflow"]["tracking_uri"],
    }
    cfg = load_config(config)
    simulate_to_landing(cfg.world, cfg.logging, root / "landing", first, days, requests, seed)
    saved = {k: os.environ.get(k) for k in ("RANKER_HOME", "DAGSTER_HOME")}
    os.environ.update({k: env[k] for k in saved})
    try:
        defs = build_definitions(cfg)
        with dg.DagsterInstance.get() as instance:
            summary = backfill(
                defs,
                instance,
                cfg,
                Lake(str(root / "lake")),
                first,
                first + timedelta(days=days - 1),
                stages or STAGES,
                say=lambda line: None,
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    if summary.failed:
        raise RuntimeError(f"backfilling the history failed: {summary.failed}")
    return env
