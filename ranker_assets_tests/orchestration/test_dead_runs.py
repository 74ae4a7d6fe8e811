"""A step killed with SIGKILL does not block its pool: the real Joiner under
`dagster asset materialize`, killed while it holds the `spark` slot, is failed and freed by the
daemon's `dead_runs` sensor; a step that waits on a slot says who holds it, and goes on by
itself once the holder's process dies (no daemon)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from ranker_assets.entrypoints.local_dagster import ranker_home_with_history
from ranker_assets.infra.processes import process_identity
from ranker_assets.orchestration.dead_runs import PROCESS_TAG, dead_runs_sensor

pytestmark = pytest.mark.spark
FIRST = date(2026, 11, 1)
DS = str(FIRST)
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two landed days of 600 requests, ingested; the Joiner of the first day can run."""
    root = tmp_path_factory.mktemp("dead_runs")
    overrides = {"world": {"n_users": 2000, "n_pins": 5000}}
    return ranker_home_with_history(
        root, FIRST, 2, 600, 3, overrides, stages=("feature_log", "event_log", "sequence_log")
    )


def _materialize(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    dagster = str(Path(sys.executable).parent / "dagster")
    args = [dagster, "asset", "materialize", "-m", "ranker_assets.definitions"]
    with log.open("w") as out:
        return subprocess.Popen(
            [*args, "--select", "training_examples", "--partition", DS],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _until(what: str, ready: Callable[[], object], proc: subprocess.Popen[bytes]) -> object:
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT_S:
        value = ready()
        if value:
            return value
        assert proc.poll() is None, f"{what}: the materialize process exited first"
        time.sleep(0.5)
    raise TimeoutError(what)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """What is left of a killed step (its JVM) goes too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _holders(instance: dg.DagsterInstance) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info("spark")
    return {s.run_id for s in info.claimed_slots}


def _new_run(instance: dg.DagsterInstance, known: set[str]) -> str | None:
    runs = [r.run_id for r in instance.get_runs() if r.run_id not in known]
    return runs[0] if runs else None


def test_a_killed_step_is_failed_and_its_pool_slot_freed(home, tmp_path: Path) -> None:
    instance = dg.DagsterInstance.from_config(home["DAGSTER_HOME"])
    known = {r.run_id for r in instance.get_runs()}

    # 1. The real Joiner, killed -9 while it holds the spark slot: the daemon's sensor frees it.
    killed = _materialize(home, tmp_path / "killed.log")
    run_id = _until("the Joiner's run", lambda: _new_run(instance, known), killed)
    _until("the Joiner holding the spark slot", lambda: run_id in _holders(instance), killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
    assert run_id in _holders(instance)
    skip = dead_runs_sensor(dg.build_sensor_context(instance=instance))
    assert f"reaped {run_id}" in skip.skip_message
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert run_id not in _holders(instance)
    _kill_group(killed)

    # 2. A live process holds the slot: the next step waits and says who holds it; once that
    # process is killed, the waiting run reaps it by itself and completes.
    sleeper = subprocess.Popen(["sleep", "600"])
    holder = dg.DagsterRun(
        job_name="__ASSET_JOB",
        run_id="holder-run",
        status=dg.DagsterRunStatus.STARTED,
        tags={PROCESS_TAG: process_identity(sleeper.pid)},
    )
    instance.add_run(holder)
    instance.event_log_storage.claim_concurrency_slot("spark", holder.run_id, "holder_step")
    known = {r.run_id for r in instance.get_runs()}
    waiting = _materialize(home, tmp_path / "waiting.log")
    try:
        waiter = _until("the waiting run", lambda: _new_run(instance, known), waiting)

        def told() -> list[str]:
            return [
                e.message
                for e in instance.all_logs(waiter)
                if "waits for pool `spark`" in (e.message or "")
            ]

        (message, *_) = _until("the waiting step's message", told, waiting)
        assert f"held by run {holder.run_id} step holder_step" in message
        assert "(alive)" in message and f"ranker-assets free-slots {holder.run_id}" in message
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        assert waiting.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "waiting.log").read_text()[-3000:]
    finally:
        sleeper.kill()
        _kill_group(waiting)
    assert instance.get_run_by_id(holder.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(waiter).status == dg.DagsterRunStatus.SUCCESS
    reaped = [e.message for e in instance.all_logs(waiter) if "reaped run holder-run" in e.message]
    assert reaped, "the waiting run did not say it reaped the dead holder"
