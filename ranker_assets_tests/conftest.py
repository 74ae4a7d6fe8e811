"""Shared fixtures: a small deterministic world, one simulated landing zone per session, and a
small lake with sampled data for three days, built once through the real pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from ranker_assets.config import RankerConfig, load_config
from ranker_assets.config.sampling import load_sampling_configs
from ranker_assets.infra.lake import Lake
from ranker_assets.joining.joiner import run_joiner
from ranker_assets.logs.ingestion import ingest_day
from ranker_assets.logs.screening import event_log_spec, log_specs
from ranker_assets.logs.simulated import DayReport, simulate_to_landing
from ranker_assets.sampling.run import run_sampler

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
    from ranker_assets.infra.spark_session import get_spark

    session = get_spark(load_config().spark)
    yield session
    session.stop()


DAYS = [str(START + timedelta(days=i)) for i in range(3)]
REQUESTS = 4000


@dataclass(frozen=True)
class TrainingWorld:
    cfg: RankerConfig
    lake: Lake
    landing: Path


def training_config(tmp: Path, **model: object) -> RankerConfig:
    base = small_config()
    return base.model_copy(
        update={
            "model": base.model.model_copy(
                update={"epochs": 6, "batch_size": 256, "holdout_share": 0.3, **model}
            ),
            "mlflow": base.mlflow.model_copy(
                update={"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"}
            ),
        }
    )


@pytest.fixture(scope="session")
def training_world(tmp_path_factory: pytest.TempPathFactory, spark) -> TrainingWorld:
    root = tmp_path_factory.mktemp("training")
    cfg = training_config(root)
    landing = root / "landing"
    simulate_to_landing(cfg.world, cfg.logging, landing, START, 4, REQUESTS, SEED)
    lake = Lake(str(root / "lake"))
    for ds in [*DAYS, str(START + timedelta(days=3))]:
        lake.replace_partition(
            "event_log", ingest_day(landing, event_log_spec(), ds).valid, {"ds": ds}
        )
    legacy = load_sampling_configs(cfg.sampling.configs_path)["legacy"]
    for ds in DAYS:
        for spec in (s for s in log_specs(cfg) if s.name != "event_log"):
            lake.replace_partition(spec.name, ingest_day(landing, spec, ds).valid, {"ds": ds})
        run_joiner(spark, lake, ds, cfg.features, cfg.joiner)
        run_sampler(lambda: spark, lake, ds, legacy, cfg.sampling.max_ratio_change)
    return TrainingWorld(cfg, lake, landing)
