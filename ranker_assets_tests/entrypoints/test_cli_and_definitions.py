from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ranker_assets.config import DEFAULT_CONFIG_PATH, ConfigError, RankerConfig, load_config
from ranker_assets.config.sampling import SamplingConfigError
from ranker_assets.definitions import build_definitions, defs
from ranker_assets.entrypoints.cli import main
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.screening import event_log_spec
from ranker_assets.orchestration.partitions import ds_and_config


def test_simulate_cli_reports_rows_and_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "simulate",
            "--start",
            "2026-11-01",
            "--days",
            "2",
            "--requests",
            "300",
            "--landing",
            str(tmp_path),
            "--seed",
            "3",
            "--logging",
            "full",
            "--randomized-share",
            "0.1",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "logging=full" in out
    assert out.count("feature_log") == 2 and out.count("event_log") == 2
    assert (tmp_path / "feature_log" / "ds=2026-11-02").is_dir()


def test_config_rejects_bad_values_naming_the_field() -> None:
    raw = load_config().model_dump()
    raw["logging"]["impression_keep_rate"] = 1.5
    with pytest.raises(ValueError, match="impression_keep_rate"):
        RankerConfig.model_validate(raw)
    raw = load_config().model_dump()
    raw["features"]["categorical"] = ["query_similarity"]
    with pytest.raises(ValueError, match="both dense and categorical"):
        RankerConfig.model_validate(raw)


def test_code_location_loads() -> None:
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"landing/feature_log", "landing/event_log", "deployed_ranker"} <= keys
    dg.Definitions.validate_loadable(defs)  # raises on any definition error
    # In the UI every asset has owners, the ranker's tag and a link to its source.
    for key in (
        "landing/feature_log",
        "sampling_config",
        "feature_log",
        "ranker_model",
        "validation_report",
        "deployed_ranker",
    ):
        (spec,) = defs.get_assets_def(dg.AssetKey.from_user_string(key)).specs
        assert spec.owners == ["team:ranking"] and spec.tags["ranker"] == "closeup_ranker"
        assert "dagster/code_references" in spec.metadata


def test_check_logs_cli_passes_clean_logs_and_names_what_is_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], landed
) -> None:
    root, reports = landed
    ds = str(reports[0].ds)
    assert main(["check-logs", "--start", ds, "--days", "1", "--landing", str(root)]) == 0
    assert f"{ds} feature_log: ok" in capsys.readouterr().out
    broken = tmp_path / "event_log" / f"ds={ds}"
    broken.mkdir(parents=True)
    (broken / "client.jsonl").write_text(
        '{"event_id": "a", "request_id": 1, "pin_id": 2, "user_id": 3, "event_type": "swipe",'
        ' "position": 0, "timestamp": "' + ds + 'T01:00:00.000Z", "platform": "ios"}\n'
    )
    assert main(["check-logs", "--start", ds, "--landing", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{ds} event_log violates the log contract (1 rows: 0 kept, 1 quarantined" in out
    assert "ingestion would block the day" in out
    assert "1 x contract(event_type)" in out and "swipe" in out
    assert "check vocabulary.impression_event / vocabulary.label_events" in out
    assert f"{ds} feature_log: cannot be read: no feature_log files" in out


def test_check_logs_and_ingestion_read_logs_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """String ids that look numeric are strings to both (one reader, one contract), and ids
    of the wrong type point at vocabulary.id_type."""
    ds = "2026-11-01"
    folder = tmp_path / "landing" / "event_log" / f"ds={ds}"
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text(
        '{"event_id": "e1", "request_id": "r1", "pin_id": "14", "user_id": "u1", '
        '"event_type": "click", "position": 0, "timestamp": "' + ds + 'T01:00:00.000Z"}\n'
    )
    bandit = DEFAULT_CONFIG_PATH.parent / "examples" / "bandit_ranker.yaml"
    args = ["--config", str(bandit), "check-logs", "--start", ds]
    main([*args, "--landing", str(tmp_path / "landing")])
    out = capsys.readouterr().out
    assert f"{ds} event_log: ok (1 rows: 1 kept, 0 quarantined" in out, out
    ingested = ingest_day(tmp_path / "landing", event_log_spec(load_config(bandit).vocabulary), ds)
    assert ingested.kept == 1 and ingested.valid["pin_id"].to_pylist() == ["14"]
    # The closeup ranker's ids are int64: the same file is quarantined by both, with the fix.
    main(["check-logs", "--start", ds, "--landing", str(tmp_path / "landing")])
    out = capsys.readouterr().out
    assert "wrong_type(request_id)" in out and "check vocabulary.id_type" in out, out


def _write_config(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    shutil.copytree(DEFAULT_CONFIG_PATH.parent / "sampling", tmp_path / "sampling")
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = raw
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "ranker.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start_date": "2026-13-01"}, "start_date: Value error, must be a date as YYYY-MM-DD"),
        ({"timezone": "Mars/Olympus"}, "timezone: Value error, unknown IANA time zone"),
        ({"sampling__default": "nope"}, "sampling.default: no sampling config named 'nope'"),
        (
            {"features__categorical": ["platform"]},
            "contract columns that are not ids: ['platform']",
        ),
        (
            {"gates__primary_head": "hide"},
            "gates.primary_head names heads the model does not train",
        ),
        ({"model__warm_start": "no"}, "model.warm_start: Input should be a valid boolean"),
        ({"gates__insufficient_passes": "yes"}, "gates.insufficient_passes: Input should be"),
        ({"mlflow__registered_model": "team/ranker"}, "mlflow.registered_model: String should"),
        ({"mlflow__registered_model": "o'brien_ranker"}, "mlflow.registered_model: String"),
    ],
)
def test_config_errors_are_caught_at_load_naming_the_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = _write_config(tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_config_error_is_a_message_and_exit_code_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, model__heads=["click"])  # primary_head left at repin
    args = ["--config", str(path), "check-logs", "--start", "2026-11-01"]
    assert main([*args, "--landing", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("config error: ") and "gates.primary_head" in out
    assert "model.heads: ['click']" in out


def test_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path.parent)  # not the repository, not the config's folder
    cfg = load_config(_write_config(tmp_path))
    assert cfg.sampling.configs_path == tmp_path / "sampling"


def test_a_broken_sampling_config_disables_only_its_own_partitions(tmp_path: Path) -> None:
    path = _write_config(tmp_path)
    (tmp_path / "sampling" / "empty.yaml").write_text("")
    (tmp_path / "sampling" / "typo.yaml").write_text("label_keep: {repin: 2.0}")
    cfg = load_config(path)  # the location still loads
    built = build_definitions(cfg)
    configs = built.get_assets_def(
        "sampled_dataset"
    ).partitions_def.get_partitions_def_for_dimension("config")
    assert set(configs.get_partition_keys()) == {"balanced", "legacy", "empty", "typo"}
    assert ds_and_config(cfg, dg.MultiPartitionKey({"ds": "2026-11-01", "config": "legacy"}))
    with pytest.raises(SamplingConfigError, match=r"empty\.yaml: the file is empty"):
        ds_and_config(cfg, dg.MultiPartitionKey({"ds": "2026-11-01", "config": "empty"}))
    with pytest.raises(SamplingConfigError, match=r"label_keep\.repin"):
        ds_and_config(cfg, dg.MultiPartitionKey({"ds": "2026-11-01", "config": "typo"}))
