"""PNG plots of a validation report: calibration curves, challenger vs champion AUC by slice,
and AUC over evaluation days. They go to MLflow and, embedded, to the asset page."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster steps and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ranker_assets.evaluation.offline import ALL, CHALLENGER, CHAMPION


def calibration_curves(
    rows: pd.DataFrame,
    scores: dict[str, pd.DataFrame],
    heads: list[str],
    path: Path,
    bins: int = 10,
) -> Path:
    """Per head: weighted observed rate against mean prediction, in prediction-quantile bins."""
    fig, axes = plt.subplots(1, len(heads), figsize=(3.2 * len(heads), 3.2), squeeze=False)
    w = rows["weight"].to_numpy(dtype=np.float64)
    for ax, head in zip(axes[0], heads, strict=True):
        y = rows[head].to_numpy(dtype=np.float64)
        top = 0.0
        for model, frame in scores.items():
            p = frame[f"p_{head}"].to_numpy(dtype=np.float64)
            edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
            b = np.searchsorted(edges, p, side="right")
            wsum = np.bincount(b, w, len(edges) + 1)
            keep = wsum > 0
            pred = np.bincount(b, w * p, len(edges) + 1)[keep] / wsum[keep]
            obs = np.bincount(b, w * y, len(edges) + 1)[keep] / wsum[keep]
            ax.plot(pred, obs, marker="o", label=model)
            top = max(top, pred.max(initial=0), obs.max(initial=0))
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
        ax.set_title(head)
        ax.set_xlabel("predicted")
        ax.set_ylabel("observed")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def auc_by_slice(metrics: pd.DataFrame, path: Path) -> Path:
    """Challenger vs champion AUC per head, overall and per slice."""
    auc = metrics[(metrics["metric"] == "auc") & metrics["model"].isin([CHALLENGER, CHAMPION])]
    heads = list(dict.fromkeys(auc["head"]))
    slices = list(dict.fromkeys(auc["slice"]))
    fig, axes = plt.subplots(
        len(heads), 1, figsize=(max(6, 0.6 * len(slices)), 2.6 * len(heads)), squeeze=False
    )
    x = np.arange(len(slices))
    for ax, head in zip(axes[:, 0], heads, strict=True):
        for i, model in enumerate((CHALLENGER, CHAMPION)):
            sel = auc[(auc["head"] == head) & (auc["model"] == model)].set_index("slice")
            if sel.empty:
                continue
            ax.bar(x + 0.4 * i, sel.reindex(slices)["value"].to_numpy(), width=0.4, label=model)
        ax.set_ylim(0.4, 1.0)
        ax.set_title(f"AUC {head}")
        ax.set_xticks(x + 0.2, [s if s != ALL else "ALL" for s in slices], rotation=30, fontsize=7)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def auc_over_days(history: pd.DataFrame, path: Path) -> Path:
    """Per head, challenger and champion AUC on each evaluation day so far (one config)."""
    auc = history[
        (history["metric"] == "auc")
        & (history["slice"] == ALL)
        & history["model"].isin([CHALLENGER, CHAMPION])
    ]
    heads = list(dict.fromkeys(auc["head"]))
    fig, axes = plt.subplots(1, len(heads), figsize=(3.2 * len(heads), 3.0), squeeze=False)
    for ax, head in zip(axes[0], heads, strict=True):
        for model in (CHALLENGER, CHAMPION):
            sel = auc[(auc["head"] == head) & (auc["model"] == model)].sort_values("eval_day")
            if not sel.empty:
                ax.plot(sel["eval_day"].str[5:], sel["value"], marker="o", label=model)
        ax.set_title(f"AUC {head}")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def embedded_markdown(paths: list[Path]) -> str:
    """Markdown that shows the PNGs inline (Dagster's metadata markdown allows data: images)."""
    return "\n\n".join(
        f"**{p.stem.replace('_', ' ')}**\n\n"
        f"![{p.stem}](data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()})"
        for p in paths
    )
