from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ranker_assets.cli import main
from ranker_assets.config import RankerConfig, load_config
from ranker_assets.definitions import defs


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
    assert {"landing/feature_log", "landing/event_log"} <= keys
    dg.Definitions.validate_loadable(defs)  # raises on any definition error


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
    assert "event_log violates the log contract" in out and "'event_type'" in out and "swipe" in out
    assert f"{ds} feature_log: cannot be read: no feature_log files" in out
