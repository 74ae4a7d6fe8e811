from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from ranker_assets.config import FeatureSpec
from ranker_assets.logs import contract, landing
from ranker_assets.logs.screening import event_log_spec, feature_log_spec
from ranker_assets.logs.simulated import simulate_to_landing
from ranker_assets_tests.conftest import SEED, START, small_config


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_lands_the_same_bytes(tmp_path: Path) -> None:
    cfg = small_config()
    for name in ("a", "b"):
        simulate_to_landing(cfg.world, cfg.logging, tmp_path / name, START, 2, 400, SEED)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) >= 6
    simulate_to_landing(cfg.world, cfg.logging, tmp_path / "c", START, 2, 400, SEED + 1)
    assert _digest(tmp_path / "c") != a


def test_relanding_a_day_replaces_its_files(tmp_path: Path) -> None:
    cfg = small_config()
    simulate_to_landing(cfg.world, cfg.logging, tmp_path, START, 1, 400, SEED)
    first = _digest(tmp_path)
    simulate_to_landing(cfg.world, cfg.logging, tmp_path, START, 1, 400, SEED)
    assert _digest(tmp_path) == first


def test_layout_and_late_events_land_in_the_next_day(landed) -> None:
    root, reports = landed
    d1, d2 = reports[0].ds, reports[1].ds
    assert landing.day_files(root, "feature_log", d1) and landing.day_files(
        root, "ground_truth", d1
    )
    names = [p.name for p in landing.day_files(root, "event_log", d2)]
    assert f"from-{d1}.jsonl" in names and f"from-{d2}.jsonl" in names
    carried = landing.read_event_log(root, d2)
    late = carried[
        carried["event_id"].isin(
            pd.read_json(
                landing.day_dir(root, "event_log", d2) / f"from-{d1}.jsonl",
                lines=True,
                dtype={"event_id": str},
            )["event_id"]
        )
    ]
    assert (late["event_type"] != "impression").any()
    assert (late["timestamp"].dt.strftime("%Y-%m-%d") == str(d2)).all()
    written = sum(r.written["event_log"].rows for r in reports)
    read = sum(len(landing.read_event_log(root, d)) for d in _event_days(root))
    assert written == read  # nothing lost between the days


def _event_days(root: Path) -> list[str]:
    return [p.name.removeprefix("ds=") for p in sorted((root / "event_log").iterdir())]


def test_contract_accepts_simulator_output(landed, cfg) -> None:
    root, reports = landed
    for r in reports:
        feats = landing.read_feature_log(root, r.ds).to_pandas()
        contract.validate(feats, contract.feature_log_schema(cfg.features))
        contract.validate(landing.read_event_log(root, r.ds), contract.event_log_schema())


def test_contract_rejects_broken_event_rows_naming_column_and_rule(landed) -> None:
    root, reports = landed
    events = landing.read_event_log(root, reports[0].ds).head(50).copy()
    events.loc[0, "event_type"] = "swipe"
    events.loc[1, "position"] = -3
    events.loc[2, "platform"] = "fax"
    with pytest.raises(contract.ContractError) as err:
        contract.validate(events, contract.event_log_schema())
    msg = str(err.value)
    assert "'event_type'" in msg and "swipe" in msg
    assert "'position'" in msg and "non-negative" in msg
    assert "'platform'" in msg and "fax" in msg


def test_contract_rejects_broken_feature_rows(landed, cfg) -> None:
    root, reports = landed
    feats = landing.read_feature_log(root, reports[0].ds).to_pandas().head(50).copy()
    prod = feats.index[feats["policy"] == "production"][0]
    feats.loc[prod, "impressed"] = False
    feats.loc[feats.index[1], "keep_rate"] = 0.0
    feats = feats.drop(columns=["pin_age_days"])
    with pytest.raises(contract.ContractError) as err:
        contract.validate(feats, contract.feature_log_schema(cfg.features))
    msg = str(err.value)
    assert "'pin_age_days': required column is missing" in msg
    assert "'keep_rate': must be in (0, 1]" in msg
    assert f"only on randomized traffic (or in full mode) (1 rows; e.g. row {prod})" in msg


def test_feature_columns_come_from_the_config(landed) -> None:
    """Logs with other features validate against their own declaration."""
    root, reports = landed
    feats = landing.read_feature_log(root, reports[0].ds).to_pandas()
    own = feats.drop(columns=["pin_age_days", "user_activity"]).rename(
        columns={"query_similarity": "my_score"}
    )
    spec = FeatureSpec(dense=("my_score",), categorical=("pin_topic",))
    contract.validate(own, contract.feature_log_schema(spec))
    with pytest.raises(
        contract.ContractError, match="'query_similarity': required column is missing"
    ):
        contract.validate(
            own, contract.feature_log_schema(FeatureSpec(dense=("query_similarity",)))
        )


def test_screening_validates_every_rule_of_the_contract_but_no_dtypes() -> None:
    """`screen` types each column itself, then checks the contract's value rules on the typed
    rows: the same checks, nullability and frame-wide rules, without re-checking types."""
    for spec in (feature_log_spec(small_config().features), event_log_spec()):
        rules, schema = spec.value_rules, spec.schema
        assert list(rules.columns) == list(schema.columns)
        assert [str(c) for c in rules.checks] == [str(c) for c in schema.checks]
        for name, column in schema.columns.items():
            assert rules.columns[name].dtype is None, name
            assert [str(c) for c in rules.columns[name].checks] == [
                str(c) for c in column.checks
            ], name
            assert (rules.columns[name].nullable, rules.columns[name].unique) == (
                column.nullable,
                column.unique,
            ), name
