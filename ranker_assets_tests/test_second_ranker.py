"""A second, non-closeup ranker through the whole graph, from its own config alone.

Bandit logs (impressions and clicks only, string ids, 30 dense features with rare ones, a
uniform-random slice and per-slot propensities of a Thompson-sampling policy, no query pin,
platform or content type, and a last day without a next day) go from the landing zone to a
validated, deployed model through real Dagster materializations, Spark, Delta and MLflow.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from ranker_assets.config import REPO_ROOT, load_config
from ranker_assets.definitions import build_definitions
from ranker_assets.examples.bandit_logs import land_bandit_logs
from ranker_assets.orchestration.resources import LakeResource, LandingResource, MlflowResource
from ranker_assets_tests.orchestration.test_pipeline_materialization import _meta, _run

pytestmark = pytest.mark.spark
START = date(2026, 11, 1)
DAYS = [str(START + timedelta(days=i)) for i in range(4)]
CONFIG = REPO_ROOT / "configs" / "examples" / "bandit_ranker.yaml"


@pytest.fixture(scope="module")
def bandit(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bandit")
    land_bandit_logs(root / "landing", START, len(DAYS), requests=700, seed=5)
    cfg = load_config(CONFIG)
    resources = {
        "lake": LakeResource(root=str(root / "lake")),
        "landing": LandingResource(path=str(root / "landing")),
        "mlflow": MlflowResource(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            experiment=cfg.mlflow.experiment,
            registered_model=cfg.mlflow.registered_model,
        ),
    }
    defs = build_definitions(cfg, resources)
    with dg.instance_for_test() as instance:
        yield defs, instance, resources, root


def test_the_bandit_ranker_goes_from_its_logs_to_a_deployed_model(bandit) -> None:
    defs, instance, resources, root = bandit
    for ds in DAYS:
        result = _run(defs, instance, ["feature_log", "event_log"], ds)
        assert result.success, ds
        for log in ("feature_log", "event_log"):
            m = _meta(result, log)
            assert m["rows_quarantined"] == 0 and m["reconciles"] is True
    assert not (root / "landing" / "event_log" / f"ds={START + timedelta(days=4)}").exists()
    for ds in DAYS:
        joined = _run(defs, instance, ["training_examples"], ds)
        assert joined.success, ds
    # The finished log's last day joined without a next day, and says so.
    assert _meta(joined, "training_examples")["labels_from"].startswith(
        f"events of {DAYS[-1]} only"
    )
    assert _run(defs, instance, ["sampling_config"], None).success
    for ds in DAYS:
        key = dg.MultiPartitionKey({"ds": ds, "config": "all_clicks"})
        sampled = _run(defs, instance, ["sampled_dataset"], key)
        (check,) = sampled.get_asset_check_evaluations()
        assert check.passed, check.metadata  # health is judged on the click head only
    key = dg.MultiPartitionKey({"ds": DAYS[2], "config": "all_clicks"})
    trained = _run(defs, instance, ["ranker_model"], key)
    assert trained.success
    model = _meta(trained, "ranker_model")
    assert model["window"] == ", ".join(DAYS[:3]) and model["holdout_auc_click"] > 0.6
    report_key = dg.MultiPartitionKey({"ds": DAYS[3], "config": "all_clicks"})
    report = _run(defs, instance, ["validation_report"], report_key)
    meta = _meta(report, "validation_report")
    assert meta["eval_day"] == DAYS[3] and meta["auc_click"] > 0.6, meta["report"]
    assert "| challenger | click |" in meta["report"]  # off-policy value on the random slice
    assert meta["verdict"].startswith("PASS"), meta["report"]
    decision = _meta(_run(defs, instance, ["deployed_ranker"], DAYS[3]), "deployed_ranker")
    assert decision["action"] == "promote"
    client = MlflowClient(resources["mlflow"].tracking_uri)
    champion = client.get_model_version_by_alias("bandit_ranker", "champion")
    assert str(champion.version) == model["version"] == decision["champion_version"]
