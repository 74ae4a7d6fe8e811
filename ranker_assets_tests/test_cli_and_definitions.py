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
