"""The deploy gate end to end (real Delta, MLflow on sqlite, trainer): what serves, and why.

One module-scoped story on a copy of the training lake, in order: a first ranker is promoted
on absolute gates; an all-clicked day is stopped by data validation (health, then shift once
accepted); shuffled clicks are trained but stopped by the gates, and the champion stays; a good
retrain is promoted over them; rollback restores the previous pair; a kill between the two
registrations leaves nothing deployable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient

from ranker_assets.config import HeadGates, ModelConfig, RankerConfig
from ranker_assets.data_validation.window import DataValidationError, validate_window
from ranker_assets.deployment.closed_loop import serving_policy
from ranker_assets.deployment.decisions import DEPLOYMENTS, Decision, deploy_day, rollback
from ranker_assets.entrypoints.cli import main
from ranker_assets.evaluation.gates import judge
from ranker_assets.evaluation.offline import ALL
from ranker_assets.evaluation.report import (
    VALIDATION_TABLE,
    ValidationReport,
    store_report,
    validate_challenger,
)
from ranker_assets.evaluation.rows import calibration_rows, randomized_slice
from ranker_assets.infra.lake import Lake
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.sampling.health import dataset_health
from ranker_assets.sampling.run import HEALTH, SAMPLED_TABLE
from ranker_assets.training.pipeline import train_partition
from ranker_assets.training.registry import NotDeployable, RankerPair, alias_pair, complete_pair
from ranker_assets.training.tracking import CHAMPION, PREVIOUS, equals_filter, raw_name
from ranker_assets.world.holdout import HoldoutScorer
from ranker_assets.world.vocabulary import CONTENT_TYPES
from ranker_assets_tests.conftest import DAYS, SEED, START, TrainingWorld

pytestmark = pytest.mark.spark
D1, D2, D3 = DAYS
TAGS = {"dagster_run_id": "test"}
HEADS = ModelConfig().heads


def _poison(lake: Lake, config: str, mutate) -> None:
    """Copy legacy's sampled D1 (clean) and D2 (mutated) to `config`; health by the real code."""
    for day in (D1, D2):
        table = lake.read(SAMPLED_TABLE, [day], config="legacy")
        if day == D2:
            table = mutate(table)
        table = table.set_column(
            table.schema.get_field_index("config"), "config", pa.array([config] * table.num_rows)
        )
        lake.replace_partition(SAMPLED_TABLE, table, {"config": config, "ds": day})
        health = dataset_health(table.to_batches(), table.to_batches(), 1.0, HEADS, CONTENT_TYPES)
        lake.replace_partition(
            HEALTH, health.to_row(config, day, "test", "poisoned"), {"config": config, "ds": day}
        )


def _all_clicked(table: pa.Table) -> pa.Table:
    clicked = np.where(table["impressed"].to_numpy(), 1, table["click"].to_numpy())
    return table.set_column(
        table.schema.get_field_index("click"), "click", pa.array(clicked.astype(np.int8))
    )


def _shuffled_clicks(table: pa.Table) -> pa.Table:
    """Clicks moved to random shown impressions: a row of weight w stands for w impressions, so
    each weight group gets its share of the clicks, and the weighted click rate stays."""
    click = np.zeros(table.num_rows, dtype=np.int8)
    weight, shown = table["weight"].to_numpy(), table["impressed"].to_numpy()
    clicks = float((weight * table["click"].to_numpy())[shown].sum())
    mass = float(weight[shown].sum())
    rng = np.random.default_rng(0)
    for w in np.unique(weight[shown]):
        rows = np.flatnonzero(shown & (weight == w))
        n = round(clicks * (w * len(rows) / mass) / w)
        click[rng.choice(rows, size=min(n, len(rows)), replace=False)] = 1
    return table.set_column(table.schema.get_field_index("click"), "click", pa.array(click))


def _clicks_to_bottom(table: pa.Table) -> pa.Table:
    """30% of the clicks moved to the lowest shown positions, within each weight group, so
    every weighted rate stays: only where the clicks sit in the slate changes."""
    click = table["click"].to_numpy().astype(np.int8).copy()
    weight, shown = table["weight"].to_numpy(), table["impressed"].to_numpy()
    position = table["position"].to_numpy()
    rng = np.random.default_rng(1)
    for w in np.unique(weight[shown]):
        group = shown & (weight == w)
        clicked = np.flatnonzero(group & (click == 1))
        moved = rng.choice(clicked, size=int(0.3 * len(clicked)), replace=False)
        free = np.flatnonzero(group & (click == 0))
        bottom = free[np.argsort(-position[free], kind="stable")][: len(moved)]
        click[moved[: len(bottom)]] = 0
        click[bottom] = 1
    return table.set_column(table.schema.get_field_index("click"), "click", pa.array(click))


@dataclass
class Story:
    cfg: RankerConfig
    lake: Lake
    client: MlflowClient
    name: str
    landing: Path
    first: ValidationReport
    decisions: dict[str, Decision] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    reports: dict[str, ValidationReport] = field(default_factory=dict)
    champions: dict[str, str] = field(default_factory=dict)


def _train_and_validate(
    story: Story, ds: str, config: str, cfg: RankerConfig | None = None
) -> ValidationReport:
    trained = train_partition(story.lake, cfg or story.cfg, ds, config, f"hash-{config}", TAGS)
    pair = complete_pair(story.client, story.name, trained.registered.version)
    report, _, _ = validate_challenger(
        story.lake,
        story.cfg,
        story.name,
        ds,
        config,
        pair,
        alias_pair(story.client, story.name),
        landing=story.landing,
    )
    store_report(story.lake, report)
    return report


@pytest.fixture(scope="module")
def story(training_world: TrainingWorld, tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("deploy")
    shutil.copytree(training_world.lake.root, root / "lake")
    base = training_world.cfg
    cfg = base.model_copy(
        update={
            "model": base.model.model_copy(update={"window_days": 1}),
            "mlflow": base.mlflow.model_copy(
                update={"tracking_uri": f"sqlite:///{root}/mlflow.db"}
            ),
            "evaluation": base.evaluation.model_copy(update={"bootstrap_samples": 100}),
            "gates": base.gates.model_copy(
                update={"serving": base.gates.serving.model_copy(update={"latency_requests": 20})}
            ),
        }
    )
    lake, name = Lake(str(root / "lake")), cfg.mlflow.registered_model
    mlflow.set_tracking_uri(cfg.mlflow.resolved_uri())
    client = MlflowClient()
    s = Story(cfg, lake, client, name, training_world.landing, first=None)  # type: ignore[arg-type]
    s.first = _train_and_validate(s, D1, "legacy")
    s.decisions["first"] = deploy_day(lake, client, name, D1, "repin")
    s.champions["after first"] = alias_pair(client, name).version

    _poison(lake, "allclicked", _all_clicked)
    with pytest.raises(DataValidationError) as health:
        train_partition(lake, cfg, D2, "allclicked", "h", TAGS)
    s.blocked["health"] = str(health.value)
    accepted = cfg.model_copy(
        update={"gates": cfg.gates.model_copy(update={"accepted_unhealthy_days": (D2,)})}
    )
    with pytest.raises(DataValidationError) as shift:
        train_partition(lake, accepted, D2, "allclicked", "h", TAGS)
    s.blocked["shift"] = str(shift.value)

    # Two poisons that keep every weighted label rate (and are accepted past health): the
    # joint-shape checks of data validation stop both before training.
    _poison(lake, "bottom", _clicks_to_bottom)
    for poison in ("bottom", "shuffled"):
        if poison == "shuffled":
            _poison(lake, "shuffled", _shuffled_clicks)
        with pytest.raises(DataValidationError) as joint:
            train_partition(lake, accepted, D2, poison, "h", TAGS)
        s.blocked[poison] = str(joint.value)
    # Once a reviewer overrides data validation too, only the gates stand between the
    # shuffled day and serving.
    overridden = accepted.model_copy(
        update={
            "gates": accepted.gates.model_copy(
                update={
                    "shift": accepted.gates.shift.model_copy(
                        update={"max_position_psi": 100.0, "max_relation_auc_drop": 1.0}
                    )
                }
            )
        }
    )
    s.reports["shuffled"] = _train_and_validate(s, D2, "shuffled", overridden)
    s.decisions["shuffled"] = deploy_day(lake, client, name, D2, "repin")
    s.champions["after shuffled"] = alias_pair(client, name).version

    s.reports["legacy"] = _train_and_validate(s, D2, "legacy")
    s.decisions["retrain"] = deploy_day(lake, client, name, D2, "repin")
    s.champions["after retrain"] = alias_pair(client, name).version
    s.decisions["rollback"] = rollback(lake, client, name)

    # A click-only ranker with a tiny holdout: too few clicks to fit Platt on.
    click_only = cfg.model_copy(
        update={
            "model": cfg.model.model_copy(update={"heads": ("click",), "holdout_share": 0.01}),
            "gates": cfg.gates.model_copy(update={"primary_head": "click"}),
        }
    )
    trained = train_partition(lake, click_only, D2, "legacy", "h", TAGS)
    pair = complete_pair(client, name, trained.registered.version)
    s.reports["click only"], _, _ = validate_challenger(
        lake, click_only, name, D2, "legacy", pair, alias_pair(client, name), s.landing
    )
    return s


def test_a_first_ranker_is_promoted_on_absolute_gates_alone(story: Story) -> None:
    report, decision = story.first, story.decisions["first"]
    assert report.passed and report.headline().startswith("PASS")
    assert "only absolute gates" in report.markdown().splitlines()[0]
    assert {g.family for g in report.gates} == {
        "absolute",
        "calibration",
        "model_sanity",
        "serving",
    }
    assert decision.action == "promote" and decision.champion_version == report.challenger.version
    assert decision.champion_raw_version == report.challenger.raw_version
    # Off-policy values on the day's randomized traffic, the simulator's truth beside them.
    assert set(report.ope["estimator"]) == {"ips", "snips", "pbm"}
    exact = report.ope[report.ope["estimator"] != "pbm"]
    assert report.ope["truth"].between(0, 3).all() and (exact["matched_rows"] > 0).all()
    # A few dozen randomized requests leave no slot with enough positives to estimate its
    # examination: PBM says so (no rows, no value) instead of guessing.
    pbm = report.ope[report.ope["estimator"] == "pbm"]
    assert ((pbm["matched_rows"] == 0) == pbm["value"].isna()).all()


def test_an_all_clicked_day_is_stopped_by_health_then_by_shift_before_training(
    story: Story,
) -> None:
    assert f"{D2}: dataset_health of 'allclicked' failed" in story.blocked["health"]
    assert "click positive ratio moved" in story.blocked["health"]
    assert f"{D2}: label click rate moved" in story.blocked["shift"]
    assert "dataset_health" not in story.blocked["shift"]  # accepted by config


def test_poisons_that_keep_label_rates_are_stopped_by_the_joint_shape(story: Story) -> None:
    assert f"{D2}: label click's positives moved across slate positions" in story.blocked["bottom"]
    assert f"{D2}: the dense features stopped predicting label click" in story.blocked["shuffled"]
    for poison in ("bottom", "shuffled"):
        assert "label click rate moved" not in story.blocked[poison]  # the rates held


def test_shuffled_clicks_train_but_fail_the_gates_and_the_champion_stays(story: Story) -> None:
    report = story.reports["shuffled"]
    assert not report.passed
    assert report.headline().startswith("FAIL (") and "no_regression" in report.headline()
    failed = {g.name for g in report.failed()}
    assert "auc click challenger - champion" in failed
    assert story.decisions["shuffled"].action == "reject"
    assert "shuffled" in story.decisions["shuffled"].reasons
    assert story.champions["after shuffled"] == story.champions["after first"]


def test_a_good_retrain_is_promoted_over_failed_challengers_and_previous_is_kept(
    story: Story,
) -> None:
    report, decision = story.reports["legacy"], story.decisions["retrain"]
    assert report.passed, report.markdown()
    assert report.champion is not None and "no_regression" in {g.family for g in report.gates}
    assert decision.action == "promote" and decision.config == "legacy"
    assert "shuffled" in decision.reasons  # why the other config lost
    assert decision.previous_version == story.champions["after first"]
    assert story.champions["after retrain"] == report.challenger.version


def test_rollback_restores_the_previous_pair_and_every_decision_is_recorded(
    story: Story,
) -> None:
    client, name = story.client, story.name
    first, retrain = story.first.challenger, story.reports["legacy"].challenger
    champion = client.get_model_version_by_alias(name, CHAMPION)
    raw_champion = client.get_model_version_by_alias(raw_name(name), CHAMPION)
    assert (str(champion.version), str(raw_champion.version)) == (first.version, first.raw_version)
    previous = client.get_model_version_by_alias(raw_name(name), PREVIOUS)
    assert str(previous.version) == retrain.raw_version
    history = story.lake.read(DEPLOYMENTS).to_pandas().sort_values("decided_at")
    assert history["action"].tolist() == ["promote", "reject", "promote", "rollback"]


def test_calibration_on_too_few_positives_falls_back_to_raw_scores_and_says_so(
    story: Story,
) -> None:
    report = story.reports["click only"]
    assert report.calibration["click"].startswith("raw: ")
    assert "held-out positives < 30" in report.calibration["click"]
    assert "click raw: " in report.markdown()
    # The served model ranks like the raw one (no constant, no reversal): its AUC is sound.
    assert report.auc("click") > 0.65
    assert all(g.passed for g in report.gates if g.family == "model_sanity")


def test_changing_a_threshold_in_config_changes_the_decision(story: Story) -> None:
    report = story.reports["legacy"]
    strict = story.cfg.gates.model_copy(update={"default": HeadGates(min_auc=0.95)})
    args = (report.metrics, {h: {"nan_share": 0.0, "score_std": 1.0} for h in report.heads})
    serving = report.serving
    assert all(g.passed for g in judge(*args, serving, story.cfg.gates, report.heads, True))
    failed = [g for g in judge(*args, serving, strict, report.heads, True) if not g.passed]
    assert {g.family for g in failed} == {"absolute"} and len(failed) == len(report.heads)


def test_a_ranker_calibrated_on_randomized_traffic_is_gated_on_the_randomized_rows(
    story: Story,
) -> None:
    assert calibration_rows(story.cfg)[1] == ALL
    model = story.cfg.model.model_copy(update={"calibrate_on": "randomized"})
    evaluation, where = calibration_rows(story.cfg.model_copy(update={"model": model}))
    assert where == "policy=randomized"
    assert [s.column for s in evaluation.slices][-1] == "policy"
    report = story.reports["legacy"]
    overall = report.metrics[report.metrics["slice"] == ALL]
    # Off on all rows (production's rate), right on the randomized ones.
    skewed = overall.assign(
        value=np.where(overall["metric"] == "calibration", 3.0, overall["value"])
    )
    metrics = pd.concat([skewed, overall.assign(slice=where)])
    sanity = {h: {"nan_share": 0.0, "score_std": 1.0} for h in report.heads}

    def calibration(metrics: pd.DataFrame, slice_: str) -> list:
        gates = judge(metrics, sanity, report.serving, story.cfg.gates, report.heads, True, slice_)
        return [g for g in gates if g.family == "calibration"]

    assert not any(g.passed for g in calibration(metrics, ALL))
    gated = calibration(metrics, where)
    assert all(g.passed and g.name.endswith(f"({where})") for g in gated)
    missing = calibration(skewed, where)
    assert all(not g.passed and g.detail == f"no rows in {where}" for g in missing)


def test_the_rollback_command_serves_a_named_pair_and_refuses_a_half_made_one(
    story: Story, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    retrain = story.reports["legacy"].challenger
    monkeypatch.setenv("MLFLOW_TRACKING_URI", story.cfg.mlflow.resolved_uri())
    args = ["rollback", "--lake", story.lake.root]
    assert main([*args, "--to", retrain.version]) == 0
    assert (
        f"champion is now v{retrain.version} (raw v{retrain.raw_version})"
        in capsys.readouterr().out
    )
    assert alias_pair(story.client, story.name).version == retrain.version
    assert main([*args, "--to", "999"]) == 1
    assert "does not exist" in capsys.readouterr().out
    history = story.lake.read(DEPLOYMENTS).to_pandas()
    assert history["action"].tolist().count("rollback") == 2


def test_rollback_refuses_a_pair_that_never_passed_its_gates_unless_forced(
    story: Story, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = story.reports["shuffled"].challenger  # trained, complete, failed its gates
    serving = alias_pair(story.client, story.name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", story.cfg.mlflow.resolved_uri())
    args = ["rollback", "--lake", story.lake.root, "--to", failed.version]
    assert main(args) == 1
    assert "never served and never passed its gates" in capsys.readouterr().out
    assert alias_pair(story.client, story.name).version == serving.version
    assert main([*args, "--force"]) == 0
    assert "FORCED" in capsys.readouterr().out
    last = story.lake.read(DEPLOYMENTS).to_pandas().sort_values("decided_at").iloc[-1]
    assert last["champion_version"] == failed.version and "FORCED" in last["reasons"]
    # Back to the pair that served (it did, so no force is needed).
    assert rollback(story.lake, story.client, story.name, serving.version).action == "rollback"


def test_the_simulated_world_is_served_by_the_champion_with_a_holdout_on_previous(
    story: Story,
) -> None:
    champion = alias_pair(story.client, story.name)
    previous = alias_pair(story.client, story.name, PREVIOUS)
    policy = serving_policy(story.cfg, story.client)
    assert isinstance(policy, HoldoutScorer)
    assert policy.main.name == f"champion v{champion.version}"
    assert policy.holdout.name == f"previous v{previous.version}"
    (day,) = simulate_to_landing(
        story.cfg.world,
        story.cfg.logging,
        story.landing.parent / "loop",
        START,
        1,
        500,
        SEED,
        policy,
    )
    assert day.arms is not None
    assert day.arms["champion"]["requests"] > day.arms["previous"]["requests"] > 0


KILL_BETWEEN_REGISTRATIONS = """
import json, os, signal, sys
import mlflow
from ranker_assets.config import RankerConfig
from ranker_assets.infra.lake import Lake
from ranker_assets.training.pipeline import train_partition

cfg = RankerConfig.model_validate_json(os.environ["CFG"])
register = mlflow.register_model
calls = []

def register_then_die(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the calibrated model is registered; die before its raw twin
        os.kill(os.getpid(), signal.SIGKILL)
    return register(*args, **kwargs)

mlflow.register_model = register_then_die
train_partition(Lake(sys.argv[1]), cfg, sys.argv[2], "legacy", "h", {"dagster_run_id": "kill"})
"""


def test_a_kill_between_the_two_registrations_leaves_nothing_deployable(story: Story) -> None:
    client, name = story.client, story.name
    before = {str(mv.version) for mv in client.search_model_versions(f"name = '{name}'")}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_REGISTRATIONS, story.lake.root, D1],
        env={**os.environ, "CFG": story.cfg.model_dump_json()},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    (half,) = {str(mv.version) for mv in client.search_model_versions(f"name = '{name}'")} - before
    with pytest.raises(NotDeployable, match="half made"):
        complete_pair(client, name, half)
    run_id = client.get_model_version(name, half).run_id
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody ended it
    # The next training ends the dead run and removes the half-made version before registering.
    fresh = train_partition(story.lake, story.cfg, D1, "legacy", "h", TAGS).registered
    assert client.get_run(run_id).info.status == "KILLED"
    remaining = {str(mv.version) for mv in client.search_model_versions(f"name = '{name}'")}
    assert half not in remaining and fresh.version in remaining
    assert complete_pair(client, name, fresh.version).raw_version == fresh.raw_version


def _validated(story: Story, ds: str, challenger: RankerPair, champion: RankerPair) -> None:
    """A passed validation_report row for `ds` (the stored D2 row, re-addressed)."""
    row = story.lake.read(VALIDATION_TABLE, [D2], config="legacy").slice(0, 1)
    for column, value in {
        "ds": ds,
        "challenger_version": challenger.version,
        "challenger_raw_version": challenger.raw_version,
        "champion_version": champion.version,
        "passed": True,
    }.items():
        i = row.schema.get_field_index(column)
        row = row.set_column(i, row.schema.field(i), pa.array([value], row.schema.field(i).type))
    story.lake.replace_partition(VALIDATION_TABLE, row, {"config": "legacy", "ds": ds})


def test_two_decisions_at_once_promote_one_and_the_other_decides_against_it(
    story: Story,
) -> None:
    """Two days validated against the same champion, decided at the same moment: one promotes;
    the other sees the new champion and rejects its now stale report; a re-run keeps."""
    client, name, lake = story.client, story.name, story.lake
    champion = alias_pair(client, name)
    candidates = [
        story.reports["click only"].challenger,
        story.reports["shuffled"].challenger,
    ]
    assert champion is not None and champion.version not in {c.version for c in candidates}
    days = ["2026-11-20", "2026-11-21"]
    for day, challenger in zip(days, candidates, strict=True):
        _validated(story, day, challenger, champion)
    start = threading.Barrier(2)

    def decide(day: str) -> Decision:
        start.wait()
        return deploy_day(lake, MlflowClient(story.cfg.mlflow.resolved_uri()), name, day, "repin")

    with ThreadPoolExecutor(2) as pool:
        decisions = list(pool.map(decide, days))
    assert sorted(d.action for d in decisions) == ["promote", "reject"], decisions
    promoted = next(d for d in decisions if d.action == "promote")
    rejected = next(d for d in decisions if d.action == "reject")
    assert f"validated against champion {champion.version}" in rejected.reasons
    assert f"v{promoted.champion_version} serves now" in rejected.reasons
    serving = alias_pair(client, name)
    assert serving.version == promoted.champion_version
    history = lake.read(DEPLOYMENTS).to_pandas().sort_values("decided_at")
    moved = history[history["action"].isin(["promote", "rollback"])]
    assert moved["champion_version"].iloc[-1] == serving.version  # the ledger says what serves
    assert deploy_day(lake, client, name, promoted.ds, "repin").action == "keep"


def test_a_decision_repaired_after_a_crash_keeps_the_model_it_made_champion(
    story: Story,
) -> None:
    client, name, lake = story.client, story.name, story.lake
    champion = alias_pair(client, name)
    challenger = next(
        r.challenger
        for r in (story.reports["click only"], story.reports["shuffled"])
        if r.challenger.version != champion.version
    )
    day = "2026-11-22"
    _validated(story, day, challenger, champion)
    # The decision was recorded, then the process died before the aliases moved.
    crashed = Decision(
        action="promote",
        ds=day,
        config="legacy",
        champion_version=challenger.version,
        champion_raw_version=challenger.raw_version,
        previous_version=champion.version,
        previous_raw_version=champion.raw_version,
        challenger_version=challenger.version,
        reasons="crashed before the aliases moved",
        decided_at=datetime.now(UTC).isoformat(timespec="microseconds"),
    )
    lake.append(DEPLOYMENTS, crashed.row())
    assert alias_pair(client, name).version == champion.version
    rerun = deploy_day(lake, client, name, day, "repin")
    assert rerun.action == "keep" and "already serves" in rerun.reasons, rerun.reasons
    assert alias_pair(client, name).version == challenger.version


def test_registry_filters_quote_names_safely(story: Story) -> None:
    assert story.client.search_model_versions(equals_filter("name", "o'brien_ranker")) == []
    assert story.client.search_model_versions(equals_filter("name", story.name))
    with pytest.raises(ValueError, match="both quote characters"):
        equals_filter("name", 'o\'brien "x"')


def test_a_regression_on_the_randomized_rows_alone_fails_no_regression(story: Story) -> None:
    """Position bias cannot carry a label on randomized traffic: a challenger worse there fails
    even when it looks fine on every row."""
    report = story.reports["legacy"]
    where = randomized_slice(story.cfg)
    m = report.metrics
    click = (m["slice"] == ALL) & (m["model"] == "difference") & (m["metric"] == "auc")
    worse = m[click & (m["head"] == "click")].assign(
        slice=where, value=-0.05, ci_low=-0.08, ci_high=-0.03, sufficient=True, positives=500
    )
    sanity = {h: {"nan_share": 0.0, "score_std": 1.0} for h in report.heads}
    metrics = pd.concat([m[m["slice"] != where], worse])
    gates = judge(metrics, sanity, report.serving, story.cfg.gates, report.heads, True, ALL, where)
    assert [g.name for g in gates if not g.passed] == [f"auc click challenger - champion ({where})"]
    assert all(
        g.passed
        for g in judge(
            m[m["slice"] != where],
            sanity,
            report.serving,
            story.cfg.gates,
            report.heads,
            True,
            ALL,
            where,
        )
    )


def test_small_data_is_said_not_hidden(story: Story) -> None:
    """Too few positives reads "insufficient" on every gate; the challenger's own metrics have
    intervals; a window with no days before it says its shift was not judged."""
    report = story.reports["legacy"]
    m = report.metrics
    few = m.assign(
        sufficient=np.where(m["metric"] == "calibration", False, m["sufficient"]),
        positives=np.where(m["metric"] == "calibration", 12, m["positives"]),
    )
    sanity = {h: {"nan_share": 0.0, "score_std": 1.0} for h in report.heads}
    gates = judge(few, sanity, report.serving, story.cfg.gates, report.heads, True)
    calibration = [g for g in gates if g.family == "calibration"]
    assert calibration and all(not g.passed for g in calibration)
    assert all(
        "insufficient positives (on 12 positives; needs 30)" in g.detail for g in calibration
    )
    own = m[(m["model"] == "challenger") & (m["metric"] == "auc") & (m["slice"] == ALL)]
    assert ((own["ci_low"] <= own["value"]) & (own["value"] <= own["ci_high"])).all()
    assert f"| click | auc | {own[own['head'] == 'click']['value'].iloc[0]:.4f} [" in (
        report.markdown()
    )
    first = validate_window(story.lake, story.cfg, "legacy", [D1])
    (shift,) = [c for c in first.checks if c["kind"] == "shift"]
    assert str(shift["value"]).startswith("not judged: no sampled day of 'legacy'")
    assert "not judged" in first.markdown()
