"""Sampled Delta window -> contiguous tensors, and a shuffling batch iterator (no per-row Python).

Columns are pulled out of Arrow as whole arrays; categorical ids are hashed into a fixed-size
table per feature, so unseen ids at serving time still land in a trained bucket.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ranker_assets.config import FeatureSpec
from ranker_assets.sampling.run import SAMPLED_TABLE
from ranker_assets.training.hashing import hash_ids
from ranker_assets.training.sequences import (
    SequenceBatch,
    SequenceData,
    request_keys,
    sequence_data,
    take_lists,
)

if TYPE_CHECKING:  # the trainer itself needs no Delta: it is handed Arrow tables
    from ranker_assets.infra.lake import Lake

SEQUENCE_LOG = "sequence_log"  # the ingested recent actions: one row per request


def feature_arrays(
    table: pa.Table | dict[str, np.ndarray], spec: FeatureSpec, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """(dense float32 matrix, hashed categorical int64 matrix) from columns of a table or frame."""

    def col(name: str) -> np.ndarray:
        c = table[name]
        if isinstance(c, pa.ChunkedArray):
            return c.to_numpy(zero_copy_only=False)
        return c.to_numpy() if hasattr(c, "to_numpy") else np.asarray(c)

    dense = np.column_stack([col(n).astype(np.float32, copy=False) for n in spec.dense])
    if spec.categorical:
        cats = np.column_stack(
            [hash_ids(col(n), i, buckets) for i, n in enumerate(spec.categorical)]
        )
    else:
        cats = np.zeros((len(dense), 0), dtype=np.int64)
    return np.ascontiguousarray(dense), np.ascontiguousarray(cats)


@dataclass(frozen=True)
class Tensors:
    """A window of examples as contiguous tensors, one row per example."""

    dense: torch.Tensor  # (N, D) float32, raw values (the model normalizes)
    categorical: torch.Tensor  # (N, C) int64, hashed
    labels: torch.Tensor  # (N, H) float32 in {0, 1}
    weights: torch.Tensor  # (N,) float32
    randomized: torch.Tensor  # (N,) bool: served in random order
    request_id: np.ndarray  # (N,) int64, for request-level splits
    sequence: SequenceData | None = None  # the requests' recent actions, for a sequence ranker

    def __len__(self) -> int:
        return len(self.weights)

    def subset(self, idx: torch.Tensor) -> Tensors:
        return Tensors(
            self.dense[idx],
            self.categorical[idx],
            self.labels[idx],
            self.weights[idx],
            self.randomized[idx],
            self.request_id[idx.cpu().numpy()],
            None if self.sequence is None else self.sequence.subset(idx),
        )

    def to(self, device: torch.device) -> Tensors:
        return Tensors(
            self.dense.to(device),
            self.categorical.to(device),
            self.labels.to(device),
            self.weights.to(device),
            self.randomized.to(device),
            self.request_id,
            None if self.sequence is None else self.sequence.to(device),
        )

    def inputs(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, SequenceBatch | None]:
        """The model's arguments for rows `idx`."""
        seq = None if self.sequence is None else self.sequence.batch(idx)
        return self.dense[idx], self.categorical[idx], seq


def to_tensors(
    table: pa.Table,
    spec: FeatureSpec,
    heads: Sequence[str],
    buckets: int,
    randomized_policy: str = "randomized",
    sequence_length: int = 0,
) -> Tensors:
    """A window as tensors; with a sequence, its requests' last `sequence_length` actions."""
    dense, cats = feature_arrays(table, spec, buckets)
    labels = np.column_stack([table[h].to_numpy().astype(np.float32) for h in heads])
    return Tensors(
        dense=torch.from_numpy(dense),
        categorical=torch.from_numpy(cats),
        labels=torch.from_numpy(np.ascontiguousarray(labels)),
        weights=torch.from_numpy(table["weight"].to_numpy().astype(np.float32)),
        randomized=torch.from_numpy(
            (table["policy"].to_numpy(zero_copy_only=False) == randomized_policy).astype(bool)
        ),
        request_id=table["request_id"].to_numpy(zero_copy_only=False),
        sequence=(
            sequence_data(table, spec.sequence, sequence_length, buckets)
            if spec.sequence is not None
            else None
        ),
    )


def batches(
    n: int, batch_size: int, generator: torch.Generator, groups: torch.Tensor | None = None
) -> Iterator[torch.Tensor]:
    """Shuffled index batches over n rows; with `groups` (a request index per row), whole
    requests are shuffled and kept together, so a batch encodes each request's sequence once."""
    if groups is None:
        yield from torch.randperm(n, generator=generator).split(batch_size)
        return
    order = torch.randperm(int(groups.max()) + 1 if n else 0, generator=generator)
    yield from torch.argsort(order[groups.cpu()], stable=True).split(batch_size)


def holdout_mask(request_id: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Whole requests go to the holdout by a hash, so no request leaks across the split."""
    h = hash_ids(request_id, 10_000 + seed, 1_000_003)
    return h < share * 1_000_003


class TrainingDataError(ValueError):
    """The training window cannot train a ranker; the message says which days and what."""


def load_window(
    lake: Lake,
    config: str,
    days: Sequence[str],
    spec: FeatureSpec,
    heads: Sequence[str],
    newest: int | None = None,
) -> pa.Table:
    """The impressed sampled rows of `config` for `days`, checked: days present, rows, positives
    (with each request's `newest` recent actions, all when None: see attach_sequences).

    Randomized traffic also logs candidates that were never shown; their all-zero labels are
    not outcomes (nobody saw them), so they serve replay and evaluation, not training.
    """
    if not lake.exists(SAMPLED_TABLE):
        raise TrainingDataError(
            f"no sampled datasets yet: sample {config!r} for {list(days)} first"
        )
    missing = [d for d in days if not lake.has_data(SAMPLED_TABLE, d, config=config)]
    if missing:
        raise TrainingDataError(
            f"training window {days[0]}..{days[-1]} of sampling config {config!r} is missing "
            f"the sampled datasets of {missing}; materialize sampled_dataset for those days first"
        )
    columns = [*dict.fromkeys([*spec.row_inputs, *heads, "weight", "policy", "request_id", "ds"])]
    table = lake.read(SAMPLED_TABLE, list(days), columns=[*columns, "impressed"], config=config)
    table = table.filter(table["impressed"]).drop_columns(["impressed"])
    if table.num_rows == 0:
        raise TrainingDataError(f"training window {days[0]}..{days[-1]} ({config!r}) has no rows")
    no_pos = [h for h in heads if not pc.max(table[h]).as_py()]
    if no_pos:
        raise TrainingDataError(
            f"training window {days[0]}..{days[-1]} ({config!r}) has no positives "
            f"for heads {no_pos}"
        )
    return attach_sequences(lake, table, days, spec, newest)


def attach_sequences(
    lake: Lake,
    table: pa.Table,
    days: Sequence[str],
    spec: FeatureSpec,
    newest: int | None = None,
) -> pa.Table:
    """The rows with their requests' recent actions, read by reference from `sequence_log`
    (the `newest` of them, all when None: a model that reads 32 of 100 logged actions need not
    copy the rest, which was most of a training run's loading).

    Examples do not copy a request's lists (they are the bulk of a day's bytes): each distinct
    request gets them on its first row, the other rows hold nulls (sequence_data reads one row
    per request). A request the sequence log lacks has nulls on every row: an empty history.
    Request ids are unique within a day only, so rows are matched on (ds, request_id).
    """
    if spec.sequence is None:
        return table
    names = spec.sequence.columns
    present = [d for d in days if lake.has_data(SEQUENCE_LOG, d)]
    if not present:
        for name in names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.list_(pa.null())))
        return table
    logged = lake.read(SEQUENCE_LOG, present, columns=["ds", "request_id", *names])
    # One key space for logged and example rows: a row finds its request's logged row by key.
    keys = request_keys(
        pa.concat_tables(
            [logged.select(["ds", "request_id"]), table.select(["ds", "request_id"])],
            promote_options="permissive",
        )
    )
    logged_keys, keys = keys[: logged.num_rows], keys[logged.num_rows :]
    take = np.full(len(keys), -1, dtype=np.int64)
    if len(logged_keys):
        order = np.argsort(logged_keys, kind="stable")
        _, first = np.unique(keys, return_index=True)
        at = np.searchsorted(logged_keys[order], keys[first]).clip(max=len(order) - 1)
        found = logged_keys[order][at] == keys[first]
        take[first[found]] = order[at[found]]
    for name, lists in take_lists({n: logged[n] for n in names}, take, newest).items():
        table = table.append_column(name, lists)
    return table
