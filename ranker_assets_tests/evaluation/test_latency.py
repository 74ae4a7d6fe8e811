"""The serving gate's latency measures the model, not the host: time off the CPU (a sleep, a
preemption by other work) does not count, two CPU-bound processes on the same cores do not move
the verdict, and a challenger that costs more shows in the interleaved ratio."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import torch

from ranker_assets.evaluation.latency import measure

BURN = "while True: pass"


def _model(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 4)
    ).eval()


def _predictor(model: torch.nn.Module) -> Callable[[], object]:
    batch = torch.randn(50, 64)

    def predict() -> object:
        with torch.no_grad():
            return model(batch)

    return predict


@pytest.fixture
def loaded_host() -> Iterator[None]:
    """Two CPU-bound processes on this machine's cores while the test measures."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(2)]
    try:
        yield
    finally:
        for b in burners:
            b.kill()
            b.wait()


def test_time_off_the_cpu_is_not_the_models_cost() -> None:
    work = _predictor(_model(256))

    def stalls() -> None:
        work()
        time.sleep(0.02)  # the host gave the core to someone else

    timed, _ = measure({"model": stalls}, requests=20, warmup=2)
    t = timed["model"]
    assert t.wall_p50 >= 20.0
    assert t.cpu_p99 < 10.0 and t.cpu_p99 < t.wall_p50 / 2


def test_a_costlier_challenger_shows_in_the_interleaved_ratio() -> None:
    cheap, costly = _predictor(_model(64)), _predictor(_model(4096))
    timed, ratio = measure({"challenger": costly, "champion": cheap}, requests=60)
    assert ratio is not None and ratio > 2.0
    assert timed["challenger"].cpu_p99 > timed["champion"].cpu_p99


@pytest.fixture(scope="module")
def quiet_cpu_p99() -> float:
    """The model's CPU p99 per request before any load starts (module scope: set up first)."""
    timed, _ = measure({"m": _predictor(_model(4096))}, requests=100)
    return timed["m"].cpu_p99


def test_two_cpu_bound_processes_do_not_move_the_verdict(
    quiet_cpu_p99: float, loaded_host: None
) -> None:
    """Identical models measured under load: the ratio stays near 1 and the CPU cost near what
    the same model costs on a quiet host."""
    challenger, champion = _predictor(_model(4096)), _predictor(_model(4096))
    timed, ratio = measure({"challenger": challenger, "champion": champion}, requests=100)
    assert ratio is not None and 0.5 <= ratio <= 2.0
    # An absolute bound that a busy host breaks in wall time but not in CPU time.
    assert timed["challenger"].cpu_p99 <= 3 * quiet_cpu_p99 + 1.0, (timed, quiet_cpu_p99)


def test_garbage_collection_is_paused_while_timing_and_restored_after() -> None:
    """A collection's pause is the size of the process's heap, not the model's cost: a test
    session's heap once made one call cost 392 ms of CPU and failed a clean ranker."""
    enabled: list[bool] = []
    timed, _ = measure({"model": lambda: enabled.append(gc.isenabled())}, requests=12, warmup=3)
    assert not any(enabled[-12:])  # the timed calls
    assert gc.isenabled()
    assert timed["model"].cpu_p99 >= 0
