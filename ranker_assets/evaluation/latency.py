"""Serving latency that measures the model, not how busy the host is.

Wall time on a shared machine moves 2x with other work (a Spark or training run on the same
cores), so an absolute wall-time bound rejects clean models under load. Two measures do not
move with load:

- CPU time of the calling thread per request, with torch held to one thread so the whole
  request runs in that thread: the time the model costs, whoever else is running;
- the challenger's wall time relative to the champion's, measured interleaved (alternating
  which goes first, request by request), so both see the same host in the same window.

Wall times are still reported, with their spread, to show what the host did.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

from ranker_assets.config import FeatureSpec
from ranker_assets.evaluation.offline import CHALLENGER, CHAMPION
from ranker_assets.training.serving import one_request, pyfunc_input


@dataclass(frozen=True)
class Latency:
    """Per request, in ms, for one model."""

    cpu_p99: float
    wall_p50: float
    wall_p99: float

    @property
    def spread(self) -> float:
        """Wall p99 / p50: near 1 on a quiet host, large when other work interrupted."""
        return self.wall_p99 / self.wall_p50 if self.wall_p50 > 0 else float("nan")


@contextmanager
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def no_garbage_collection() -> Iterator[None]:
    """Python's garbage collector paused (after one collection), as `timeit` does: a
    collection walks the whole process's heap in the calling thread, so its pause is the size
    of whatever else the process holds (392 ms of CPU in one call seen after a test session's
    training), not the model's cost."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def measure(
    predictors: Mapping[str, Callable[[], object]], requests: int, warmup: int = 10
) -> tuple[dict[str, Latency], float | None]:
    """Time each predictor `requests` times, interleaved, after `warmup` calls each.

    Returns each one's latency and, with two predictors, the median over requests of the
    first's wall time divided by the second's (paired: the two calls of a request are adjacent).
    """
    names = list(predictors)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    with one_torch_thread(), no_garbage_collection():
        for _ in range(warmup):
            for n in names:
                predictors[n]()
        for i in range(requests):
            for n in names if i % 2 == 0 else reversed(names):
                c0, t0 = time.thread_time(), time.perf_counter()
                predictors[n]()
                wall[n].append((time.perf_counter() - t0) * 1000)
                cpu[n].append((time.thread_time() - c0) * 1000)
    out = {
        n: Latency(
            cpu_p99=float(np.percentile(cpu[n], 99)),
            wall_p50=float(np.percentile(wall[n], 50)),
            wall_p99=float(np.percentile(wall[n], 99)),
        )
        for n in names
    }
    ratio = None
    if len(names) == 2:
        first, second = (np.asarray(wall[n]) for n in names)
        ratio = float(np.median(first / np.maximum(second, 1e-9)))
    return out, ratio


def serving_checks(
    name: str,
    challenger: str,
    champion: str | None,
    frame: pd.DataFrame,
    spec: FeatureSpec,
    requests: int,
    n: int,
) -> dict[str, float]:
    """Latency of scoring one request of `n` candidates through the registered pyfuncs, loaded
    from the registry as a serving host would (the challenger interleaved with the champion,
    see latency.py), and the challenger's size on disk (MB)."""
    uri = f"models:/{name}/{challenger}"
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    batch = pyfunc_input(one_request(frame, spec, n), spec)
    models = {CHALLENGER: mlflow.pyfunc.load_model(uri)}
    if champion:
        models[CHAMPION] = mlflow.pyfunc.load_model(f"models:/{name}/{champion}")
    timed, ratio = measure({k: partial(m.predict, batch) for k, m in models.items()}, requests)
    out = {"model_mb": size / 2**20}
    for label, t in timed.items():
        prefix = "" if label == CHALLENGER else f"{label}_"
        out |= {
            f"{prefix}cpu_p99_ms": t.cpu_p99,
            f"{prefix}wall_p50_ms": t.wall_p50,
            f"{prefix}wall_p99_ms": t.wall_p99,
            f"{prefix}wall_spread": t.spread,
        }
    if ratio is not None:
        out["latency_ratio"] = ratio
    return out
