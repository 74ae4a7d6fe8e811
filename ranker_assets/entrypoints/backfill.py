"""Backfills: any day range, any selection of stages, in-process, in dependency order.

Every partition runs as its own Dagster run in the instance (so the UI shows each), in the
order the daemon would reach them: a partition runs as soon as the newest day it needs has
landed, so the model chain advances day by day (validate E, decide E, then validate E+1
against whatever serves after that decision). A partition whose inputs cannot be ready is
skipped with the reason instead of failing after Spark has started: a day whose labels are not
mature (no next day's events, and not final by `joiner.labels_final_hours`), a validation day
with no ranker before it, a partition whose upstream failed or was blocked by a check in this
backfill. Every asset replaces its partition, so running the same backfill twice leaves the
same tables.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from ranker_assets.config import RankerConfig
from ranker_assets.evaluation.report import VALIDATION_TABLE
from ranker_assets.evaluation.rows import training_day
from ranker_assets.infra.lake import Lake
from ranker_assets.joining.joiner import label_days, next_day
from ranker_assets.orchestration.assets.observations import observe_in_process
from ranker_assets.orchestration.automation import STAGES, stages
from ranker_assets.orchestration.dead_runs import watched_execute_in_process
from ranker_assets.sampling.run import SAMPLED_TABLE
from ranker_assets.training.pipeline import window_days

DAILY = ("feature_log", "event_log", "sequence_log", "training_examples", "deployed_ranker")


@dataclass
class BackfillSummary:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, outcome)
    skipped: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # materialized, but a blocking check failed
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed and no data was blocked (a validation report whose gates failed is a
        decision, not a problem)."""
        return not self.failed and not any(
            not b.startswith("validation_report ") for b in self.blocked
        )

    def table(self) -> str:
        stages = list(dict.fromkeys(s for s, _ in self.outcomes))
        kinds = ("ok", "skipped", "blocked", "failed")
        lines = [f"{'stage':<18}" + "".join(f"{k:>9}" for k in kinds)]
        for s in stages:
            lines.append(f"{s:<18}" + "".join(f"{self.outcomes[(s, k)]:>9}" for k in kinds))
        return "\n".join(lines)


# Per stage: how many days after its partition's day the newest data it needs lands, and its
# place among stages that become ready on the same day.
_READY_AFTER = {
    "feature_log": (0, 0),
    "event_log": (0, 1),
    "sequence_log": (0, 1),
    "training_examples": (1, 2),  # labels: the next day's events
    "sampled_dataset": (1, 3),
    "ranker_model": (1, 4),
    "validation_report": (1, 5),  # the examples of its (evaluation) day
    "deployed_ranker": (1, 6),
}


def _order(stage: str, ds: str) -> tuple[str, int]:
    days, rank = _READY_AFTER[stage]
    return str(date.fromisoformat(ds) + timedelta(days=days)), rank


def _key(ds: str, config: str | None) -> str:
    return ds if config is None else f"{config}|{ds}"


def _upstream(
    cfg: RankerConfig, stage: str, ds: str, config: str | None, configs: Sequence[str]
) -> list[tuple[str, str]]:
    """The (stage, partition key) a partition reads."""
    if stage == "training_examples":
        logs = [("feature_log", ds), ("event_log", ds), ("event_log", next_day(ds))]
        return logs + ([("sequence_log", ds)] if cfg.features.sequence else [])
    if stage == "sampled_dataset":
        return [("training_examples", ds)]
    if stage == "ranker_model":
        window = window_days(ds, cfg.model.window_days, cfg.start_date)
        return [("sampled_dataset", _key(d, config)) for d in window]
    if stage == "validation_report":
        return [("ranker_model", _key(training_day(ds), config)), ("training_examples", ds)]
    if stage == "deployed_ranker":
        return [("validation_report", _key(ds, c)) for c in configs]
    return []


def _why_not_ready(
    lake: Lake,
    instance: dg.DagsterInstance,
    cfg: RankerConfig,
    stage: str,
    ds: str,
    config: str | None,
) -> str | None:
    """Why a partition of `stage` for day `ds` (and sampling config) cannot run yet."""
    if stage == "training_examples":
        if not lake.has_data("feature_log", ds):
            return f"no feature_log rows for {ds}"
        if label_days(lake, ds, cfg.joiner, cfg.timezone) is None:
            return f"labels of {ds} are not mature: event_log[{next_day(ds)}] is not ingested"
    if stage in ("sampled_dataset", "validation_report") and not lake.has_data(
        "training_examples", ds
    ):
        return f"no training_examples for {ds}"
    if stage == "ranker_model":
        window = window_days(ds, cfg.model.window_days, cfg.start_date)
        missing = [d for d in window if not lake.has_data(SAMPLED_TABLE, d, config=config or "")]
        if missing:
            return f"the window is missing the sampled datasets of {missing}"
    if stage in ("validation_report", "deployed_ranker") and ds <= cfg.start_date:
        return f"{ds} is the first day: no ranker was trained before it"
    if stage == "validation_report":
        model = _key(training_day(ds), config)
        if model not in instance.get_materialized_partitions(dg.AssetKey("ranker_model")):
            return (
                f"no ranker_model[{model}] to validate: it was never materialized (its window "
                "was not sampled, or data validation blocked it: see its run)"
            )
    if stage == "deployed_ranker" and not lake.has_data(VALIDATION_TABLE, training_day(ds)):
        return f"no validation_report validated on {ds}"
    return None


def _blocked_by_checks(result: dg.ExecuteInProcessResult) -> bool:
    """The run failed only because blocking checks failed: the asset itself was materialized
    (a validation report whose gates failed is a decision, not a broken pipeline)."""
    failures = result.get_step_failure_events()
    return bool(failures) and all(
        f.event_specific_data.error.cls_name == "DagsterAssetCheckFailedError" for f in failures
    )


def _gates_failed(result: dg.ExecuteInProcessResult, stage: str) -> str | None:
    """The verdict of a validation report whose gates failed (its run succeeds: the failed
    gates are WARN checks, a decision the deploy gate reads)."""
    if stage != "validation_report" or not result.success:
        return None
    mats = result.asset_materializations_for_node(stage)
    passed = mats[0].metadata.get("passed") if mats else None
    if passed is None or passed.value:
        return None
    return str(mats[0].metadata["verdict"].value)


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """What a failed run raised, on one line (the cause, not Dagster's wrapper)."""
    failures = result.get_step_failure_events()
    if not failures:
        return "the run failed"
    error = failures[0].event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return " ".join(line.strip() for line in error.message.strip().splitlines())


def backfill_plan(
    select: Sequence[str], days: Sequence[str], configs: Sequence[str]
) -> list[tuple[str, str, str | None]]:
    """(stage, day, sampling config or None) in the order the daemon would reach them."""
    return sorted(
        (
            (stage, ds, None if stage in DAILY else c)
            for stage in STAGES
            if stage in select
            for ds in days
            for c in ([None] if stage in DAILY else configs)
        ),
        key=lambda item: (*_order(item[0], item[1]), item[2] or ""),
    )


def backfill(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cfg: RankerConfig,
    lake: Lake,
    first: date,
    last: date,
    select: Sequence[str] = STAGES,
    configs: Sequence[str] | None = None,
    say: Callable[[str], None] = print,
) -> BackfillSummary:
    """Materialize `select` for every day of first..last (and every sampling config)."""
    unknown = set(select) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; choose from {list(STAGES)}")
    select = [s for s in select if s in stages(cfg)]
    job = defs.resolve_implicit_global_asset_job_def()
    days = [str(first + timedelta(days=i)) for i in range((last - first).days + 1)]
    names = list(
        configs
        or defs.get_assets_def("sampled_dataset")
        .partitions_def.get_partitions_def_for_dimension("config")
        .get_partition_keys()
    )
    plan = backfill_plan(select, days, names)
    summary = BackfillSummary()
    # Partitions that failed, or whose blocking checks failed, in this run: what reads them
    # waits. A validation report whose gates failed is a decision the deploy gate reads.
    broken: dict[tuple[str, str], str] = {}
    # Record the landed days' and sampling configs' data versions first, as the daemon's
    # observe_sources sensor would: the runs below consume them, and the daemon, started later,
    # does not see them as new.
    observe_in_process(defs, instance, None)
    for i, (stage, ds, config) in enumerate(plan, start=1):
        key = ds if config is None else dg.MultiPartitionKey({"ds": ds, "config": config})
        label = f"[{i}/{len(plan)}] {stage} {key}"
        reason = next(
            (
                f"waits: {up} {k} {broken[(up, k)]} in this backfill"
                for up, k in _upstream(cfg, stage, ds, config, names)
                if (up, k) in broken
            ),
            None,
        ) or _why_not_ready(lake, instance, cfg, stage, ds, config)
        if reason:
            summary.outcomes[(stage, "skipped")] += 1
            summary.skipped.append(f"{stage} {key}: {reason}")
            say(f"{label}: skipped ({reason})")
            continue
        t0 = time.perf_counter()
        result = watched_execute_in_process(
            job,
            instance,
            partition_key=key,
            asset_selection=[dg.AssetKey(stage)],
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
        verdict = _gates_failed(result, stage)
        if result.success and verdict:
            summary.outcomes[(stage, "blocked")] += 1
            summary.blocked.append(f"{stage} {key}: {verdict}")
            say(f"{label}: materialized, its gates failed ({verdict})")
        elif result.success:
            summary.outcomes[(stage, "ok")] += 1
            say(f"{label}: ok ({time.perf_counter() - t0:.1f} s)")
        elif _blocked_by_checks(result):
            why = _failure_reason(result)
            summary.outcomes[(stage, "blocked")] += 1
            summary.blocked.append(f"{stage} {key}: {why}")
            say(f"{label}: materialized, blocked by checks ({why})")
            if stage != "validation_report":
                broken[(stage, _key(ds, config))] = f"was blocked by a check ({why})"
        else:
            why = _failure_reason(result)
            broken[(stage, _key(ds, config))] = "failed"
            summary.outcomes[(stage, "failed")] += 1
            summary.failed.append(f"{stage} {key}: {why}")
            say(f"{label}: FAILED ({why}); run {result.run_id} in the UI")
    return summary
