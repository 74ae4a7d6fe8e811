"""What runs by itself, and when: the automation conditions of the graph, and their sensor.

Each condition is named for the rule it encodes, so the Automation page and the tests read
like this module. Landed days and sampling configs get new data versions from the
`observe_sources` sensor (assets/observations.py). Then: a changed or new landed day is
ingested; a day is joined once its labels are mature (its next day's events are ingested);
sampled datasets follow new training examples and edited sampling configs; the newest rankers
retrain on the configured cadence, or once when the serving model's data has aged past the
cadence (the `champion_data_age` check fails) or their own freshness fails; a new ranker is
validated once the next day's examples exist; and the deploy gate decides once every config's
report for the day exists.

Shared rules: a partition runs once per upstream change (`since_last_handled`), never while it
or an upstream partition is running, never while an upstream partition is missing, and only
for recent days, so re-running an old upstream day does not cascade through history. Recent
counts back from the newest landed day, not from the wall clock (`NearNewestLanded`): a world
whose days are old (the demo's, a replayed public log) is as alive as today's traffic, and a day
landed after it runs on any date.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

# `AutomationCondition.asset_matches` takes asset keys only; its operator also takes check keys.
from dagster._core.definitions.declarative_automation.operators.dep_operators import (
    EntityMatchesCondition,
)

from ranker_assets.config import CadenceConfig, RankerConfig

AC = dg.AutomationCondition
# The graph's automated assets, upstream first (the order a tick's requests run in).
STAGES = (
    "feature_log",
    "event_log",
    "sequence_log",  # only for a ranker whose features declare a sequence
    "training_examples",
    "sampled_dataset",
    "ranker_model",
    "validation_report",
    "deployed_ranker",
)


def stages(cfg: RankerConfig) -> tuple[str, ...]:
    """The stages this ranker has (a ranker without a sequence has no sequence log)."""
    return tuple(s for s in STAGES if s != "sequence_log" or cfg.features.sequence is not None)


# Landing zones get late uploads and re-landed days: a week of days is watched for changes.
INGEST_LOOKBACK = timedelta(days=7)
# A day is joined when its next day's events arrive, so the joinable day is two days back.
JOIN_LOOKBACK = timedelta(days=2)
# A day's traffic is its feature log; event folders run ahead of it (late client events).
LANDED = dg.AssetKey(["landing", "feature_log"])


def newest_landed_day(instance: dg.DagsterInstance, days: Sequence[str]) -> str | None:
    """The newest of `days` whose traffic (feature log) was observed in the landing zone
    (by the observe_sources sensor, or a backfill or the demo observing in-process) or
    ingested (a day materialized by hand was landed too)."""
    storage = instance.event_log_storage
    landed = storage.get_updated_data_version_partitions(LANDED, days, -1)
    ingested = instance.get_materialized_partitions(dg.AssetKey("feature_log"))
    return max((landed | ingested) & set(days), default=None)


class NearNewestLanded(dg.AutomationCondition):
    """True for the `lookback` days of partitions that end with the newest landed day of
    traffic (and, with `after`, the days after it, which only late events reach).

    Dagster's `in_latest_time_window` counts from the wall clock, so a world whose newest day
    is older than the lookback (the demo's fixed days, a public log) would never run again.
    Evaluated in the code server (the automation sensor has `use_user_code_server`).
    """

    def __init__(self, lookback: timedelta, after: bool = True) -> None:
        self.lookback, self.after = lookback, after

    @property
    def requires_cursor(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return f"near_newest_landed(days={self.lookback.days}, after={self.after})"

    @property
    def description(self) -> str:
        later = " (or after it)" if self.after else ""
        return f"One of the {self.lookback.days} days ending with the newest landed day{later}"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        partitions_def = context.partitions_def
        if partitions_def is None:
            return dg.AutomationResult(context, candidates)
        keys = candidates.expensively_compute_partition_keys()
        day_of = {k: k.split("|")[-1] for k in keys}  # "config|ds" for day x config partitions
        days = context.asset_graph.get(LANDED).partitions_def.get_partition_keys(
            current_time=context.evaluation_time
        )
        newest = newest_landed_day(context.asset_graph_view.instance, days)
        if newest is None:
            return dg.AutomationResult(context, context.get_empty_subset())
        # As Dagster's lookback counts partitions: `lookback` days end with the newest one.
        first = str(date.fromisoformat(newest) - self.lookback + timedelta(days=1))
        recent = {k for k, ds in day_of.items() if ds >= first and (self.after or ds <= newest)}
        return dg.AutomationResult(
            context, candidates.compute_intersection_with_partition_keys(recent)
        )


def _deps_ready(ignore: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """Every upstream partition exists and none is requested in this tick. Dagster's own
    `any_deps_missing` counts a dep requested in the same tick as present, but a different
    partition goes to a different run, which may start first: the downstream run would read
    before its input is written."""
    pending = AC.any_deps_match(AC.missing() | AC.will_be_requested())
    return ~(pending.ignore(ignore) if ignore else pending)


def _guarded(
    lookback: timedelta, trigger: dg.AutomationCondition, ready: dg.AutomationCondition
) -> dg.AutomationCondition:
    """The shared rules: recent days only, once per trigger, inputs ready, nothing running."""
    return (
        NearNewestLanded(lookback)
        & trigger.since_last_handled()
        & ready
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    )


def _follows_upstream(label: str, lookback: timedelta) -> dg.AutomationCondition:
    return _guarded(lookback, AC.any_deps_updated(), _deps_ready()).with_label(label)


def ingest_when_landed() -> dg.AutomationCondition:
    """A landed day (new or changed files) is ingested, once, if not already running."""
    return _follows_upstream("ingest_when_landed", INGEST_LOOKBACK)


def labels_mature(final_hours: float | None = None) -> dg.AutomationCondition:
    """A day is joined once its features and the events of the day and the next are ingested.

    The Joiner's dependency on event_log[D+1] blocks it while that day is missing; the newest
    day is never joined, since its next day is not over: neither the wall clock's newest
    partition nor the newest day of landed traffic (an old world's next day may hold only
    late events of it). With `joiner.labels_final_hours` set (a finished log has no next day),
    a day whose next day ended that long ago is joined on its own events; partitions roll
    daily, so the wait is rounded up to whole days (the Joiner re-checks the exact hours when
    it runs).
    """
    ready = _deps_ready() & ~NearNewestLanded(timedelta(days=1), after=False)
    lookback = JOIN_LOOKBACK
    if final_hours is not None:
        days_after = math.ceil(final_hours / 24)
        events = dg.AssetSelection.assets("event_log")
        final = ~AC.in_latest_time_window(timedelta(days=1 + days_after))
        ready = ready | (
            final & _deps_ready(ignore=events) & AC.any_deps_match(~AC.missing()).allow(events)
        )
        lookback = max(lookback, timedelta(days=2 + days_after))
    return (
        _guarded(lookback, AC.any_deps_updated(), ready) & ~AC.in_latest_time_window()
    ).with_label("labels_mature")


def sample_when_examples_or_config_change() -> dg.AutomationCondition:
    """A (day, config) is sampled when its training examples or its sampling config change."""
    return _follows_upstream("sample_when_examples_or_config_change", JOIN_LOOKBACK)


# The serving model's data age, measured against the newest landed day (deployed_rankers.py).
CHAMPION_AGE = dg.AssetCheckKey(dg.AssetKey("deployed_ranker"), "champion_data_age")


def retrain_on_cadence(cron: str) -> dg.AutomationCondition:
    """The newest rankers (every sampling config) retrain once per cadence tick, or when the
    serving model's data newly ages past the cadence (its `champion_data_age` check fails) or
    their own freshness newly fails, as soon as their whole window is sampled."""
    champion_aged = EntityMatchesCondition(key=CHAMPION_AGE, operand=AC.check_failed()).newly_true()
    due = AC.cron_tick_passed(cron) | champion_aged | AC.freshness_failed().newly_true()
    return _guarded(JOIN_LOOKBACK, due, _deps_ready()).with_label("retrain_on_cadence")


def validate_new_ranker() -> dg.AutomationCondition:
    """A ranker is validated once it and the next day's training examples exist (again when
    either changes). The first day has no ranker before it: nothing to validate."""
    has_ranker = AC.any_deps_match(~AC.missing()).allow(dg.AssetSelection.assets("ranker_model"))
    return (_follows_upstream("validate_new_ranker", JOIN_LOOKBACK) & has_ranker).with_label(
        "validate_new_ranker"
    )


def deploy_after_validation() -> dg.AutomationCondition:
    """The deploy gate decides once every sampling config's report for the day exists (again
    when one changes). It promotes only reports whose blocking gates all passed, and records
    a rejection otherwise, so a failed gate leaves the champion where it is."""
    return _follows_upstream("deploy_after_validation", JOIN_LOOKBACK)


def check_champion_age() -> dg.AutomationCondition:
    """The serving model's data age is re-checked after each deploy decision (every landed day
    that reaches the gate ends in one) and once a day for days that never reach it: one run a
    day at rest, not one every few minutes."""
    return (AC.cron_tick_passed("0 5 * * *") | AC.any_deps_updated()).with_label(
        "check_champion_age"
    )


def automation_sensor(cadence: CadenceConfig) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the conditions every `cadence.automate_every_seconds`; RUNNING as soon as the
    code location loads."""
    return dg.AutomationConditionSensorDefinition(
        "ranker_automation",
        target=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        # NearNewestLanded is Python of this code location: evaluate it where the code lives.
        use_user_code_server=True,
        minimum_interval_seconds=cadence.automate_every_seconds,
        description=(
            "Runs the graph's automation conditions (ranker_assets/orchestration/automation.py)."
        ),
    )
