"""Shared fixtures: a small deterministic world, and one simulated landing zone per session."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.world.simulator import DayReport, simulate_to_landing

START = date(2026, 11, 1)
SEED = 11


def small_config(client_fault_share: float = 0.0, **logging: object) -> RankerConfig:
    """The shipped config with a small world (and by default a fault-free client), for speed."""
    base = load_config()
    world = base.world.model_copy(
        update={"n_users": 3000, "n_pins": 8000, "client_fault_share": client_fault_share}
    )
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


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test session (Dagster's resource reuses it)."""
    from ranker_assets.spark_session import get_spark

    session = get_spark(load_config().spark)
    yield session
    session.stop()
