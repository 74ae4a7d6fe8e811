"""Shared fixtures: a small deterministic world, and one simulated landing zone per session."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.world.simulator import DayReport, simulate_to_landing

START = date(2026, 11, 1)
SEED = 11


def small_config(**logging: object) -> RankerConfig:
    """The shipped config with a small world, so tests run in seconds."""
    base = load_config()
    world = base.world.model_copy(update={"n_users": 3000, "n_pins": 8000})
    return base.model_copy(
        update={"world": world, "logging": base.logging.model_copy(update=logging)}
    )


@pytest.fixture(scope="session")
def cfg() -> RankerConfig:
    return small_config()


@pytest.fixture(scope="session")
def landed(
    tmp_path_factory: pytest.TempPathFactory, cfg: RankerConfig
) -> tuple[Path, list[DayReport]]:
    """Three simulated days of hybrid logs, landed once for the whole session."""
    landing = tmp_path_factory.mktemp("landing")
    reports = simulate_to_landing(cfg.world, cfg.logging, landing, START, 3, 1500, SEED)
    return landing, reports
