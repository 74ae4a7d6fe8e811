"""Real Dagster materializations of the logged-event assets and the Joiner: Spark, Delta, checks."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG, StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from dagster_pyspark import LazyPySparkResource
from mlflow.tracking import MlflowClient

from ranker_assets.config import HeadGates, load_config
from ranker_assets.definitions import build_definitions
from ranker_assets.logs import landing
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets.orchestration.assets.observations import observe_in_process
from ranker_assets.orchestration.resources import LakeResource, LandingResource, MlflowResource
from ranker_assets_tests.conftest import SEED, START, small_config

pytestmark = pytest.mark.spark
D1, D2, D3 = (str(START + timedelta(days=i)) for i in range(3))
LOGS = ["feature_log", "event_log", "sequence_log"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(load_config().sampling.configs_path, root / "sampling")
    base = small_config(client_fault_share=0.002)
    sampling = base.sampling.model_copy(update={"configs_dir": str(root / "sampling")})
    cfg = base.model_copy(update={"sampling": sampling})
    simulate_to_landing(cfg.world, cfg.logging, root / "landing", START, 2, 800, SEED)
    resources = {
        "lake": LakeResource(root=str(root / "lake")),
        "landing": LandingResource(path=str(root / "landing")),
        "pyspark": LazyPySparkResource(spark_config=cfg.spark.session_config()),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{root / 'mlflow.db'}"),
    }
    defs = build_definitions(cfg, resources)
    with dg.instance_for_test() as instance:
        yield defs, instance, resources["lake"].lake(), root / "landing", root / "sampling"


def _run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    assets: list[str],
    ds: str | dg.MultiPartitionKey,
):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        partition_key=ds,
        asset_selection=[dg.AssetKey(a) for a in assets],
        raise_on_error=False,
    )


def _meta(result, asset: str) -> dict[str, object]:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def test_two_days_through_ingestion_and_the_joiner(setup) -> None:
    defs, instance, lake, _, _ = setup
    for ds in (D1, D2, D3):
        logs = ["event_log"] if ds == D3 else ["feature_log", "event_log", "sequence_log"]
        result = _run(defs, instance, logs, ds)
        assert result.success
        for log in logs:
            m = _meta(result, log)
            assert m["reconciles"] is True
            assert m["rows_in"] == m["rows_kept"] + m["rows_quarantined"] + m["duplicates_dropped"]
            assert m["lake_bytes"] > 0 and m["dagster/row_count"] == m["rows_kept"]
        if ds != D3:  # D3 holds only the late events of D2: too few rows for a stable share
            assert all(e.passed for e in result.get_asset_check_evaluations())
    for ds in (D1, D2):
        result = _run(defs, instance, ["training_examples"], ds)
        assert result.success
        m = _meta(result, "training_examples")
        kept = lake.read("feature_log", [ds]).num_rows
        assert m["rows_joined"] == m["feature_rows"] == kept
        assert m["positives_click"] > 0
        columns = {c.name: c.type for c in m["dagster/column_schema"].columns}
        assert columns["weight"] == "float" and columns["repin"] == "int8" and "ds" in columns
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "logs_agree" and check.passed
        _assert_lineage(lake, m, "training_examples")
    # Re-materializing a day through Dagster replaces it: same rows, nothing duplicated.
    before = lake.read("training_examples").num_rows
    assert _run(defs, instance, [*LOGS, "training_examples"], D1).success
    assert lake.read("training_examples").num_rows == before
    assert lake.read("training_examples", [D2]).num_rows == lake.read("feature_log", [D2]).num_rows
    quarantined = lake.read("quarantine", [D1], log="event_log").num_rows
    assert (
        quarantined
        == _meta(_run(defs, instance, ["event_log"], D1), "event_log")["rows_quarantined"]
    )


def _sample(defs: dg.Definitions, instance: dg.DagsterInstance, ds: str, config: str):
    result = _run(
        defs, instance, ["sampled_dataset"], dg.MultiPartitionKey({"ds": ds, "config": config})
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("sampled_dataset")
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "dataset_health" and check.passed, check.metadata
    return {k: v.value for k, v in mat.metadata.items()}, mat.tags[DATA_VERSION_TAG]


def test_sampled_datasets_per_config_and_day_are_reused_by_lineage(setup) -> None:
    defs, instance, lake, _, configs_dir = setup
    before = _observed_versions(defs, instance)  # the configs' content hashes, as the UI records
    first = {}
    for config in ("legacy", "balanced"):
        for ds in (D1, D2):
            meta, version = _sample(defs, instance, ds, config)
            assert not meta["reused_by_lineage"] and meta["rows_out"] > 0
            first[(config, ds)] = version
    assert _stale(defs, instance) == {k: StaleStatus.FRESH for k in first}
    delta_version = lake.table("sampled_dataset").version()
    # Unchanged config and upstream: a no-op that keeps the data version (no Spark job, no commit).
    meta, version = _sample(defs, instance, D1, "legacy")
    assert meta["reused_by_lineage"] and version == first[("legacy", D1)]
    assert lake.table("sampled_dataset").version() == delta_version
    # Editing a config changes its observed data version: its partitions, and only those, are
    # stale in Dagster, and materializing one recomputes it.
    path = configs_dir / "legacy.yaml"
    path.write_text(path.read_text().replace("negative_keep: 0.3", "negative_keep: 0.25"))
    after = _observed_versions(defs, instance)
    assert after["legacy"] != before["legacy"] and after["balanced"] == before["balanced"]
    stale = _stale(defs, instance)
    assert {k for k, v in stale.items() if v == StaleStatus.STALE} == {
        ("legacy", D1),
        ("legacy", D2),
    }
    meta, version = _sample(defs, instance, D1, "legacy")
    assert not meta["reused_by_lineage"] and version != first[("legacy", D1)]
    assert meta["negative_keep_rate"] == 0.25
    assert _stale(defs, instance)[("legacy", D1)] == StaleStatus.FRESH
    assert _sample(defs, instance, D1, "balanced")[0]["reused_by_lineage"]
    rows = lake.read("sampled_dataset", [D1], config="legacy").num_rows
    assert rows == meta["rows_out"]
    _assert_lineage(lake, meta, "sampled_dataset")


def lake_rows(defs: dg.Definitions, table: str) -> int:
    return defs.resources["lake"].lake().read(table).num_rows


def _assert_lineage(lake, meta: dict[str, object], table: str) -> None:
    """Column lineage covers every column of the output, and names only real upstream columns."""
    lineage = meta["dagster/column_lineage"].deps_by_column
    assert set(lineage) == set(lake.columns(table))
    for deps in lineage.values():
        for dep in deps:
            assert dep.column_name in lake.columns(dep.asset_key.path[-1]), dep


def _stale(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> dict[tuple[str, str], StaleStatus]:
    """Dagster's own staleness verdict per (config, day) partition of sampled_dataset."""
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition | dg.SourceAsset)]
    resolver = get_stale_status_resolver(instance, assets)
    return {
        (c, d): resolver.get_status(
            dg.AssetKey("sampled_dataset"), dg.MultiPartitionKey({"ds": d, "config": c})
        )
        for c in ("legacy", "balanced")
        for d in (D1, D2)
    }


def test_ranker_model_trains_on_its_window_and_fails_readably_without_it(setup) -> None:
    defs, instance, _, _, _ = setup
    key = dg.MultiPartitionKey({"ds": D2, "config": "legacy"})
    _sample(defs, instance, D1, "legacy")
    result = _run(defs, instance, ["ranker_model"], key)
    assert result.success
    ref = result.output_for_node("ranker_model")
    (mat,) = result.asset_materializations_for_node("ranker_model")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["version"] == ref.version and meta["window"] == f"{D1}, {D2}"
    assert meta["mlflow_run"].endswith(f"/runs/{ref.run_id}")
    assert 0.5 < meta["holdout_auc_repin"] <= 1.0
    client = MlflowClient(meta["mlflow_tracking_uri"])
    tags = client.get_model_version(ref.name, ref.version).tags
    assert tags["dagster_run_id"] == result.run_id and tags["dagster_partition"] == str(key)
    assert client.get_run(ref.run_id).info.status == "FINISHED"
    # D3 was never sampled: the step fails, naming the missing day, and its MLflow run is FAILED.
    failed = _run(
        defs, instance, ["ranker_model"], dg.MultiPartitionKey({"ds": D3, "config": "legacy"})
    )
    assert not failed.success
    (failure,) = failed.get_step_failure_events()
    assert (
        f"missing the sampled datasets of ['{D3}']"
        in failure.event_specific_data.error.cause.message
    )
    runs = client.search_runs(
        [client.get_experiment_by_name("closeup_ranker").experiment_id],
        filter_string=f"tags.dagster_run_id = '{failed.run_id}'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]


def _observed_versions(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, str]:
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("sampling_config")]
    ).success
    records = instance.fetch_observations(dg.AssetKey("sampling_config"), limit=10).records
    latest: dict[str, str] = {}
    for record in reversed(records):  # newest last
        obs = record.asset_observation
        latest[obs.partition] = obs.tags[DATA_VERSION_TAG]
    return latest


def _broken_client(landing_root: Path, n: int) -> Path:
    """A client that sends `n` events without ids into D2's folder."""
    bad = landing.day_dir(landing_root, "event_log", D2) / "zz-broken-client.jsonl"
    rows = (json.dumps({"event_id": f"b{i}", "event_type": "click"}) for i in range(n))
    bad.write_text("\n".join(rows))
    return bad


def _event_log_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey("event_log") and e.check_name == "quarantine_share"
    ]
    return check


@pytest.mark.parametrize(
    ("bad_rows", "severity", "joined"),
    [(3000, dg.AssetCheckSeverity.ERROR, False), (250, dg.AssetCheckSeverity.WARN, True)],
)
def test_quarantine_share_warns_or_blocks_the_join_in_the_same_run(
    setup, bad_rows: int, severity: dg.AssetCheckSeverity, joined: bool
) -> None:
    defs, instance, _, landing_root, _ = setup
    bad = _broken_client(landing_root, bad_rows)
    try:
        result = _run(defs, instance, [*LOGS, "training_examples"], D2)
        check = _event_log_check(result)
        assert not check.passed and check.severity == severity
        share = check.metadata["quarantine_share"].value
        assert (share > 0.05) if severity == dg.AssetCheckSeverity.ERROR else (0.01 < share <= 0.05)
        assert result.is_node_success("training_examples") is joined
        failures = result.get_step_failure_events()
        if joined:
            assert not failures
        else:  # the blocking check stops the run after event_log: the Joiner never starts
            (failure,) = failures
            assert failure.step_key == "event_log"
            assert "blocking asset check failed" in failure.event_specific_data.error.message
            assert not result.asset_materializations_for_node("training_examples")
    finally:
        bad.unlink()
        assert _run(defs, instance, ["event_log"], D2).success


def _with_gates(
    defs: dg.Definitions, configs_dir: Path, gates: dict[str, object]
) -> dg.Definitions:
    """The same graph and resources, built from the config with other gates."""
    base = small_config(client_fault_share=0.002)
    cfg = base.model_copy(
        update={
            "sampling": base.sampling.model_copy(update={"configs_dir": str(configs_dir)}),
            "model": base.model.model_copy(update={"window_days": 1}),
            "gates": base.gates.model_copy(update=gates),
        }
    )
    return build_definitions(cfg, dict(defs.resources))


def test_gates_are_checks_of_validation_report_and_deployment_follows_them(
    setup,
) -> None:
    defs, instance, _, _, configs_dir = setup
    key = dg.MultiPartitionKey({"ds": D1, "config": "legacy"})
    # Validated on D2 (the report's partition) with D2's examples, which it never trained on.
    report_key = dg.MultiPartitionKey({"ds": D2, "config": "legacy"})
    # A day of 800 requests trains a weak ranker (AUC ~0.5-0.55, click over-predicted): the
    # shipped gates reject it, and so does a minimum of positives no metric reaches.
    strict = _with_gates(defs, configs_dir, {"min_positives": 10**6})
    lenient = _with_gates(
        defs, configs_dir, {"default": HeadGates(min_auc=0.4, calibration_range=(0.05, 20.0))}
    )
    assert _run(strict, instance, ["ranker_model"], key).success  # trained on D1 alone
    # Too few positives for any metric to count: the gates fail, and nothing is deployed. A
    # failed gate is a decision, not a broken run: the run succeeds, its checks say FAIL.
    failed = _run(strict, instance, ["validation_report"], report_key)
    assert failed.success and not failed.get_step_failure_events()
    checks = {c.check_name: c for c in failed.get_asset_check_evaluations()}
    assert checks["absolute"].severity == dg.AssetCheckSeverity.WARN
    assert set(checks) == {"absolute", "no_regression", "calibration", "model_sanity", "serving"}
    assert not checks["absolute"].passed and not checks["calibration"].passed
    assert checks["absolute"].metadata["partition"].value == str(report_key)
    assert "insufficient positives" in checks["absolute"].metadata["failed"].value
    (mat,) = failed.asset_materializations_for_node("validation_report")
    assert mat.metadata["verdict"].value.startswith("FAIL (absolute, calibration)")
    # The plots are on the asset page itself, inline, and in the challenger's MLflow run.
    plots = mat.metadata["plots"].value
    for name in ("calibration_curves", "auc_challenger_vs_champion", "auc_over_days"):
        assert f"![{name}](data:image/png;base64,iVBOR" in plots
        assert f"validation/{D2}/{name}.png" in mat.metadata["mlflow_artifacts"].value
    rejected = _run(strict, instance, ["deployed_ranker"], D2)
    assert _meta(rejected, "deployed_ranker")["action"] == "reject"
    # The same ranker under thresholds it meets: the gates pass and it is promoted.
    assert _run(lenient, instance, ["validation_report"], report_key).success
    promoted = _meta(_run(lenient, instance, ["deployed_ranker"], D2), "deployed_ranker")
    assert promoted["action"] == "promote" and promoted["sampling_config"] == "legacy"
    client = MlflowClient(defs.resources["mlflow"].tracking_uri)
    champion = client.get_model_version_by_alias("closeup_ranker", "champion")
    assert str(champion.version) == promoted["champion_version"]
    assert promoted["dagster/row_count"] == 2  # reject, then promote
    # The ledger tables are assets too: the observe_sources sensor reports their row counts.
    observe_in_process(lenient, instance, None)
    for ledger, rows in (
        ("deployments", 2),
        ("quarantine", None),
        ("sampled_dataset_health", None),
    ):
        (record,) = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(ledger)), limit=1
        ).records
        observed = record.asset_observation.metadata["dagster/row_count"].value
        assert observed == (rows if rows is not None else lake_rows(lenient, ledger)), ledger
    # ... observable, never materializable (the UI offers "Observe"), with owners and tags.
    graph = lenient.resolve_asset_graph()
    for ledger in ("deployments", "quarantine", "sampled_dataset_health"):
        node = graph.get(dg.AssetKey(ledger))
        assert node.is_observable and node.is_executable and not node.is_materializable, ledger
        assert node.owners and node.tags["ranker"] == "closeup_ranker", ledger
    assert _run(lenient, instance, ["deployments"], None).success  # what "Observe" launches
    (record,) = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("deployments")), limit=1
    ).records
    assert record.run_id and record.asset_observation.metadata["dagster/row_count"].value == 2
    # The serving model's data age: trained through D1, newest landed day D2 (one day old).
    check_job = lenient.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(),
        asset_check_selection={
            dg.AssetCheckKey(dg.AssetKey("deployed_ranker"), "champion_data_age")
        },
    )
    (age,) = check_job.execute_in_process(instance=instance).get_asset_check_evaluations()
    assert age.passed  # within the weekly cadence's warning window
    assert age.metadata["data_age_days"].value == 1
    assert age.metadata["champion_trained_through"].value == D1
