"""Dataset health: is a sampled day fit to train on, and did it move from the day before?

The article judges a training dataset by its positive/negative ratios, its content-type mix and
its user distribution; these are computed per (config, day), stored in a small Delta table, and
compared with the previous day by the sampled dataset's asset check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Per-head (or per-content-type) fields, flattened to `<field>__<key>` columns in the table.
_GROUPED = (
    "positives",
    "positive_ratio",
    "weighted_rate_in",
    "weighted_rate_out",
    "content_type_share",
)


@dataclass(frozen=True)
class DatasetHealth:
    rows_in: int
    rows_out: int
    negative_keep_rate: float
    positives: dict[str, int]
    positive_ratio: dict[str, float]  # share of sampled trainable rows positive (unweighted)
    weighted_rate_in: dict[str, float]  # label rate of the full day, weighted
    weighted_rate_out: dict[str, float]  # label rate of the sample, weighted: should match
    content_type_share: dict[str, float]
    top1pct_user_share: float  # share of sampled rows from the top 1% of users

    def to_row(self, config: str, ds: str, config_hash: str, upstream: str) -> pa.Table:
        """One flat row for the health table (also the lineage record of the partition)."""
        flat: dict[str, object] = {
            "config": config,
            "ds": ds,
            "config_hash": config_hash,
            "upstream": upstream,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "negative_keep_rate": self.negative_keep_rate,
            "top1pct_user_share": self.top1pct_user_share,
        }
        for key in _GROUPED:
            flat.update({f"{key}__{k}": v for k, v in getattr(self, key).items()})
        return pa.table({k: [v] for k, v in flat.items()})

    @classmethod
    def from_row(cls, row: dict[str, object]) -> DatasetHealth:
        nested: dict[str, dict[str, object]] = {k: {} for k in _GROUPED}
        plain = {}
        for key, value in row.items():
            group, _, sub = key.partition("__")
            if sub and group in nested:
                nested[group][sub] = value
            elif key in cls.__dataclass_fields__:
                plain[key] = value
        return cls(**plain, **nested)


def _summary(
    batches: Iterable[pa.RecordBatch],
    heads: Sequence[str],
    content_types: Sequence[str],
    users: list[pa.Table] | None = None,
) -> dict[str, float]:
    """All rows, then over the rows that can train (shown ones; replay-only rows would dilute
    the ratios): rows, positives and weighted positives per head, rows per content type.
    Streams the batches (memory: one batch); with `users`, appends per-user trainable row
    counts of each batch to it."""
    out = dict.fromkeys(
        ["rows", "n", "w", *heads, *(f"w_{h}" for h in heads), *(f"ct_{c}" for c in content_types)],
        0.0,
    )

    def total(values: pa.Array) -> float:
        return float(pc.sum(values).as_py() or 0)

    for batch in batches:
        shown = (
            batch["impressed"]
            if "impressed" in batch.schema.names
            else pa.array([True] * batch.num_rows, pa.bool_())  # typed even when empty
        )
        weight = pc.if_else(shown, batch["weight"].cast(pa.float64()), 0.0)
        out["rows"] += batch.num_rows
        out["n"] += total(shown.cast(pa.int64()))
        out["w"] += total(weight)
        for lab in heads:
            label = batch[lab].cast(pa.float64())
            out[lab] += total(pc.if_else(shown, label, 0.0))
            out[f"w_{lab}"] += total(pc.multiply(weight, label))
        for c in content_types:
            out[f"ct_{c}"] += total(
                pc.and_(shown, pc.equal(batch["content_type"], c)).cast(pa.int64())
            )
        if users is not None:
            ids = pa.table({"user_id": pc.filter(batch["user_id"], shown)})
            users.append(ids.group_by("user_id").aggregate([("user_id", "count")]))
    return out


def dataset_health(
    rows_in: Iterable[pa.RecordBatch],
    rows_out: Iterable[pa.RecordBatch],
    negative_keep_rate: float,
    heads: Sequence[str],
    content_types: Sequence[str] | None,
) -> DatasetHealth:
    """The health of one sampled day for the ranker's heads, from the full day's rows and
    what the sampler wrote (streamed Arrow batches: no second pass through Spark); content-type
    shares only when the logs have content types."""
    ctypes = tuple(content_types or ())
    users: list[pa.Table] = []
    full, out = _summary(rows_in, heads, ctypes), _summary(rows_out, heads, ctypes, users)
    n_out = int(out["n"])  # sampled rows that can train
    per_user = (
        pa.concat_tables(users).group_by("user_id").aggregate([("user_id_count", "sum")])
        if users
        else pa.table({"user_id_count_sum": pa.array([], pa.int64())})
    )
    counts = np.sort(per_user["user_id_count_sum"].to_numpy())[::-1]
    top_rows = int(counts[: max(1, math.ceil(0.01 * len(counts)))].sum())

    def share(summary: dict[str, float], key: str, total: str) -> float:
        return summary[key] / summary[total] if summary[total] else 0.0

    return DatasetHealth(
        rows_in=int(full["rows"]),
        rows_out=int(out["rows"]),
        negative_keep_rate=negative_keep_rate,
        positives={lab: int(out[lab]) for lab in heads},
        positive_ratio={lab: share(out, lab, "n") for lab in heads},
        weighted_rate_in={lab: share(full, f"w_{lab}", "w") for lab in heads},
        weighted_rate_out={lab: share(out, f"w_{lab}", "w") for lab in heads},
        content_type_share={c: share(out, f"ct_{c}", "n") for c in ctypes},
        top1pct_user_share=(top_rows / n_out) if n_out else 0.0,
    )


def ratio_moves(current: DatasetHealth, previous: DatasetHealth | None) -> dict[str, float]:
    """Per head, how many times the positive ratio moved from the previous day (>= 1)."""
    if previous is None:
        return {}
    moves = {}
    for lab in current.positive_ratio:
        a, b = current.positive_ratio[lab], previous.positive_ratio.get(lab, 0.0)
        moves[lab] = math.inf if min(a, b) == 0 else max(a / b, b / a)
    return moves


def health_problems(
    current: DatasetHealth, previous: DatasetHealth | None, factor: float
) -> list[str]:
    """Why the day is unfit to train on (empty when healthy)."""
    problems = [f"head {lab} has no positives" for lab, n in current.positives.items() if n == 0]
    problems += [
        f"head {lab} positive ratio moved x{m:.2f} from the previous day (limit x{factor:g})"
        for lab, m in ratio_moves(current, previous).items()
        if m > factor and current.positives[lab] > 0
    ]
    return problems


def health_markdown(current: DatasetHealth, previous: DatasetHealth | None) -> str:
    """The health of a day as a markdown table, with the change against the previous day."""
    moves = ratio_moves(current, previous)
    lines = [
        f"rows in {current.rows_in:,} -> out {current.rows_out:,}; negative keep rate "
        f"{current.negative_keep_rate:.4f}; top 1% users hold "
        f"{current.top1pct_user_share:.1%} of rows",
        "",
        "| head | positives | positive ratio | x prev day | weighted rate in | weighted rate out |",
        "|---|---|---|---|---|---|",
    ]
    for lab in current.positives:
        move = f"{moves[lab]:.2f}" if lab in moves else "-"
        lines.append(
            f"| {lab} | {current.positives[lab]:,} | {current.positive_ratio[lab]:.4f} | {move} | "
            f"{current.weighted_rate_in[lab]:.4f} | {current.weighted_rate_out[lab]:.4f} |"
        )
    if current.content_type_share:
        lines += ["", "| content type | share |", "|---|---|"]
        lines += [f"| {c} | {s:.3f} |" for c, s in current.content_type_share.items()]
    return "\n".join(lines)
