"""What a model would have shown, for logs of one item per slot: an item table restores the
candidates such logs leave out.

A bandit log (one shown item per slot with its per-slot propensity) does not say what a model
would have shown: the items it would have preferred were never logged. The item table is the
full action set, one row per item with its item-side features. Each randomized request is
crossed with every item, the model scores each pair (request-side features from the logged row,
item-side ones from the table), and its top k are compared slot by slot with what was logged
(per-slot IPS and SNIPS in off_policy.slot_estimates).

Assumes the logging policy could place any item of the table in any slot (a uniform policy
does) and that a slot's reward depends on the item in it. A feature that differs between the
logged items of one request is item-side: if the table lacks it, the pairs cannot be scored and
the estimate is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

# Request x item pairs scored at once (bounds the memory of the cross join).
PAIRS_PER_CHUNK = 200_000
# Columns of a logged row that describe the placement or its outcome, not the request.
PLACEMENT = ("pin_id", "position", "propensity", "impressed", "weight")


class ItemTableError(ValueError):
    """The item table cannot serve as the action set (missing ids, duplicates, nulls)."""


def load_item_table(path: Path, id_type: str) -> pd.DataFrame:
    """The item table, checked: a `pin_id` column of the vocabulary's id type, unique and not
    null, and no null item-side value (a model cannot score an item with a hole in it)."""
    if not path.is_file():
        raise ItemTableError(f"evaluation.item_table: no file at {path}")
    table = pq.read_table(path).to_pandas()
    if "pin_id" not in table.columns:
        raise ItemTableError(f"item table {path} has no pin_id column (got {list(table.columns)})")
    ids = table["pin_id"]
    expected = pd.api.types.is_integer_dtype if id_type == "int64" else pd.api.types.is_object_dtype
    if not expected(ids):
        raise ItemTableError(
            f"item table {path}: pin_id is {ids.dtype}, but vocabulary.id_type is {id_type}"
        )
    nulls = [c for c in table.columns if table[c].isna().any()]
    if nulls:
        raise ItemTableError(f"item table {path}: null values in {nulls}")
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise ItemTableError(
            f"item table {path}: {len(repeated)} repeated pin_id (first: {repeated.iloc[0]!r})"
        )
    return table.reset_index(drop=True)


def why_not_crossable(logged: pd.DataFrame, table: pd.DataFrame, inputs: list[str]) -> str | None:
    """Why these randomized rows cannot be crossed with the item table, if they cannot."""
    unknown = ~logged["pin_id"].isin(table["pin_id"])
    if unknown.any():
        return (
            f"{int(unknown.sum())} of {len(logged)} randomized rows log an item the item table "
            f"lacks (first: {logged.loc[unknown, 'pin_id'].iloc[0]!r}): it is not the full "
            "action set"
        )
    request_side = [c for c in inputs if c not in table.columns and c in logged.columns]
    varying = [
        c
        for c in request_side
        if c != "request_id" and (logged.groupby("request_id")[c].nunique(dropna=False) > 1).any()
    ]
    if varying:
        return (
            f"features {varying} differ between the items of one request, so they are item-side, "
            "but the item table does not carry them: the model's unlogged items cannot be scored"
        )
    return None


def model_slates(
    logged: pd.DataFrame,
    table: pd.DataFrame,
    score: Callable[[pd.DataFrame], np.ndarray],
    k: int,
) -> pd.DataFrame:
    """The k items `score` puts first for each randomized request: request_id, slot, pin_id.

    `score` maps a frame of request x item rows (request columns from the request's first
    logged row, item columns from the table) to one number per row; ties keep table order.
    """
    item_side = [c for c in dict.fromkeys([*PLACEMENT, *table.columns]) if c in logged.columns]
    context = logged.drop_duplicates("request_id").drop(columns=item_side)
    items, k = len(table), min(k, len(table))
    per_chunk = max(1, PAIRS_PER_CHUNK // items)
    parts = []
    for start in range(0, len(context), per_chunk):
        requests = context.iloc[start : start + per_chunk].reset_index(drop=True)
        pairs = pd.concat(
            [
                requests.loc[np.repeat(np.arange(len(requests)), items)].reset_index(drop=True),
                pd.concat([table] * len(requests), ignore_index=True),
            ],
            axis=1,
        )
        scores = np.asarray(score(pairs), dtype=np.float64).reshape(len(requests), items)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        parts.append(
            pd.DataFrame(
                {
                    "request_id": np.repeat(requests["request_id"].to_numpy(), k),
                    "slot": np.tile(np.arange(k), len(requests)),
                    "pin_id": table["pin_id"].to_numpy()[top.ravel()],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def slot_matches(logged: pd.DataFrame, slates: pd.DataFrame) -> np.ndarray:
    """Per logged row: does the model show the logged item in the logged slot?"""
    chosen = logged[["request_id", "position"]].merge(
        slates.rename(columns={"slot": "position", "pin_id": "chosen"}),
        on=["request_id", "position"],
        how="left",
    )
    return (chosen["chosen"].to_numpy() == logged["pin_id"].to_numpy()) & chosen[
        "chosen"
    ].notna().to_numpy()
