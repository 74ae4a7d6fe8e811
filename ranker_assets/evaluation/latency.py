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

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


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
    with one_torch_thread():
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
