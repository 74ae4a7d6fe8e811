"""The automation conditions, evaluated at chosen times the way the sensor evaluates them."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import dagster as dg
import pytest

from ranker_assets.config import load_config
from ranker_assets.definitions import build_definitions
from ranker_assets.entrypoints.backfill import backfill, backfill_plan
from ranker_assets.logs.landing import day_files, day_fingerprints
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.orchestration.assets.observations import observe_in_process
from ranker_assets.orchestration.automation import STAGES
from ranker_assets.orchestration.resources import LakeResource, LandingResource, MlflowResource
from ranker_assets_tests.conftest import SEED, START, small_config

pytestmark = pytest.mark.spark
D1, D2, D3 = (str(START + timedelta(days=i)) for i in range(3))
NOW = datetime(2026, 11, 4, 8, tzinfo=UTC)  # D1..D3 are over


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("automation")
    shutil.copytree(load_config().sampling.configs_path, root / "sampling")
    base = small_config()
    cfg = base.model_copy(
        update={
            "sampling": base.sampling.model_copy(update={"configs_dir": str(root / "sampling")})
        }
    )
    # Three days of traffic (late events reach the two days after): the world's newest day
    # is D3, the day before NOW, as on a live system.
    simulate_to_landing(cfg.world, cfg.logging, root / "landing", START, 3, 600, SEED)
    resources = {
        "lake": LakeResource(root=str(root / "lake")),
        "landing": LandingResource(path=str(root / "landing")),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{root / 'mlflow.db'}"),
    }
    defs = build_definitions(cfg, resources)
    with dg.instance_for_test() as instance:
        yield defs, instance, root / "landing"


def _requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, set[str]]:
    """Requested partitions per asset, for the assets that got any."""
    out = {}
    for asset in STAGES:
        keys = result.get_requested_partitions(dg.AssetKey(asset))
        if keys:
            out[asset] = {str(k) for k in keys}
    return out


def _materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, requested: dict, must_pass: bool = True
) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    for asset, keys in requested.items():
        for key in sorted(keys):
            result = job.execute_in_process(
                instance=instance,
                partition_key=key,
                asset_selection=[dg.AssetKey(asset)],
                raise_on_error=False,
            )
            assert result.success or not must_pass, (asset, key)


def test_the_sensors_are_declared_and_running_by_default(graph) -> None:
    defs, _, _ = graph
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"ranker_automation", "observe_sources", "dead_runs"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    # Their intervals come from the config's cadence (defaults: 60 s and 30 s).
    assert sensors["observe_sources"].minimum_interval_seconds == 60
    assert sensors["ranker_automation"].minimum_interval_seconds == 30
    base = load_config()
    cadence = base.cadence.model_copy(
        update={"observe_every_seconds": 7, "automate_every_seconds": 9}
    )
    quick = base.model_copy(update={"cadence": cadence})
    fast = {s.name: s.minimum_interval_seconds for s in build_definitions(quick).sensors}
    assert (fast["observe_sources"], fast["ranker_automation"]) == (7, 9)


def test_landed_days_are_ingested_once_and_joined_when_their_labels_are_mature(graph) -> None:
    defs, instance, landing = graph
    late = {str(START + timedelta(days=i)) for i in (3, 4)}  # late events only; not over yet
    assert set(day_fingerprints(landing, "event_log")) == {D1, D2, D3, *late}
    # Nothing observed yet: nothing to ingest.
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=NOW)
    assert _requested(first) == {}
    # The observe_sources sensor reports every landed day (and each sampling config) once.
    observed = observe_in_process(defs, instance, None)
    assert observe_in_process(defs, instance, observed) == observed  # nothing new: no events
    landed = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW, cursor=first.cursor
    )
    # Every landed day is ingested. Nothing is joined in the same pass: a join's run could
    # start before the runs that write its inputs.
    assert _requested(landed) == {
        "feature_log": {D1, D2, D3},
        "event_log": {D1, D2, D3},
        "sequence_log": {D1, D2, D3},
    }
    _materialize(defs, instance, _requested(landed))
    # Then D2 is joined (its next day's events are in). D3 is the newest day: its next day is
    # not over; D1 is older than the join's lookback (two days ending with the newest day of
    # traffic): a backfill's job.
    joined = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW, cursor=landed.cursor
    )
    assert _requested(joined) == {"training_examples": {D2}}
    _materialize(defs, instance, _requested(joined))
    # Sampled datasets follow the new examples (their configs were observed by the sensor).
    sampling = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW, cursor=joined.cursor
    )
    assert _requested(sampling) == {"sampled_dataset": {f"balanced|{D2}", f"legacy|{D2}"}}
    # A re-landed day gets a new version: that day alone is ingested (and joined) again.
    (path,) = day_files(landing, "feature_log", D2)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    observe_in_process(defs, instance, observed)
    relanded = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW, cursor=sampling.cursor
    )
    assert _requested(relanded) == {"feature_log": {D2}}
    _materialize(defs, instance, _requested(relanded))
    rejoined = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW, cursor=relanded.cursor
    )
    assert _requested(rejoined) == {"training_examples": {D2}}


def test_an_observing_tick_says_what_it_recorded(graph) -> None:
    """Dagster calls a tick without runs "Skipped": its reason says what was recorded."""
    defs, _, _ = graph
    (sensor,) = [s for s in defs.sensors if s.name == "observe_sources"]
    with dg.instance_for_test() as instance:
        resources = {"landing": defs.resources["landing"], "lake": defs.resources["lake"]}
        context = dg.build_sensor_context(instance=instance, resources=resources)
        first = sensor(context)
        again = sensor(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)
        )
    said = first.skip_reason.skip_message
    assert said.startswith(f"recorded {len(first.asset_events)} observation(s)")
    assert f"landing/feature_log[{D1}]" in said
    assert again.skip_reason.skip_message == "nothing changed: no observation recorded"


def test_recent_counts_from_the_newest_landed_day_not_the_wall_clock(graph) -> None:
    """Months after its days, a world is as alive as today's: the days it lands run (the
    demo's fixed days, a replayed public log)."""
    defs, _, _ = graph
    later = NOW + timedelta(days=200)
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=later
        )
        observe_in_process(defs, instance, None)
        landed = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=later, cursor=first.cursor
        )
    # (the days of late events are over by now too: they are ingested as well)
    every = {str(START + timedelta(days=i)) for i in range(5)}
    assert _requested(landed) == {
        "feature_log": {D1, D2, D3},
        "event_log": every,
        "sequence_log": {D1, D2, D3},
    }


def test_a_finished_log_is_joined_once_its_labels_are_final_by_time(tmp_path: Path) -> None:
    """With joiner.labels_final_hours set, a day whose next day never comes is joined on its
    own events once that long has passed; without it, it waits for the next day's events."""
    base = small_config()
    landing = tmp_path / "landing"
    simulate_to_landing(base.world, base.logging, landing, START, 1, 300, SEED)
    for path in day_files(landing, "event_log", D2):  # D1's late events: no next day at all
        path.unlink()
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(path=str(landing)),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
    }
    # D2 ended 32 h before: D1's labels are final if they count as final 6 h after, not 54 h.
    at = datetime(2026, 11, 4, 8, tzinfo=UTC)
    for hours, joined in ((None, False), (6.0, True), (54.0, False)):
        joiner = base.joiner.model_copy(update={"labels_final_hours": hours})
        defs = build_definitions(base.model_copy(update={"joiner": joiner}), resources)
        with dg.instance_for_test() as instance:
            first = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, evaluation_time=at
            )
            logs = ("feature_log", "event_log", "sequence_log")
            _materialize(defs, instance, {log: {D1} for log in logs})
            after = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, evaluation_time=at, cursor=first.cursor
            )
            assert ("training_examples" in _requested(after)) == joined, hours


def test_rankers_retrain_on_cadence_then_validation_and_the_deploy_gate_follow(graph) -> None:
    defs, instance, _ = graph
    before_tick = NOW.replace(hour=3)  # the daily tick is at 04:00
    # D2's window starts at D1 (the first day); until D1 is sampled too, nothing trains.
    waiting = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=NOW)
    assert "ranker_model" not in _requested(waiting)
    _materialize(defs, instance, {"training_examples": {D1}})  # as a backfill would
    _materialize(
        defs,
        instance,
        {"sampled_dataset": {f"{c}|{d}" for c in ("balanced", "legacy") for d in (D1, D2)}},
    )
    early = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=before_tick
    )
    assert "ranker_model" not in _requested(early)
    due = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW, cursor=early.cursor
    )
    assert _requested(due)["ranker_model"] == {f"balanced|{D2}", f"legacy|{D2}"}
    again = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW + timedelta(hours=1), cursor=due.cursor
    )
    assert "ranker_model" not in _requested(again)  # once per tick
    # A ranker trained through D1 is validated on D2 once D2's examples exist (they do); the
    # deploy gate waits until every sampling config's report of the day exists.
    _materialize(defs, instance, {"ranker_model": {f"legacy|{D1}"}})
    one = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW + timedelta(hours=2), cursor=again.cursor
    )
    assert _requested(one).get("validation_report") == {f"legacy|{D2}"}
    # Tiny days train weak rankers: the gates may fail; the report exists either way.
    _materialize(defs, instance, {"validation_report": {f"legacy|{D2}"}}, must_pass=False)
    waiting = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=NOW + timedelta(hours=2), cursor=one.cursor
    )
    assert "deployed_ranker" not in _requested(waiting)  # balanced's report is missing
    _materialize(defs, instance, {"ranker_model": {f"balanced|{D1}"}})
    _materialize(defs, instance, {"validation_report": {f"balanced|{D2}"}}, must_pass=False)
    ready = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        evaluation_time=NOW + timedelta(hours=2),
        cursor=waiting.cursor,
    )
    assert _requested(ready).get("deployed_ranker") == {D2}


def test_a_champion_whose_data_aged_past_the_cadence_triggers_one_retrain(graph) -> None:
    defs, instance, _ = graph
    later = NOW + timedelta(hours=3)  # no cadence tick between these evaluations
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=later)
    assert "ranker_model" not in _requested(first)
    # The serving model's data age is checked against the newest landed day. With no champion
    # (tiny days' rankers failed their gates) or one older than the cadence allows, it fails.
    check = dg.AssetCheckKey(dg.AssetKey("deployed_ranker"), "champion_data_age")
    cfg = small_config()
    aged = build_definitions(
        cfg.model_copy(update={"cadence": cfg.cadence.model_copy(update={"model_warn_hours": 0})}),
        dict(defs.resources),
    )
    aged_job = aged.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={check}
    )
    (evaluation,) = aged_job.execute_in_process(instance=instance).get_asset_check_evaluations()
    assert not evaluation.passed
    due = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=later, cursor=first.cursor
    )
    assert _requested(due).get("ranker_model") == {f"balanced|{D2}", f"legacy|{D2}"}
    # Acted on once: still failing at the next tick, nothing more is requested...
    again = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=later, cursor=due.cursor
    )
    assert "ranker_model" not in _requested(again)


def test_a_backfill_runs_upstream_first_skips_unready_days_and_is_idempotent(
    tmp_path: Path,
) -> None:
    base = small_config()
    shutil.copytree(load_config().sampling.configs_path, tmp_path / "sampling")
    cfg = base.model_copy(
        update={
            "sampling": base.sampling.model_copy(update={"configs_dir": str(tmp_path / "sampling")})
        }
    )
    simulate_to_landing(cfg.world, cfg.logging, tmp_path / "landing", START, 2, 500, SEED)
    lake = LakeResource(root=str(tmp_path / "lake"))
    defs = build_definitions(
        cfg,
        {
            "lake": lake,
            "landing": LandingResource(path=str(tmp_path / "landing")),
            "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        },
    )
    select = ("feature_log", "event_log", "sequence_log", "training_examples", "sampled_dataset")
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        days = (START, START + timedelta(days=1))
        run = partial(backfill, defs, instance, cfg, lake.lake(), *days, select, ["legacy"])
        first = run(lines.append)
        tables = {
            t: lake.lake().read(t).num_rows
            for t in ("feature_log", "training_examples", "sampled_dataset")
        }
        again = run(lines.append)
        assert {t: lake.lake().read(t).num_rows for t in tables} == tables  # idempotent
    # D2's labels need D3's events, which never landed: skipped with the reason, not failed.
    assert first.failed == [] and again.failed == []
    assert first.outcomes[("training_examples", "ok")] == 1
    assert first.skipped[0].startswith(f"training_examples {D2}: labels of {D2} are not mature")
    assert (
        any(f"sampled_dataset legacy|{D2}" in s for s in first.skipped)
        or first.outcomes[("sampled_dataset", "failed")] == 0
    )
    assert lines[0].startswith("[1/10] feature_log 2026-11-01: ok")
    assert "training_examples" in first.table()
    assert first.ok

    with dg.instance_for_test() as instance:
        # A validation day whose ranker was never trained is skipped with the reason (a config
        # whose history starts a day earlier, so D1 is not its first day).
        earlier = cfg.model_copy(update={"start_date": str(START - timedelta(days=1))})
        check = backfill(
            defs, instance, earlier, lake.lake(), START, START, ["validation_report"], ["legacy"]
        )
        (skip,) = check.skipped
        assert skip.startswith(f"validation_report legacy|{D1}: no ranker_model[legacy|")
        assert "never materialized" in skip
        # A day blocked by a check stops what reads it, and the backfill is not ok.
        bad = day_files(tmp_path / "landing", "event_log", D1)[0].parent / "zz-broken.jsonl"
        bad.write_text(
            "\n".join(json.dumps({"event_id": f"b{i}", "event_type": "click"}) for i in range(3000))
        )
        blocked = backfill(
            defs, instance, cfg, lake.lake(), START, START, ["event_log", "training_examples"]
        )
        assert blocked.blocked[0].startswith(f"event_log {D1}: ")
        (waits,) = blocked.skipped
        assert waits.startswith(f"training_examples {D1}: waits: event_log {D1} was blocked")
        assert not blocked.ok


def test_a_backfill_advances_the_model_chain_day_by_day() -> None:
    """Validate E, decide E, then validate E+1 against whatever serves after that decision."""
    plan = backfill_plan(("validation_report", "deployed_ranker"), [D2, D3], ["a", "b"])
    assert plan == [
        ("validation_report", D2, "a"),
        ("validation_report", D2, "b"),
        ("deployed_ranker", D2, None),
        ("validation_report", D3, "a"),
        ("validation_report", D3, "b"),
        ("deployed_ranker", D3, None),
    ]
    every = backfill_plan(STAGES, [D1, D2], ["a"])
    assert every.index(("training_examples", D1, None)) > every.index(("event_log", D2, None))
    assert every.index(("deployed_ranker", D1, None)) < every.index(("ranker_model", D2, "a"))
