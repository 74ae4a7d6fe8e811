"""Data validation before training: is the training window fit to train on?

Two guards, both blocking: a day whose sampled dataset failed its health check is never trained
on unless the config names it as reviewed and accepted; and no day of the window may shift too
far from the days before the window: PSI per dense feature, weighted rate ratio per label, and
the joint shape that a poison keeping label rates cannot keep (where in the slate positives
fall, how well the features predict each label: joint_shape.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow.compute as pc

from ranker_assets.config import RankerConfig
from ranker_assets.data_validation.joint_shape import joint_shape_checks
from ranker_assets.infra.lake import Lake
from ranker_assets.sampling.health import DatasetHealth, health_problems
from ranker_assets.sampling.run import SAMPLED_TABLE, recorded_health


class DataValidationError(ValueError):
    """The training window failed data validation; the message names the day and the column."""


def psi(
    reference: np.ndarray,
    current: np.ndarray,
    w_ref: np.ndarray,
    w_cur: np.ndarray,
    bins: int,
) -> float:
    """Population stability index of `current` against `reference`, on reference quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), w_ref, len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), w_cur, len(edges) + 1)
    ref = np.maximum(ref / ref.sum(), 1e-4)
    cur = np.maximum(cur / cur.sum(), 1e-4)
    return float(((cur - ref) * np.log(cur / ref)).sum())


@dataclass(frozen=True)
class WindowValidation:
    days: list[str]
    reference: list[str]
    checks: list[dict[str, object]]  # day, kind, name, value, bound, passed, note
    problems: list[str]

    def markdown(self) -> str:
        ref = f"{self.reference[0]}..{self.reference[-1]}" if self.reference else "none (too early)"
        lines = [
            f"data validation of {self.days[0]}..{self.days[-1]} against {ref}: "
            + ("PASS" if not self.problems else "FAIL: " + "; ".join(self.problems)),
            "",
            "| day | check | column | value | bound | passed |",
            "|---|---|---|---|---|---|",
        ]
        for c in self.checks:
            value = c["value"] if isinstance(c["value"], str) else f"{c['value']:.4g}"
            lines.append(
                f"| {c['day']} | {c['kind']} | {c['name']} | {value} | {c['bound']} | "
                f"{'yes' if c['passed'] else '**no**'} |"
            )
        return "\n".join(lines)


def _health_checks(
    lake: Lake, cfg: RankerConfig, config: str, days: Sequence[str]
) -> tuple[list[dict[str, object]], list[str]]:
    checks, problems = [], []
    accepted = set(cfg.gates.accepted_unhealthy_days)
    for ds in days:
        row = recorded_health(lake, config, ds)
        if row is None:
            problems.append(f"{ds}: sampled dataset of {config!r} has no health record")
            continue
        prev = recorded_health(lake, config, str(date.fromisoformat(ds) - timedelta(days=1)))
        found = health_problems(
            DatasetHealth.from_row(row),
            DatasetHealth.from_row(prev) if prev else None,
            cfg.sampling.max_ratio_change,
        )
        ok = not found or ds in accepted
        note = "; ".join(found) or "healthy"
        if found and ds in accepted:
            note += " (accepted by gates.accepted_unhealthy_days)"
        checks.append(
            {
                "day": ds,
                "kind": "health",
                "name": "dataset_health",
                "value": note,
                "bound": "-",
                "passed": ok,
            }
        )
        if not ok:
            problems.append(
                f"{ds}: dataset_health of {config!r} failed ({note}); list the day under "
                "gates.accepted_unhealthy_days once reviewed"
            )
    return checks, problems


def validate_window(
    lake: Lake, cfg: RankerConfig, config: str, days: Sequence[str]
) -> WindowValidation:
    """Health of every day, then each day's shift against the `reference_days` before the window."""
    gates = cfg.gates.shift
    checks, problems = _health_checks(lake, cfg, config, days)
    first = date.fromisoformat(days[0])
    candidates = [str(first - timedelta(days=i)) for i in range(gates.reference_days, 0, -1)]
    reference = [d for d in candidates if lake.has_data(SAMPLED_TABLE, d, config=config)]
    if not reference:
        # Said, not skipped silently: a log no longer than the window has nothing to compare.
        checks.append(
            {
                "day": f"{days[0]}..{days[-1]}",
                "kind": "shift",
                "name": "all columns",
                "value": f"not judged: no sampled day of {config!r} in the "
                f"{gates.reference_days} days before the window",
                "bound": "-",
                "passed": True,
            }
        )
        return WindowValidation(list(days), [], checks, problems)
    heads = list(cfg.model.heads)
    columns = [
        *dict.fromkeys(
            [*cfg.features.dense, *heads, "weight", "impressed", "ds", "position", "policy"]
        )
    ]
    table = lake.read(SAMPLED_TABLE, [*reference, *days], columns=columns, config=config)
    table = table.filter(table["impressed"])
    joint = joint_shape_checks(
        table.to_pandas(), cfg, reference, days, f"{reference[0]}..{reference[-1]}"
    )
    checks += joint.checks
    problems += joint.problems
    in_ref = pc.is_in(table["ds"], value_set=pc.cast(reference, table["ds"].type)).to_numpy(
        zero_copy_only=False
    )
    day_of = table["ds"].to_numpy(zero_copy_only=False)
    w = table["weight"].to_numpy().astype(np.float64)
    for ds in days:
        cur = day_of == ds
        for feature in cfg.features.dense:
            x = table[feature].to_numpy().astype(np.float64)
            value = psi(x[in_ref], x[cur], w[in_ref], w[cur], gates.psi_bins)
            ok = value <= gates.max_feature_psi
            checks.append(
                {
                    "day": ds,
                    "kind": "feature PSI",
                    "name": feature,
                    "value": value,
                    "bound": f"<= {gates.max_feature_psi:g}",
                    "passed": ok,
                }
            )
            if not ok:
                problems.append(
                    f"{ds}: feature {feature} shifted (PSI {value:.3f} > "
                    f"{gates.max_feature_psi:g}) against {reference[0]}..{reference[-1]}"
                )
        for head in heads:
            y = table[head].to_numpy().astype(np.float64)
            pos_ref, pos_cur = int(y[in_ref].sum()), int(y[cur].sum())
            rate_ref = (w[in_ref] * y[in_ref]).sum() / max(w[in_ref].sum(), 1e-12)
            rate_cur = (w[cur] * y[cur]).sum() / max(w[cur].sum(), 1e-12)
            low, high = sorted((pos_ref, pos_cur))
            # A rate on few positives is noise, unless a well-observed label vanished.
            if low < gates.min_positives and not (low == 0 and high >= gates.min_positives):
                note = f"insufficient ({pos_cur} / {pos_ref} positives)"
                checks.append(
                    {
                        "day": ds,
                        "kind": "label rate",
                        "name": head,
                        "value": note,
                        "bound": "-",
                        "passed": True,
                    }
                )
                continue
            ratio = (
                max(rate_cur / rate_ref, rate_ref / rate_cur)
                if min(rate_cur, rate_ref) > 0
                else (1.0 if rate_cur == rate_ref else float("inf"))
            )
            ok = ratio <= gates.max_label_rate_ratio
            checks.append(
                {
                    "day": ds,
                    "kind": "label rate ratio",
                    "name": head,
                    "value": ratio,
                    "bound": f"<= {gates.max_label_rate_ratio:g}",
                    "passed": ok,
                }
            )
            if not ok:
                problems.append(
                    f"{ds}: label {head} rate moved x{ratio:.2f} ({rate_ref:.4f} -> "
                    f"{rate_cur:.4f}) against {reference[0]}..{reference[-1]} "
                    f"(limit x{gates.max_label_rate_ratio:g})"
                )
    return WindowValidation(list(days), reference, checks, problems)
