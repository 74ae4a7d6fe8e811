"""The validation report of one challenger: everything the gates judge, in one place.

The challenger (a `ranker_model` partition) and the serving champion are scored on the same
rows: the training examples of the day after the challenger's window, which neither trained on.
Offline metrics per head and slice with paired intervals, off-policy values of each model's
top-K on the day's randomized traffic (with the simulator's true value beside them when a
ground-truth table exists), model sanity, serving checks through the registered pyfunc, and
the gate verdicts. Stored as Delta rows (history) and logged to the challenger's MLflow run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.tracking import MlflowClient

from ranker_assets.config import RankerConfig
from ranker_assets.data_validation.window import psi
from ranker_assets.evaluation.action_set import (
    model_slates,
    slot_matches,
)
from ranker_assets.evaluation.gates import Gate, judge
from ranker_assets.evaluation.latency import serving_checks
from ranker_assets.evaluation.off_policy import slate_estimates, slot_estimates
from ranker_assets.evaluation.offline import ALL, CHALLENGER, CHAMPION, DIFFERENCE, compare_models
from ranker_assets.evaluation.plots import (
    auc_by_slice,
    auc_over_days,
    calibration_curves,
    embedded_markdown,
)
from ranker_assets.evaluation.rows import (
    calibration_rows,
    evaluation_day,
    load_evaluation_rows,
    off_policy_basis,
    randomized_slice,
    read_truth,
    served_utility,
)
from ranker_assets.infra.lake import Lake
from ranker_assets.training.registry import RankerPair
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.tracking import load_registered, raw_name
from ranker_assets.world.truth import slate_truth

VALIDATION_TABLE = "validation_report"
METRICS_TABLE = "validation_metrics"


def _interval(value: float, low: float, high: float, signed: bool = False) -> str:
    if np.isnan(value):
        return "n/a (a slot has no matched rows)"
    f = "+.4f" if signed else ".4f"
    return f"{value:{f}} [{low:{f}}, {high:{f}}]"


@dataclass
class ValidationReport:
    ds: str
    config: str
    eval_day: str
    name: str
    challenger: RankerPair
    champion: RankerPair | None
    metrics: pd.DataFrame
    ope: pd.DataFrame
    gates: list[Gate]
    calibration: dict[str, str]
    serving: dict[str, float]
    rows: int
    requests: int
    heads: tuple[str, ...]
    ope_note: str = ""  # why no off-policy value was computed, when none was
    ope_basis: str = ""  # how the values were computed, when not over the logged candidates

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def failed(self, family: str | None = None) -> list[Gate]:
        return [g for g in self.gates if not g.passed and family in (None, g.family)]

    def headline(self) -> str:
        who = f"{self.name} v{self.challenger.version} ({self.config}, through {self.ds})"
        against = f"champion v{self.champion.version}" if self.champion else "no champion yet"
        if self.passed:
            if self.champion is None:
                return (
                    f"PASS: {who} may serve; no champion yet, so only absolute gates applied; "
                    f"validated on {self.eval_day}"
                )
            return f"PASS: {who} may replace {against}; validated on {self.eval_day}"
        families = sorted({g.family for g in self.failed()})
        return f"FAIL ({', '.join(families)}): {who} against {against} on {self.eval_day}"

    def auc(self, head: str) -> float:
        """The challenger's AUC of `head` on the evaluation day (all rows)."""
        return float(self._metric(CHALLENGER, head, "auc")["value"])

    def _metric(self, model: str, head: str, metric: str, slice_: str = ALL) -> pd.Series | None:
        m = self.metrics
        sel = m[
            (m["model"] == model)
            & (m["head"] == head)
            & (m["metric"] == metric)
            & (m["slice"] == slice_)
        ]
        return None if sel.empty else sel.iloc[0]

    def markdown(self) -> str:
        lines = [f"**{self.headline()}**", ""]
        lines += [f"- {g.family}: {g.describe()}" for g in self.failed()]
        lines += [
            "",
            f"{self.rows:,} rows of {self.requests:,} requests on {self.eval_day}, "
            "never trained on.",
            "",
            "| head | metric | challenger [interval] | champion | difference [interval] "
            "| positives |",
            "|---|---|---|---|---|---|",
        ]
        metrics = list(dict.fromkeys(self.metrics["metric"]))
        for head in self.heads:
            for metric in metrics:
                ch = self._metric(CHALLENGER, head, metric)
                cp = self._metric(CHAMPION, head, metric)
                df = self._metric(DIFFERENCE, head, metric)
                insufficient = "" if ch["sufficient"] else " (insufficient)"
                lines.append(
                    f"| {head} | {metric} | {_interval(ch.value, ch.ci_low, ch.ci_high)} | "
                    f"{'-' if cp is None else f'{cp.value:.4f}'} | "
                    f"{'-' if df is None else _interval(df.value, df.ci_low, df.ci_high, True)} | "
                    f"{int(ch['positives'])}{insufficient} |"
                )
        lines += [
            "",
            "Calibration of the served model: "
            + ", ".join(f"{h} {s}" for h, s in self.calibration.items()),
        ]
        if self.ope_note:
            lines += ["", f"Off-policy values: not computed: {self.ope_note}."]
        if not self.ope.empty:
            lines += [
                "",
                "Off-policy value of each model's top-K on randomized traffic "
                f"(engagements per request{self.ope_basis}):",
                "",
                "| model | head | IPS [interval] | SNIPS [interval] | PBM [interval] | true value "
                "| matched rows |",
                "|---|---|---|---|---|---|---|",
            ]
            for (model, head), g in self.ope.groupby(["model", "head"], sort=False):
                e = g.set_index("estimator")
                truth = g["truth"].iloc[0]
                ips, snips, pbm = (
                    _interval(*e.loc[k, ["value", "ci_low", "ci_high"]]) if k in e.index else "n/a"
                    for k in ("ips", "snips", "pbm")
                )
                true = "-" if np.isnan(truth) else f"{truth:.4f}"
                matched = int(g["matched_rows"].iloc[0])
                lines.append(f"| {model} | {head} | {ips} | {snips} | {pbm} | {true} | {matched} |")
        lines += ["", "| gate | family | value | bound | passed |", "|---|---|---|---|---|"]
        lines += [
            f"| {g.name} | {g.family} | {g.value:.4g} | {g.bound} | "
            f"{'yes' if g.passed else '**no**'} |"
            for g in self.gates
        ]
        slices = [s for s in dict.fromkeys(self.metrics["slice"]) if s != ALL]
        if slices:
            lines += ["", "AUC by slice (challenger / champion):", ""]
            lines += [
                "| slice | " + " | ".join(self.heads) + " |",
                "|---" * (len(self.heads) + 1) + "|",
            ]
            for s in slices:
                cells = []
                for head in self.heads:
                    ch, cp = (
                        self._metric(CHALLENGER, head, "auc", s),
                        self._metric(CHAMPION, head, "auc", s),
                    )
                    cells.append(
                        f"{ch['value']:.3f}" + ("" if cp is None else f" / {cp['value']:.3f}")
                    )
                lines.append(f"| {s} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def table_row(self) -> pa.Table:
        row: dict[str, object] = {
            "config": self.config,
            "ds": self.ds,
            "eval_day": self.eval_day,
            "challenger_version": self.challenger.version,
            "challenger_raw_version": self.challenger.raw_version,
            "champion_version": self.champion.version if self.champion else "",
            "passed": self.passed,
            "failed_gates": "; ".join(f"{g.family}: {g.describe()}" for g in self.failed()),
            "rows": self.rows,
            "report": self.markdown(),
        }
        for head in self.heads:
            row[f"auc_{head}"] = self.auc(head)
        return pa.table({k: [v] for k, v in row.items()})

    def metrics_table(self) -> pa.Table:
        frame = self.metrics.assign(config=self.config, ds=self.ds, eval_day=self.eval_day)
        return pa.Table.from_pandas(frame, preserve_index=False)


def _sanity(scores: pd.DataFrame, heads: tuple[str, ...]) -> dict[str, dict[str, float]]:
    out = {}
    for head in heads:
        p = scores[f"p_{head}"].to_numpy(dtype=np.float64)
        finite = p[np.isfinite(p)]
        out[head] = {
            "nan_share": float(1 - len(finite) / len(p)) if len(p) else 1.0,
            "score_std": float(finite.std()) if len(finite) else 0.0,
        }
    return out


def _calibration_status(client: MlflowClient, name: str, version: str) -> dict[str, str]:
    run_id = client.get_model_version(name, version).run_id
    tags = client.get_run(run_id).data.tags
    return {
        k.removeprefix("calibration_"): v for k, v in tags.items() if k.startswith("calibration_")
    }


def validate_challenger(
    lake: Lake,
    cfg: RankerConfig,
    name: str,
    ds: str,
    config: str,
    challenger: RankerPair,
    champion: RankerPair | None,
    landing: Path | None = None,
) -> tuple[ValidationReport, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Validate `challenger` (trained through `ds`) against `champion` on the next day.

    Returns the report, the impressed rows and each model's scores on them (for plots).
    """
    heads = tuple(cfg.model.heads)
    eval_day = evaluation_day(ds)
    frame = load_evaluation_rows(lake, cfg, eval_day)
    impressed = frame[frame["impressed"]].reset_index(drop=True)
    randomized = frame[frame["policy"] == cfg.vocabulary.randomized_policy].reset_index(drop=True)
    models = {CHALLENGER: challenger, **({CHAMPION: champion} if champion else {})}
    scores, ope_parts = {}, []
    truth = read_truth(landing, eval_day)
    if truth is not None and not randomized.empty:
        cols = ["request_id", "pin_id", "p_examine", "p_hide", *(f"p_{h}" for h in heads)]
        truth = randomized[["request_id", "pin_id", "position"]].merge(
            truth[cols], on=["request_id", "pin_id"], how="left"
        )
    e = cfg.evaluation
    ope_note, items = off_policy_basis(randomized, cfg)
    for label, pair in models.items():
        module, spec = load_registered(f"models:/{name}/{pair.version}")
        scores[label] = predict_frame(module, impressed, spec)
        if ope_note:
            continue
        serve = partial(served_utility, module, spec, cfg.ranking_weights())
        stats = (e.top_k, e.bootstrap_samples, e.confidence, e.seed)
        true_value = {}
        if items is not None:  # one item per slot: what the model would show, over every item
            slates = model_slates(randomized, items, serve, e.top_k)
            ope = slot_estimates(randomized, slot_matches(randomized, slates), heads, *stats)
        else:
            served = serve(randomized)
            ope = slate_estimates(randomized, served, heads, *stats)
            if truth is not None and truth["p_examine"].notna().all():
                true_value = slate_truth(truth, served, heads, e.top_k, cfg.world)
        ope_parts.append(ope.assign(model=label, truth=ope["head"].map(true_value).astype(float)))
    evaluation, calibration_slice = calibration_rows(cfg)
    metrics = compare_models(impressed, scores, heads, evaluation, cfg.gates.min_positives)
    serving = serving_checks(
        name,
        challenger.version,
        champion.version if champion else None,
        impressed,
        cfg.features,
        cfg.gates.serving.latency_requests,
        cfg.gates.serving.candidates_per_request,
    )
    if champion:
        for head in heads:
            ch, cp = (
                scores[m][f"p_{head}"].to_numpy(dtype=np.float64) for m in (CHALLENGER, CHAMPION)
            )
            ones = np.ones(len(ch))
            serving[f"score_psi_{head}"] = psi(cp, ch, ones, ones, cfg.gates.shift.psi_bins)
    gates = judge(
        metrics,
        _sanity(scores[CHALLENGER], heads),
        serving,
        cfg.gates,
        heads,
        champion is not None,
        calibration_slice,
        randomized_slice(cfg),
    )
    report = ValidationReport(
        ds=ds,
        config=config,
        eval_day=eval_day,
        name=name,
        challenger=challenger,
        champion=champion,
        metrics=metrics,
        ope=pd.concat(ope_parts, ignore_index=True) if ope_parts else pd.DataFrame(),
        ope_note=ope_note or "",
        ope_basis=""
        if items is None
        else f"; per slot, over the {len(items)} items of {cfg.evaluation.item_table}",
        gates=gates,
        calibration=_calibration_status(MlflowClient(), name, challenger.version),
        serving=serving,
        rows=len(impressed),
        requests=int(impressed["request_id"].nunique()),
        heads=heads,
    )
    return report, impressed, scores


def store_report(lake: Lake, report: ValidationReport) -> None:
    """Metric history first, then the report row deployment reads (re-runs replace both)."""
    where = {"config": report.config, "ds": report.ds}
    lake.replace_partition(METRICS_TABLE, report.metrics_table(), where)
    lake.replace_partition(VALIDATION_TABLE, report.table_row(), where)


def log_report(
    report: ValidationReport,
    rows: pd.DataFrame,
    scores: dict[str, pd.DataFrame],
    history: pd.DataFrame,
) -> tuple[list[str], str]:
    """The report, its metrics and PNG plots as artifacts of the challenger's MLflow run.

    `history` is this config's stored validation metrics (every evaluation day so far).
    Returns the artifact paths and the plots as inline markdown for the asset page.
    """
    client = MlflowClient()
    run_id = client.get_model_version(report.name, report.challenger.version).run_id
    folder = f"validation/{report.eval_day}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "report.md").write_text(report.markdown())
        report.metrics.to_csv(out / "metrics.csv", index=False)
        if not report.ope.empty:
            report.ope.to_csv(out / "off_policy.csv", index=False)
        plots = [
            calibration_curves(rows, scores, list(report.heads), out / "calibration_curves.png"),
            auc_by_slice(report.metrics, out / "auc_challenger_vs_champion.png"),
            auc_over_days(history, out / "auc_over_days.png"),
        ]
        client.log_artifacts(run_id, str(out), folder)
        names = sorted(p.name for p in out.iterdir())
        inline = embedded_markdown(plots)
    client.set_tag(run_id, "validation_passed", str(report.passed).lower())
    client.set_model_version_tag(
        report.name, report.challenger.version, "validation", report.headline()
    )
    client.set_model_version_tag(
        raw_name(report.name), report.challenger.raw_version, "validation", report.headline()
    )
    return [f"{folder}/{n}" for n in names], inline
