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
import numpy as np
import pandas as pd
import torch

from ranker_assets.config import SEQUENCE_TS, FeatureSpec
from ranker_assets.training.data import feature_arrays
from ranker_assets.training.model import Architecture, CalibratedRanker, MMoERanker
from ranker_assets.training.sequences import sequence_data

# Rows scored at once by a sequence ranker: its attention keys are rows x actions x dim floats.
SEQUENCE_CHUNK_ROWS = 8192


@torch.no_grad()
def predict_frame(
    model: MMoERanker | CalibratedRanker, frame: pd.DataFrame, spec: FeatureSpec
) -> pd.DataFrame:
    """Probabilities per head (`p_<head>`) for the rows of a feature DataFrame.

    A sequence ranker reads each request's recent actions from the list columns of the
    request's first row (a request has one sequence), in chunks of rows to bound memory."""
    model.eval()
    arch = model.arch
    if spec.sequence is None or not arch.sequence_layers:
        dense, cats = feature_arrays(frame, spec, arch.hash_buckets)
        logits = model(torch.from_numpy(dense), torch.from_numpy(cats))
    else:
        parts = []
        for start in range(0, len(frame), SEQUENCE_CHUNK_ROWS):
            # A serving request is one chunk: no copy (and the frame's column cache is kept).
            chunk = (
                frame
                if len(frame) <= SEQUENCE_CHUNK_ROWS
                else frame.iloc[start : start + SEQUENCE_CHUNK_ROWS]
            )
            dense, cats = feature_arrays(chunk, spec, arch.hash_buckets)
            seq = sequence_data(chunk, spec.sequence, arch.sequence_length, arch.hash_buckets)
            rows = torch.arange(len(chunk))
            parts.append(model(torch.from_numpy(dense), torch.from_numpy(cats), seq.batch(rows)))
        logits = torch.cat(parts) if parts else torch.zeros((0, len(arch.heads)))
    heads = arch.heads
    return pd.DataFrame(
        torch.sigmoid(logits).numpy(), columns=[f"p_{h}" for h in heads], index=frame.index
    )


def pyfunc_input(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model's input columns as the registered pyfunc takes them: MLflow's schema has no
    time zones, so times are naive UTC (the model reads a naive time as UTC), and its JSON
    serving has no arrays of times, so action times are microseconds since the epoch.

    A request's action lists travel once, on its first row (the others carry nulls), as the
    sequence log stores them: MLflow checks every list entry in Python, so one copy per
    candidate would cost a serving call 50 times that."""
    out = frame[list(spec.inputs)].copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.tz_localize(None)
    if spec.sequence is not None:
        first = ~out["request_id"].duplicated().to_numpy()
        for name in spec.sequence.columns:
            values = out[name].to_numpy()
            if name == SEQUENCE_TS:
                values = [
                    None if v is None else np.asarray(v, dtype="datetime64[us]").view(np.int64)
                    for v in values
                ]
            out[name] = [v if keep else None for v, keep in zip(values, first, strict=True)]
    return out


def one_request(frame: pd.DataFrame, spec: FeatureSpec, n: int) -> pd.DataFrame:
    """`n` candidate rows scored as one request, as serving scores them: with a sequence, all
    share the longest history among them (the served request's recent actions)."""
    batch = frame.sample(n=n, replace=len(frame) < n, random_state=0).reset_index(drop=True)
    if spec.sequence is None:
        return batch
    lengths = batch[spec.sequence.columns[0]].map(lambda v: 0 if v is None else len(v))
    longest = batch.loc[int(lengths.to_numpy().argmax())]
    for column in ("request_id", "request_ts", *spec.sequence.columns):
        batch[column] = [longest[column]] * n
    return batch  # pyfunc_input then sends the lists once, on the first row


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
