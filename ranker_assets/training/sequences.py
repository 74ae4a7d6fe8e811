"""The user's recent actions as model inputs: one padded sequence per request, not per row.

Rows of one request share its sequence (the sequence log is per request), so a window or a
scoring frame is turned into (R, L) token arrays for its R distinct requests plus, per row, the
index of its request: a candidate row costs its target attention only, and the transformer runs
once per request. Sequences are right-aligned (the newest action is the last column) and keep
the last L actions; 0 is padding. Items and attributes are hashed with the same function as
the candidate's own columns, so target attention compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ranker_assets.config import SEQUENCE_ACTION, SEQUENCE_ITEM, SEQUENCE_TS, SequenceSpec
from ranker_assets.training.hashing import hash_ids

ACTION_BUCKETS = 64  # action types are a handful of names
# Hash salts of the sequence's fields (far from the categorical features' 0..C-1): the item
# and each attribute use the same salt for the action and for the candidate.
ITEM_SALT, ACTION_SALT, ATTRIBUTE_SALT = 1000, 1001, 1002
US_PER_HOUR = 3_600_000_000


class SequenceBatch(NamedTuple):
    """What the model reads for a batch of rows: the sequences of their requests."""

    tokens: torch.Tensor  # (R, L, 2 + A) int64: item, action, attributes; 0 = padding
    age_hours: torch.Tensor  # (R, L) float32: how long before the request each action was
    candidates: torch.Tensor  # (N, 1 + A) int64: each row's item and attributes, hashed alike
    request_index: torch.Tensor  # (N,) int64: the row's request among the R


@dataclass(frozen=True)
class SequenceData:
    """A whole window's sequences: R distinct requests, N rows."""

    tokens: torch.Tensor
    age_hours: torch.Tensor
    candidates: torch.Tensor
    request_index: torch.Tensor

    def batch(self, rows: torch.Tensor) -> SequenceBatch:
        """The rows' inputs with only the requests they belong to."""
        requests, index = torch.unique(self.request_index[rows], return_inverse=True)
        return SequenceBatch(
            self.tokens[requests], self.age_hours[requests], self.candidates[rows], index
        )

    def subset(self, rows: torch.Tensor) -> SequenceData:
        return SequenceData(
            self.tokens, self.age_hours, self.candidates[rows], self.request_index[rows]
        )

    def to(self, device: torch.device) -> SequenceData:
        return SequenceData(
            self.tokens.to(device),
            self.age_hours.to(device),
            self.candidates.to(device),
            self.request_index.to(device),
        )


Columns = pa.Table | pd.DataFrame


def _numpy(table: Columns, name: str) -> np.ndarray:
    return table[name].to_numpy()


def _lists(table: Columns, name: str, rows: np.ndarray) -> pa.Array:
    """The list column `name` at `rows` as one Arrow list array (null: no history)."""
    column = table[name]
    if isinstance(column, pa.ChunkedArray):
        return column.take(pa.array(rows)).combine_chunks()
    values = column.to_numpy()[rows]
    missing = [v is None or (isinstance(v, float) and np.isnan(v)) for v in values]
    lists = pa.array([None if m else v for v, m in zip(values, missing, strict=True)])
    # No request here has a history: typed as lists, so they read as empty ones.
    return pa.nulls(len(lists), pa.list_(pa.null())) if pa.types.is_null(lists.type) else lists


def _micros(values: pa.Array | np.ndarray | pd.Series) -> np.ndarray:
    """Times as int64 microseconds since the epoch (a naive time is UTC; integers already are
    microseconds, as the pyfunc's JSON-safe input has them)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        if not pa.types.is_integer(values.type):
            values = pc.cast(values, pa.timestamp("us"))
        return values.cast(pa.int64()).to_numpy(zero_copy_only=False)
    when = pd.to_datetime(pd.Series(values), utc=True).dt.tz_localize(None)
    return when.to_numpy("datetime64[us]").view(np.int64)


def _newest(
    offsets: np.ndarray, nulls: np.ndarray, rows: np.ndarray, newest: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the lists at `rows` (-1: none; a null list is empty) of a list array laid out by
    `offsets`: how many of each one's last `newest` entries there are (all when None), each
    kept entry's place among its list's kept ones, and its position in the array's values."""
    found = rows >= 0
    source = rows[found]
    sizes = np.zeros(len(rows), dtype=np.int64)
    sizes[found] = np.where(nulls[source], 0, np.diff(offsets)[source])
    keep = sizes if newest is None else np.minimum(sizes, newest)
    first = np.zeros(len(rows), dtype=np.int64)  # where each row's kept entries start
    first[found] = offsets[source] + sizes[found] - keep[found]
    ends = np.cumsum(keep)
    within = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - keep, keep)
    return keep, within, np.repeat(first, keep) + within


def _layout(lists: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list array's offsets into its values, and which of its lists are null."""
    return lists.offsets.to_numpy(), lists.is_null().to_numpy(zero_copy_only=False)


def _right_aligned(
    lists: pa.Array, length: int, convert: Callable[[pa.Array], np.ndarray]
) -> np.ndarray:
    """(R, length) array of each list's last `length` entries, newest in the last column.
    Only those entries are converted (hashing is most of the cost)."""
    keep, within, positions = _newest(*_layout(lists), np.arange(len(lists)), length)
    flat = convert(lists.values.take(pa.array(positions)))
    out = np.zeros((len(keep), length), dtype=flat.dtype if len(flat) else np.int64)
    out[np.repeat(np.arange(len(keep)), keep), np.repeat(length - keep, keep) + within] = flat
    return out


def take_lists(
    columns: Mapping[str, pa.Array | pa.ChunkedArray], rows: np.ndarray, newest: int | None
) -> dict[str, pa.Array]:
    """Each list column at `rows` (a row of -1 is null), each list cut to its last `newest`
    entries (all when None; lists are oldest first). Gathers only the kept entries: a model
    that reads 32 of 100 logged actions does not copy the other 68, which were most of a
    training run's loading. Columns laid out alike (a request's lists have one length) share
    one plan of what to gather."""
    out: dict[str, pa.Array] = {}
    plan: tuple[np.ndarray, np.ndarray, pa.Array, pa.Array, pa.Array] | None = None
    for name, column in columns.items():
        lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        offsets, nulls = _layout(lists)
        if plan is None or not (
            np.array_equal(plan[0], offsets) and np.array_equal(plan[1], nulls)
        ):
            keep, _, positions = _newest(offsets, nulls, rows, newest)
            missing = np.ones(len(rows), dtype=bool)
            missing[rows >= 0] = nulls[rows[rows >= 0]]
            ends = np.concatenate([[0], np.cumsum(keep)]).astype(np.int32)
            plan = (offsets, nulls, pa.array(ends), pa.array(positions), pa.array(missing))
        out[name] = pa.ListArray.from_arrays(
            plan[2], lists.values.take(plan[3]), type=lists.type, mask=plan[4]
        )
    return out


def _hashed(salt: int, buckets: int) -> Callable[[pa.Array], np.ndarray]:
    def convert(values: pa.Array) -> np.ndarray:
        if pa.types.is_string(values.type) and values.null_count == 0:
            # Strings repeat (action types, topics): hash each distinct one, not every entry.
            encoded = values.dictionary_encode()
            distinct = hash_ids(encoded.dictionary.to_numpy(zero_copy_only=False), salt, buckets)
            return distinct[encoded.indices.to_numpy()] + 1
        return hash_ids(values.to_numpy(zero_copy_only=False), salt, buckets) + 1

    return convert


def candidate_tokens(table: Columns, spec: SequenceSpec, buckets: int) -> np.ndarray:
    """(N, 1 + A): each row's own item and attributes, hashed as the actions' are."""
    columns = [
        hash_ids(_numpy(table, c), ITEM_SALT if i == 0 else ATTRIBUTE_SALT + i - 1, buckets) + 1
        for i, c in enumerate(spec.candidate_columns)
    ]
    return np.column_stack(columns).astype(np.int64)


def request_keys(table: Columns) -> np.ndarray:
    """Each row's request as an int64 code, numbered in order of first appearance (0, 1, ...).
    The contract makes request ids unique within a day only, so a window of several days (a
    table with a `ds` column) keys on (ds, request_id)."""
    ids = pd.factorize(_numpy(table, "request_id"), use_na_sentinel=False)[0].astype(np.int64)
    if "ds" not in (table.column_names if isinstance(table, pa.Table) else table.columns):
        return ids
    days = pd.factorize(_numpy(table, "ds"), use_na_sentinel=False)[0].astype(np.int64)
    return pd.factorize(days * (int(ids.max(initial=0)) + 1) + ids)[0].astype(np.int64)


def _first_rows(table: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct request: the first row that carries its action lists (the request's first
    row when none does), and each row's request index. A request's lists may sit on one of its
    rows only: that is how the pyfunc takes them (see serving.pyfunc_input)."""
    request_index = request_keys(table)
    # Codes are numbered by first appearance: a request's first row is where the running
    # maximum of the codes steps up (no sort).
    first = np.flatnonzero(np.diff(np.maximum.accumulate(request_index), prepend=-1) > 0)
    lists = table[SEQUENCE_ITEM]
    present = (
        ~lists.is_null().to_numpy(zero_copy_only=False)
        if isinstance(lists, pa.ChunkedArray)
        else lists.notna().to_numpy()
    )
    rows = np.flatnonzero(present)
    requests, at = np.unique(request_index[rows], return_index=True)
    first[requests] = rows[at]
    return first, request_index


def sequence_data(table: Columns, spec: SequenceSpec, length: int, buckets: int) -> SequenceData:
    """The sequences of a table's (or frame's) rows, once per distinct request (request_keys)."""
    first, request_index = _first_rows(table)
    fields = [(SEQUENCE_ITEM, _hashed(ITEM_SALT, buckets))]
    fields.append((SEQUENCE_ACTION, _hashed(ACTION_SALT, ACTION_BUCKETS)))
    fields += [
        (f"action_{a}", _hashed(ATTRIBUTE_SALT + j, buckets)) for j, a in enumerate(spec.attributes)
    ]
    tokens = np.stack(
        [_right_aligned(_lists(table, name, first), length, convert) for name, convert in fields],
        axis=-1,
    )
    times = _right_aligned(_lists(table, SEQUENCE_TS, first), length, _micros)
    request_ts = table["request_ts"]
    request_us = _micros(
        request_ts.take(pa.array(first))
        if isinstance(request_ts, pa.ChunkedArray)
        else request_ts.to_numpy()[first]
    )
    age = np.where(tokens[..., 0] > 0, (request_us[:, None] - times) / US_PER_HOUR, 0.0)
    return SequenceData(
        tokens=torch.from_numpy(np.ascontiguousarray(tokens)),
        age_hours=torch.from_numpy(age.astype(np.float32)),
        candidates=torch.from_numpy(candidate_tokens(table, spec, buckets)),
        request_index=torch.from_numpy(request_index.astype(np.int64).ravel()),
    )
