"""What a validation report judges on: the day after the training window, its rows (the
randomized slice judged on its own), the simulator's ground truth when there is one, and
whether the logs allow an off-policy value at all."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from ranker_assets.config import EvaluationConfig, FeatureSpec, RankerConfig, SliceSpec
from ranker_assets.evaluation.action_set import (
    load_item_table,
    why_not_crossable,
)
from ranker_assets.evaluation.off_policy import why_not_estimable
from ranker_assets.evaluation.offline import ALL
from ranker_assets.infra.lake import Lake
from ranker_assets.training.data import attach_sequences
from ranker_assets.training.serving import predict_frame

EXAMPLES = "training_examples"


def evaluation_day(ds: str) -> str:
    """The day a ranker trained through `ds` is validated on: the next one."""
    return str(date.fromisoformat(ds) + timedelta(days=1))


def training_day(eval_day: str) -> str:
    """The last training day of the ranker validated on `eval_day`."""
    return str(date.fromisoformat(eval_day) - timedelta(days=1))


def calibration_rows(cfg: RankerConfig) -> tuple[EvaluationConfig, str]:
    """The evaluation settings (with a policy slice: the randomized rows are judged on their
    own, where position bias cannot hide a poison) and the slice whose calibration is gated:
    all rows, or, for a ranker calibrated on randomized traffic, the randomized rows."""
    slices = cfg.evaluation.slices
    if not any(s.column == "policy" and not s.bins for s in slices):
        slices = (*slices, SliceSpec(column="policy"))
    evaluation = cfg.evaluation.model_copy(update={"slices": slices})
    if cfg.model.calibrate_on != "randomized":
        return evaluation, ALL
    return evaluation, randomized_slice(cfg)


def randomized_slice(cfg: RankerConfig) -> str:
    return f"policy={cfg.vocabulary.randomized_policy}"


def load_evaluation_rows(lake: Lake, cfg: RankerConfig, ds: str) -> pd.DataFrame:
    """Every training example of `ds` (randomized requests' unshown candidates included)."""
    if not lake.has_data(EXAMPLES, ds):
        raise FileNotFoundError(
            f"validation needs the training examples of {ds} (the day after the window), "
            f"which are not joined yet: materialize training_examples for {ds} first"
        )
    columns = [
        *dict.fromkeys(
            [
                *cfg.features.row_inputs,
                *cfg.model.heads,
                *(s.column for s in cfg.evaluation.slices),
                "ds",
                "request_id",
                "pin_id",
                "position",
                "impressed",
                "policy",
                "propensity",
                "weight",
            ]
        )
    ]
    rows = lake.read(EXAMPLES, [ds], columns=columns)
    return attach_sequences(lake, rows, [ds], cfg.features).to_pandas()


def read_truth(landing: Path | None, ds: str) -> pd.DataFrame | None:
    """The simulator's ground-truth table of `ds`, when the logs came from the simulator."""
    folder = landing / "ground_truth" / f"ds={ds}" if landing else None
    if folder is None or not folder.is_dir() or not any(folder.glob("*.parquet")):
        return None
    return pq.read_table(folder).to_pandas()


def off_policy_basis(
    randomized: pd.DataFrame, cfg: RankerConfig
) -> tuple[str | None, pd.DataFrame | None]:
    """(why no off-policy value can be computed, or None; the item table when the values are
    per slot over it). Logs of one item per slot need the config's item table."""
    note = why_not_estimable(randomized, cfg.evaluation.top_k)
    path = cfg.evaluation.item_table
    if note is None or path is None or randomized.empty:
        return note, None
    items = load_item_table(Path(path), cfg.vocabulary.id_type)
    crossing = why_not_crossable(randomized, items, cfg.features.row_inputs)
    if crossing:
        return (
            f"{note}; the item table {path} cannot stand in for the missing items: {crossing}",
            None,
        )
    return None, items


def served_utility(
    module: torch.nn.Module, spec: FeatureSpec, weights: dict[str, float], rows: pd.DataFrame
) -> np.ndarray:
    """What `module` ranks `rows` by when it serves."""
    return utility(predict_frame(module, rows, spec), weights)


def utility(scores: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """The score a ranker serves by: weighted sum of its head probabilities."""
    return sum(w * scores[f"p_{h}"].to_numpy(dtype=np.float64) for h, w in weights.items())
