"""Ids -> embedding buckets: one deterministic hash for training, serving and every process."""

from __future__ import annotations

import numpy as np
import pandas as pd

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hash_ids(values: np.ndarray, feature_index: int, buckets: int) -> np.ndarray:
    """Deterministic id -> bucket in [0, buckets), different per feature (Fibonacci hashing).

    String ids are first hashed to 64 bits (pandas' fixed-key SipHash, stable across runs),
    each distinct value once (the same hashes, far faster for repeated values).
    """
    values = np.asarray(values)
    if values.dtype.kind in "OUS":
        values = pd.util.hash_array(values.astype(object), categorize=True)
    with np.errstate(over="ignore"):
        x = values.astype(np.uint64) * _GOLDEN + np.uint64(feature_index + 1) * np.uint64(
            0xBF58476D1CE4E5B9
        )
        x ^= x >> np.uint64(31)
    return (x % np.uint64(buckets)).astype(np.int64)
