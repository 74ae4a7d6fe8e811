"""The gates: every threshold of `gates:` in the config, judged on one validation report.

Each gate belongs to a family; each family is one blocking asset check on validation_report,
so the Dagster UI shows which family stopped a challenger, and by how much.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ranker_assets.config import GatesConfig
from ranker_assets.evaluation.offline import ALL, CHALLENGER, DIFFERENCE

FAMILIES: dict[str, str] = {
    "absolute": "Every head's AUC on the next day is above its floor (gates.<head>.min_auc), "
    "on at least gates.min_positives positives.",
    "no_regression": "No head's AUC is worse than the champion's beyond max_auc_regression, "
    "judged by the paired bootstrap interval (fails when the whole interval lies below).",
    "calibration": "Weighted predicted / actual of every head lies in calibration_range.",
    "model_sanity": "No NaN scores; no head's scores collapsed (std above "
    "gates.serving.min_score_std).",
    "serving": "p99 CPU time of a request through the registered pyfunc, its wall time against "
    "the champion's measured interleaved, model size, and the "
    "score distribution against the champion's (PSI) stay within gates.serving.",
}


@dataclass(frozen=True)
class Gate:
    family: str
    name: str
    value: float
    bound: str
    passed: bool
    detail: str = ""

    def describe(self) -> str:
        value = "n/a" if math.isnan(self.value) else f"{self.value:.4g}"
        return (
            f"{self.name} = {value} (bound {self.bound}){': ' + self.detail if self.detail else ''}"
        )


def _row(
    metrics: pd.DataFrame, model: str, head: str, metric: str, slice_: str
) -> pd.Series | None:
    sel = metrics[
        (metrics["model"] == model)
        & (metrics["head"] == head)
        & (metrics["slice"] == slice_)
        & (metrics["metric"] == metric)
    ]
    return sel.iloc[0] if len(sel) else None


def _overall(metrics: pd.DataFrame, model: str, head: str, metric: str) -> pd.Series:
    row = _row(metrics, model, head, metric, ALL)
    if row is None:
        raise KeyError(f"no overall {metric} of {model} for {head} in the metrics")
    return row


def judge(
    metrics: pd.DataFrame,
    sanity: Mapping[str, Mapping[str, float]],
    serving: Mapping[str, float],
    gates: GatesConfig,
    heads: Sequence[str],
    has_champion: bool,
    calibration_slice: str = ALL,
    randomized_slice: str | None = None,
) -> list[Gate]:
    """All gates for a challenger; `sanity[head]` has nan_share and score_std, `serving` has
    cpu_p99_ms, wall_p50_ms, wall_p99_ms, model_mb and (with a champion) latency_ratio,
    champion_wall_p50_ms and score_psi_<head>. Calibration is judged on the rows
    of `calibration_slice`: those the model was calibrated for. With a champion, no regression
    is also judged on `randomized_slice` (the randomized traffic, where position bias cannot
    carry a poisoned label) when its difference has enough positives."""
    out: list[Gate] = []
    insufficient = "insufficient positives"

    def sufficient(row: pd.Series) -> bool:
        return bool(row["sufficient"]) or gates.insufficient_passes

    for head in heads:
        g = gates.for_head(head)
        auc = _overall(metrics, CHALLENGER, head, "auc")
        pos = f"on {int(auc['positives'])} positives"
        if g.min_auc is not None:
            ok = sufficient(auc) and auc["value"] >= g.min_auc
            detail = (
                pos if auc["sufficient"] else f"{insufficient} ({pos}; needs {gates.min_positives})"
            )
            out.append(
                Gate("absolute", f"auc {head}", auc["value"], f">= {g.min_auc:g}", ok, detail)
            )
        if g.calibration_range is not None:
            cal = _row(metrics, CHALLENGER, head, "calibration", calibration_slice)
            low, high = g.calibration_range
            where = "" if calibration_slice == ALL else f" ({calibration_slice})"
            if cal is None:
                value, ok, detail = float("nan"), False, f"no rows in {calibration_slice}"
            else:
                value, detail = cal["value"], f"on {int(cal['positives'])} positives"
                if not cal["sufficient"]:
                    detail = f"{insufficient} ({detail}; needs {gates.min_positives})"
                ok = sufficient(cal) and low <= value <= high
            out.append(
                Gate(
                    "calibration",
                    f"predicted/actual {head}{where}",
                    value,
                    f"[{low:g}, {high:g}]",
                    ok,
                    detail,
                )
            )
        if has_champion and g.max_auc_regression is not None:
            diff = _overall(metrics, DIFFERENCE, head, "auc")
            tol = g.max_auc_regression
            if g.regression_relative:
                tol *= _overall(metrics, "champion", head, "auc")["value"]
            ok = sufficient(diff) and not diff["ci_high"] < -tol
            out.append(
                Gate(
                    "no_regression",
                    f"auc {head} challenger - champion",
                    diff["value"],
                    f"interval not wholly below -{tol:.4g}",
                    ok,
                    f"interval [{diff['ci_low']:.4f}, {diff['ci_high']:.4f}] {pos}",
                )
            )
            rdiff = _row(metrics, DIFFERENCE, head, "auc", randomized_slice or "")
            if rdiff is not None and bool(rdiff["sufficient"]):
                out.append(
                    Gate(
                        "no_regression",
                        f"auc {head} challenger - champion ({randomized_slice})",
                        rdiff["value"],
                        f"interval not wholly below -{tol:.4g}",
                        not rdiff["ci_high"] < -tol,
                        f"interval [{rdiff['ci_low']:.4f}, {rdiff['ci_high']:.4f}] on "
                        f"{int(rdiff['positives'])} positives",
                    )
                )
        s = sanity[head]
        out.append(
            Gate("model_sanity", f"NaN share {head}", s["nan_share"], "== 0", s["nan_share"] == 0)
        )
        out.append(
            Gate(
                "model_sanity",
                f"score std {head}",
                s["score_std"],
                f">= {gates.serving.min_score_std:g}",
                s["score_std"] >= gates.serving.min_score_std,
            )
        )
        if has_champion:
            value = serving[f"score_psi_{head}"]
            out.append(
                Gate(
                    "serving",
                    f"score PSI vs champion {head}",
                    value,
                    f"<= {gates.serving.max_score_psi:g}",
                    value <= gates.serving.max_score_psi,
                )
            )
    budget = gates.serving
    spread = f"wall p50 {serving['wall_p50_ms']:.1f} ms, p99 {serving['wall_p99_ms']:.1f} ms"
    out.append(
        Gate(
            "serving",
            "p99 CPU ms per request",
            serving["cpu_p99_ms"],
            f"<= {budget.max_p99_ms:g}",
            serving["cpu_p99_ms"] <= budget.max_p99_ms,
            f"{budget.candidates_per_request} candidates, one thread; {spread}",
        )
    )
    if has_champion:
        out.append(
            Gate(
                "serving",
                "latency vs champion",
                serving["latency_ratio"],
                f"<= {budget.max_latency_ratio:g}",
                serving["latency_ratio"] <= budget.max_latency_ratio,
                "median paired wall-time ratio, measured interleaved with the champion "
                f"(champion wall p50 {serving['champion_wall_p50_ms']:.1f} ms)",
            )
        )
    out.append(
        Gate(
            "serving",
            "model size MB",
            serving["model_mb"],
            f"<= {budget.max_model_mb:g}",
            serving["model_mb"] <= budget.max_model_mb,
        )
    )
    return out
