"""One prediction path for a ranker, in memory and behind MLflow's pyfunc interface.

The pyfunc model takes a DataFrame of raw feature columns (as the feature log has them) and
returns one probability column per head, so `models:/<name>/<version>` serves end to end and
reproduces the in-memory predictions exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch

from ranker_assets.config import FeatureSpec
from ranker_assets.training.data import feature_arrays
from ranker_assets.training.model import Architecture, CalibratedRanker, MMoERanker


@torch.no_grad()
def predict_frame(
    model: MMoERanker | CalibratedRanker, frame: pd.DataFrame, spec: FeatureSpec
) -> pd.DataFrame:
    """Probabilities per head (`p_<head>`) for the rows of a feature DataFrame."""
    dense, cats = feature_arrays(frame, spec, model.arch.hash_buckets)
    model.eval()
    logits = model(torch.from_numpy(dense), torch.from_numpy(cats))
    heads = model.arch.heads
    return pd.DataFrame(
        torch.sigmoid(logits).numpy(), columns=[f"p_{h}" for h in heads], index=frame.index
    )


def save_model(
    model: MMoERanker | CalibratedRanker, spec: FeatureSpec, folder: Path
) -> dict[str, str]:
    """Write weights and metadata; returns the pyfunc artifacts mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "calibrated": isinstance(model, CalibratedRanker),
        "architecture": model.arch.to_dict(),
        "features": spec.model_dump(mode="json"),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    torch.save(model.state_dict(), folder / "weights.pt")
    return {"meta": str(folder / "meta.json"), "weights": str(folder / "weights.pt")}


def load_module(artifacts: dict[str, str]) -> tuple[MMoERanker | CalibratedRanker, FeatureSpec]:
    """Rebuild the torch module saved by `save_model`."""
    meta = json.loads(Path(artifacts["meta"]).read_text())
    arch = Architecture.from_dict(meta["architecture"])
    base = MMoERanker(arch)
    model: MMoERanker | CalibratedRanker = base
    if meta["calibrated"]:
        n = len(arch.heads)
        model = CalibratedRanker(base, torch.ones(n), torch.zeros(n))
    model.load_state_dict(torch.load(artifacts["weights"], weights_only=True))
    return model.eval(), FeatureSpec.model_validate(meta["features"])


class RankerPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: DataFrame of raw features -> DataFrame of head probabilities."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model, self.spec = load_module(context.artifacts)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return predict_frame(self.model, model_input, self.spec)
