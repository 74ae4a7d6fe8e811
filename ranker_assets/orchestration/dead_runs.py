"""Runs whose process died: marked failed, and their pool slots freed.

A Dagster run killed with SIGKILL (OOM, `kill -9`, a closed laptop) stays STARTED for good and
keeps the slot it claimed in its pool (`spark`, `training`, one slot each), so every later step
of that pool would wait forever; marking the run failed does not free the slot either. Every
run of this code location records which process executes it (`PROCESS_TAG`, set by
`watched_in_process_executor` or by the in-process callers). Whoever can notice reaps:

- every running run, every 10 s, through `SlotWatch` (so a waiting step frees itself within
  seconds, without a daemon: `dagster asset materialize`, `ranker-assets backfill`, `make demo`),
  which also says in the waiting run's log which run holds its slot and how to free it;
- the `dead_runs` sensor under the daemon, every minute, even when nothing waits;
- `ranker-assets free-slots [RUN_ID]`, by hand.

Only processes of this host are judged; another host's run is freed by naming it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    _core_in_process_executor_creation,
)
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.executor.in_process import InProcessExecutor

from ranker_assets.infra.processes import identity_alive, process_identity

PROCESS_TAG = "ranker/process"  # host:pid:start of the process executing the run
WATCH_SECONDS = 10.0
ACTIVE = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


@dataclass(frozen=True)
class Reaped:
    run_id: str
    why: str


def _free(instance: dg.DagsterInstance, run: dg.DagsterRun, why: str) -> Reaped:
    if run.status in ACTIVE or run.status == dg.DagsterRunStatus.STARTING:
        instance.report_run_failed(run, message=why)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return Reaped(run.run_id, why)


def reap_dead_runs(instance: dg.DagsterInstance) -> list[Reaped]:
    """Fail the active runs whose recorded process is gone, and free every pool slot held by a
    run that is over (whatever ended it)."""
    reaped = []
    for run in instance.get_runs(dg.RunsFilter(statuses=list(ACTIVE))):
        identity = run.tags.get(PROCESS_TAG)
        if identity and identity_alive(identity) is False:
            why = f"its process {identity} died (killed or out of memory) while the run was active"
            reaped.append(_free(instance, run, why))
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return reaped
    done = {r.run_id for r in reaped}
    for pool in storage.get_concurrency_keys():
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            if slot.run_id in done:
                continue
            run = instance.get_run_by_id(slot.run_id)
            if run is None or run.is_finished:
                state = "no longer exists" if run is None else f"is {run.status.value}"
                storage.free_concurrency_slots_for_run(slot.run_id)
                reaped.append(Reaped(slot.run_id, f"the run {state} but still held a slot"))
                done.add(slot.run_id)
    return reaped


def free_slots(instance: dg.DagsterInstance, run_id: str) -> Reaped:
    """By hand: fail run `run_id` if it is still active and free its slots (for a run of another
    host whose process is known to be gone)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        return Reaped(run_id, "no such run; its slots were freed")
    return _free(instance, run, "freed by hand (ranker-assets free-slots)")


def holders_of_waited_pools(instance: dg.DagsterInstance, identity: str) -> list[str]:
    """For each step of a run of process `identity` waiting on a pool: which run holds the pool's
    slots, whether its process lives, and how to free it."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    lines = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        waiting = [
            p
            for p in info.pending_steps
            if p.assigned_timestamp is None
            and (run := instance.get_run_by_id(p.run_id)) is not None
            and run.tags.get(PROCESS_TAG) == identity
        ]
        for step in waiting:
            for slot in info.claimed_slots:
                holder = instance.get_run_by_id(slot.run_id)
                who = holder.tags.get(PROCESS_TAG, "unknown") if holder else "unknown"
                state = {True: "alive", False: "dead", None: "on another host"}[
                    identity_alive(who) if holder and who != "unknown" else None
                ]
                lines.append(
                    f"step {step.step_key} of run {step.run_id} waits for pool `{pool}` "
                    f"(limit {info.limit}): its slot is held by run {slot.run_id} step "
                    f"{slot.step_key}, process {who} ({state}). It is freed when that run ends; "
                    f"a dead process of this host is reaped within {WATCH_SECONDS:.0f} s; "
                    f"otherwise: `ranker-assets free-slots {slot.run_id}`"
                )
    return lines


class SlotWatch:
    """While a run executes: every `interval` seconds reap dead runs, and tell the log of a run
    of this process that waits on a pool who holds it (once per holder)."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        identity: str,
        run: dg.DagsterRun | None = None,
        interval: float = WATCH_SECONDS,
    ) -> None:
        self.instance, self.identity, self.run, self.interval = instance, identity, run, interval
        self._stop = threading.Event()
        self._told: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="slot-watch", daemon=True)

    def __enter__(self) -> SlotWatch:
        self.check()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as err:  # a storage hiccup must not kill the run it watches
                self._say(f"slot watch: {type(err).__name__}: {err}")

    def _say(self, message: str) -> None:
        if self.run is not None:
            self.instance.report_engine_event(message, self.run)
        else:
            print(message, flush=True)

    def check(self) -> None:
        for r in reap_dead_runs(self.instance):
            self._say(f"reaped run {r.run_id}: {r.why}; its pool slots are free")
        for line in holders_of_waited_pools(self.instance, self.identity):
            if line not in self._told:
                self._told.add(line)
                self._say(line)


def watched_execute_in_process(
    job: dg.JobDefinition, instance: dg.DagsterInstance, **kwargs: object
) -> dg.ExecuteInProcessResult:
    """`job.execute_in_process` (which always uses Dagster's own in-process executor) with this
    process recorded on the run and a `SlotWatch` around it."""
    identity = process_identity()
    tags = {**(kwargs.pop("tags", None) or {}), PROCESS_TAG: identity}  # type: ignore[dict-item]
    with SlotWatch(instance, identity):
        return job.execute_in_process(instance=instance, tags=tags, **kwargs)  # type: ignore[arg-type]


class WatchedInProcessExecutor(InProcessExecutor):
    """Dagster's in-process executor, recording its process on the run and watching the pools."""

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        instance, run = plan_context.instance, plan_context.dagster_run
        identity = process_identity()
        instance.add_run_tags(run.run_id, {PROCESS_TAG: identity})
        with SlotWatch(instance, identity, run):
            yield from super().execute(plan_context, execution_plan)


@dg.executor(name="in_process", config_schema=IN_PROC_CONFIG)
def watched_in_process_executor(init_context: dg.InitExecutorContext) -> WatchedInProcessExecutor:
    """The in-process executor (Spark steps share one JVM per process on a small machine) that
    frees the pool slots of dead runs."""
    base = _core_in_process_executor_creation(init_context.executor_config)
    return WatchedInProcessExecutor(
        retries=base.retries, step_dependency_config=base.step_dependency_config
    )


@dg.sensor(
    name="dead_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails runs whose process died and frees their pool slots (no runs requested).",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance)
    for r in reaped:
        context.log.warning(f"reaped run {r.run_id}: {r.why}")
    return dg.SkipReason(
        "; ".join(f"reaped {r.run_id}: {r.why}" for r in reaped) or "no dead runs hold a slot"
    )
