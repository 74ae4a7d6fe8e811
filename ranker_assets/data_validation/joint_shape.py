"""The joint shape of a day's labels against the reference days: what label rates cannot show.

A poison can keep every label rate: clicks moved to the bottom of the slate, or labels shuffled
among rows of the same weight. Two checks see it:

- **positives by position**: the share of each label's (weighted) positives per slate position
  bucket, the examination curve, compared by PSI. Moving clicks down the slate moves it.
- **feature-label relation**: a logistic model of each label on the dense features, fitted on
  half of the reference days' requests, scored by AUC on the other half and on the day. A
  shuffle makes the features stop predicting the label: the AUC drops. Judged on the randomized
  slice, where position bias cannot carry a label, when it has enough positives; else on every
  impressed row (the check says which).

A day with fewer than `min_joint_positives` positives of a label is not judged, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ranker_assets.config import RankerConfig

Check = dict[str, object]


@dataclass
class JointShape:
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, day: str, kind: str, name: str, value: float | str, bound: str, ok: bool) -> None:
        self.checks.append(
            {"day": day, "kind": kind, "name": name, "value": value, "bound": bound, "passed": ok}
        )


def position_shares(
    position: np.ndarray, positives: np.ndarray, buckets: Sequence[int]
) -> np.ndarray:
    """Share of the (weighted) positives in each bucket [buckets[i], buckets[i+1])."""
    index = np.searchsorted(np.asarray(buckets[1:]), position, side="right")
    mass = np.bincount(index, positives, len(buckets))
    return mass / max(mass.sum(), 1e-12)


def share_psi(reference: np.ndarray, current: np.ndarray) -> float:
    ref, cur = np.maximum(reference, 1e-4), np.maximum(current, 1e-4)
    return float(((cur - ref) * np.log(cur / ref)).sum())


def auc_se(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil's standard error of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / max(positives * negatives, 1.0)
    return float(np.sqrt(max(var, 0.0)))


def _relation_slice(
    frame: pd.DataFrame, groups: list[np.ndarray], randomized: str, head: str, need: int
) -> str | None:
    """The randomized policy when its rows hold `need` positives of `head` in every group
    (the reference days, then each day), else None: every impressed row."""
    random_rows = (frame["policy"] == randomized).to_numpy()
    y = frame[head].to_numpy()
    ok = all(y[random_rows & g].sum() >= need for g in groups)
    return randomized if ok else None


def joint_shape_checks(
    frame: pd.DataFrame,
    cfg: RankerConfig,
    reference: Sequence[str],
    days: Sequence[str],
    ref_name: str,
) -> JointShape:
    """Positives by position and the feature-label relation of each day against `reference`.

    `frame`: impressed rows of the reference days and `days`, with ds, position, policy, weight,
    the dense features and the heads.
    """
    gates = cfg.gates.shift
    out = JointShape()
    dense = list(cfg.features.dense)
    need = gates.min_joint_positives
    in_ref = frame["ds"].astype(str).isin(reference).to_numpy()
    ref = frame[in_ref]
    for head in cfg.model.heads:
        y_ref = ref[head].to_numpy(dtype=np.float64)
        pos_ref = ref["weight"].to_numpy(dtype=np.float64) * y_ref
        shares_ref = position_shares(ref["position"].to_numpy(), pos_ref, gates.position_buckets)
        groups = [in_ref, *((frame["ds"].astype(str) == d).to_numpy() for d in days)]
        policy = _relation_slice(frame, groups, cfg.vocabulary.randomized_policy, head, need)
        slice_name = f"policy={policy}" if policy else "all impressed rows"
        fit = ref if policy is None else ref[ref["policy"] == policy]
        model = baseline = None
        if fit[head].sum() >= need and fit[head].nunique() == 2 and dense:
            halves = np.random.default_rng(0).random(len(fit)) < 0.5
            model = _fit(fit[halves], dense, head)
            baseline = _auc(model, fit[~halves], dense, head)
        for ds in days:
            day = frame[frame["ds"].astype(str) == ds]
            y = day[head].to_numpy(dtype=np.float64)
            if y.sum() < need or y_ref.sum() < need:
                note = f"insufficient ({int(y.sum())} / {int(y_ref.sum())} positives, need {need})"
                out.add(ds, "positives by position", head, note, "-", True)
                out.add(ds, "feature-label relation", head, note, "-", True)
                continue
            pos = day["weight"].to_numpy(dtype=np.float64) * y
            value = share_psi(
                shares_ref, position_shares(day["position"].to_numpy(), pos, gates.position_buckets)
            )
            ok = value <= gates.max_position_psi
            out.add(ds, "positives by position", head, value, f"<= {gates.max_position_psi:g}", ok)
            if not ok:
                out.problems.append(
                    f"{ds}: label {head}'s positives moved across slate positions (PSI "
                    f"{value:.3f} > {gates.max_position_psi:g}) against {ref_name}"
                )
            rows = day if policy is None else day[day["policy"] == policy]
            _relation(out, ds, head, rows, model, baseline, slice_name, cfg, ref_name)
    return out


def _fit(frame: pd.DataFrame, dense: list[str], head: str) -> Pipeline:
    """Standardized features (unscaled ones stall the solver), then a logistic model."""
    x = np.nan_to_num(frame[dense].to_numpy(dtype=np.float64))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x, frame[head].to_numpy(), logisticregression__sample_weight=frame["weight"])
    return model


def _auc(model: Pipeline, frame: pd.DataFrame, dense: list[str], head: str) -> tuple[float, float]:
    """AUC of `model` on `frame` and its standard error."""
    y = frame[head].to_numpy()
    if y.sum() == 0 or y.sum() == len(y):
        return float("nan"), float("nan")
    score = model.decision_function(np.nan_to_num(frame[dense].to_numpy(dtype=np.float64)))
    auc = float(roc_auc_score(y, score, sample_weight=frame["weight"].to_numpy()))
    return auc, auc_se(auc, float(y.sum()), float(len(y) - y.sum()))


def _relation(
    out: JointShape,
    ds: str,
    head: str,
    rows: pd.DataFrame,
    model: Pipeline | None,
    baseline: tuple[float, float] | None,
    slice_name: str,
    cfg: RankerConfig,
    ref_name: str,
) -> None:
    gates = cfg.gates.shift
    kind = f"feature-label relation ({slice_name})"
    if model is None or baseline is None or rows[head].sum() < gates.min_joint_positives:
        out.add(ds, kind, head, "insufficient positives on this slice", "-", True)
        return
    (ref_auc, ref_se), (auc, se) = baseline, _auc(model, rows, list(cfg.features.dense), head)
    drop = ref_auc - auc
    ok = not (drop > gates.max_relation_auc_drop and drop > 3 * np.hypot(ref_se, se))
    out.add(ds, kind, head, drop, f"AUC drop <= {gates.max_relation_auc_drop:g}", ok)
    if not ok:
        out.problems.append(
            f"{ds}: the dense features stopped predicting label {head} on {slice_name} (AUC "
            f"{ref_auc:.3f} on {ref_name} -> {auc:.3f}; drop > {gates.max_relation_auc_drop:g})"
        )
