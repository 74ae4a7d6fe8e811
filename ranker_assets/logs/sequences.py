"""The sequence log's contract: per request, the user's recent actions as parallel lists.

Scalar columns (request id, user id, request time) follow the pandera contract like every other
log. The list columns are checked here, all rows at once in Arrow (a Python loop per action would
cost minutes a day): each rule names the rows that break it, so ingestion quarantines exactly
those, with the rule, the column and a reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

from ranker_assets.config import (
    SEQUENCE_ACTION,
    SEQUENCE_ITEM,
    SEQUENCE_TS,
    SequenceSpec,
    Vocabulary,
)

TIMESTAMP = pa_arrow.timestamp("us", tz="UTC")


def sequence_log_schema(vocab: Vocabulary) -> pa.DataFrameSchema:
    """The scalar columns of the sequence log: one row per request (the lists are checked by
    `list_problems`)."""
    ident = (
        pa.Column(str, pa.Check.str_length(min_value=1))
        if vocab.id_type == "string"
        else pa.Column("int64", pa.Check.ge(0, error="ids are non-negative integers"))
    )
    return pa.DataFrameSchema(
        {
            "request_id": ident,
            "user_id": ident,
            "request_ts": pa.Column(pd.DatetimeTZDtype("us", "UTC")),
        },
        unique=["request_id"],
        strict=False,
        coerce=False,
        name="sequence_log",
    )


def list_types(spec: SequenceSpec, vocab: Vocabulary) -> dict[str, pa_arrow.DataType | None]:
    """Element type of each list column (None: an attribute, int64 or string as logged)."""
    item = pa_arrow.string() if vocab.id_type == "string" else pa_arrow.int64()
    types: dict[str, pa_arrow.DataType | None] = {
        SEQUENCE_ITEM: item,
        SEQUENCE_ACTION: pa_arrow.string(),
        SEQUENCE_TS: TIMESTAMP,
    }
    types.update({c: None for c in spec.columns[3:]})
    return types


@dataclass(frozen=True)
class Problem:
    """Rows of a frame that break one rule of the sequence contract."""

    rows: np.ndarray  # bool per row
    rule: str
    column: str
    detail: str


def _as_list_array(values: pd.Series, element: pa_arrow.DataType | None) -> pa_arrow.Array | None:
    """The column as an Arrow list array of `element` (None: int64 or string, as logged), or
    None when it cannot be read so (a type error of the whole column: a file has one type)."""
    try:
        arr = pa_arrow.array(values.tolist(), from_pandas=True)
    except (pa_arrow.ArrowException, TypeError, ValueError):
        return None
    if pa_arrow.types.is_null(arr.type):  # every list null: typed as expected, flagged later
        return arr.cast(pa_arrow.list_(element or pa_arrow.int64()))
    if not pa_arrow.types.is_list(arr.type):
        return None
    child = arr.type.value_type
    if element is None:
        element = pa_arrow.string() if pa_arrow.types.is_string(child) else pa_arrow.int64()
    if pa_arrow.types.is_null(child) or child == element:
        return arr.cast(pa_arrow.list_(element))
    if element == TIMESTAMP and pa_arrow.types.is_timestamp(child):
        # A naive time is read as UTC, as the other logs' times are.
        micros = pc.list_flatten(arr).cast(pa_arrow.timestamp("us")).cast(pa_arrow.int64())
        return pa_arrow.ListArray.from_arrays(
            arr.offsets, micros.cast(TIMESTAMP), mask=arr.is_null()
        )
    if element == pa_arrow.int64() and pa_arrow.types.is_integer(child):
        try:
            return arr.cast(pa_arrow.list_(element))
        except pa_arrow.ArrowInvalid:
            return None
    return None


def _rows_with(parent: np.ndarray, bad: np.ndarray, n: int) -> np.ndarray:
    """Rows that own at least one flagged element."""
    return np.bincount(parent[bad], minlength=n)[:n] > 0


def list_problems(
    df: pd.DataFrame,
    request_ts: pd.Series,
    spec: SequenceSpec,
    vocab: Vocabulary,
) -> tuple[list[Problem], dict[str, pa_arrow.Array]]:
    """Every rule the list columns of `df` break, strongest first, and the columns as typed
    Arrow lists (for the rows that pass)."""
    n = len(df)
    problems: list[Problem] = []
    typed: dict[str, pa_arrow.Array] = {}
    lengths: dict[str, np.ndarray] = {}
    for name, element in list_types(spec, vocab).items():
        if name not in df.columns:
            problems.append(Problem(np.ones(n, bool), "missing_column", name, "column absent"))
            continue
        arr = _as_list_array(df[name], element)
        if arr is None:
            expected = "int64 or string" if element is None else str(element)
            problems.append(
                Problem(np.ones(n, bool), "wrong_type", name, f"expected a list of {expected}")
            )
            continue
        typed[name] = arr
        problems.append(
            Problem(
                arr.is_null().to_numpy(zero_copy_only=False), "missing_value", name, "null list"
            )
        )
        parent = pc.list_parent_indices(arr).to_numpy()
        flat = pc.list_flatten(arr)
        problems.append(
            Problem(
                _rows_with(parent, flat.is_null().to_numpy(zero_copy_only=False), n),
                "missing_value",
                name,
                "null entry in the list",
            )
        )
        lengths[name] = pc.fill_null(pc.list_value_length(arr), 0).to_numpy()
    if SEQUENCE_ITEM in lengths:
        for name, length in lengths.items():
            if name == SEQUENCE_ITEM:
                continue
            problems.append(
                Problem(
                    length != lengths[SEQUENCE_ITEM],
                    "sequence_length_mismatch",
                    name,
                    f"{name} has another number of entries than {SEQUENCE_ITEM}",
                )
            )
        problems.append(
            Problem(
                lengths[SEQUENCE_ITEM] > spec.max_length,
                "sequence_too_long",
                SEQUENCE_ITEM,
                f"more than features.sequence.max_length = {spec.max_length} actions",
            )
        )
    problems.extend(_value_problems(typed, request_ts, vocab, n))
    return problems, typed


def _value_problems(
    typed: dict[str, pa_arrow.Array], request_ts: pd.Series, vocab: Vocabulary, n: int
) -> Iterator[Problem]:
    """Value rules on readable lists: item ids, action types, time order and time bounds."""
    if SEQUENCE_ITEM in typed:
        items = typed[SEQUENCE_ITEM]
        parent = pc.list_parent_indices(items).to_numpy()
        flat = pc.list_flatten(items)
        bad = (
            pc.less(flat, 0)
            if pa_arrow.types.is_integer(flat.type)
            else pc.equal(pc.utf8_length(flat), 0)
        )
        yield Problem(
            _rows_with(parent, pc.fill_null(bad, False).to_numpy(zero_copy_only=False), n),
            "contract",
            SEQUENCE_ITEM,
            "item ids are non-negative integers or non-empty strings",
        )
    if SEQUENCE_ACTION in typed:
        actions = typed[SEQUENCE_ACTION]
        parent = pc.list_parent_indices(actions).to_numpy()
        known = pc.is_in(pc.list_flatten(actions), pa_arrow.array(vocab.label_events))
        yield Problem(
            _rows_with(parent, ~pc.fill_null(known, True).to_numpy(zero_copy_only=False), n),
            "contract",
            SEQUENCE_ACTION,
            f"action types are label events of the vocabulary {list(vocab.label_events)}",
        )
    if SEQUENCE_TS in typed:
        times = typed[SEQUENCE_TS]
        parent = pc.list_parent_indices(times).to_numpy()
        ts = pc.list_flatten(times).cast(pa_arrow.int64()).to_numpy(zero_copy_only=False)
        ts = np.nan_to_num(ts.astype(np.float64), nan=-np.inf)
        same = np.zeros(len(ts), bool)
        same[1:] = parent[1:] == parent[:-1]
        earlier = np.zeros(len(ts), bool)
        earlier[1:] = ts[1:] < ts[:-1]
        yield Problem(
            _rows_with(parent, same & earlier, n),
            "sequence_unsorted",
            SEQUENCE_TS,
            "action times must be ascending (oldest first)",
        )
        when = pd.to_datetime(request_ts, utc=True)
        request_us = np.where(
            when.isna(), np.inf, when.dt.tz_localize(None).to_numpy("datetime64[us]").view(np.int64)
        )
        yield Problem(
            _rows_with(parent, ts >= request_us[parent], n),
            "sequence_after_request",
            SEQUENCE_TS,
            "an action is timed at or after its request (a future action leaks the label)",
        )
