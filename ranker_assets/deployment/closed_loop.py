"""The closed loop: the simulated world is served by whatever the registry says is champion.

With no champion the heuristic serves. Once one is deployed, it serves most users and
`previous` (or the heuristic, before a second deploy) keeps serving the holdout share, so every
simulated day reports new vs previous champion engagement, as the article's holdout does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from torch import nn

from ranker_assets.config import FeatureSpec, RankerConfig
from ranker_assets.evaluation.rows import utility
from ranker_assets.training.registry import RankerPair, alias_pair
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.tracking import PREVIOUS, load_registered
from ranker_assets.world.holdout import HoldoutScorer
from ranker_assets.world.policies import SEQUENCE_COUNT, Features, HeuristicScorer, Scorer
from ranker_assets.world.recent_actions import per_request_lists


class ModuleScorer:
    """A ranker as a serving policy: the configured utility of its head probabilities."""

    def __init__(
        self, module: nn.Module, spec: FeatureSpec, weights: dict[str, float], name: str
    ) -> None:
        self.module, self.spec, self.weights, self.name = module, spec, weights, name

    def score(self, features: Features) -> np.ndarray:
        shape = features[self.spec.dense[0]].shape
        seq = self.spec.sequence
        per_request = {"request_id", "request_ts", *seq.columns} if seq else set()
        frame = pd.DataFrame(
            {c: features[c].ravel() for c in self.spec.inputs if c not in per_request}
        )
        if seq is not None:  # each candidate row refers to its request's action lists
            lists = per_request_lists(
                {c: features[c] for c in seq.columns}, features[SEQUENCE_COUNT]
            )
            for column, values in lists.items():
                frame[column] = np.repeat(values, shape[1])
            frame["request_id"] = np.repeat(np.arange(shape[0]), shape[1])
            frame["request_ts"] = np.repeat(features["request_ts"], shape[1])
        return utility(predict_frame(self.module, frame, self.spec), self.weights).reshape(shape)


def registered_scorer(cfg: RankerConfig, pair: RankerPair, label: str) -> ModuleScorer:
    """A registered ranker version as a serving policy."""
    module, spec = load_registered(f"models:/{cfg.mlflow.registered_model}/{pair.version}")
    return ModuleScorer(module, spec, cfg.ranking_weights(), f"{label} v{pair.version}")


def serving_policy(cfg: RankerConfig, client: MlflowClient) -> Scorer:
    """What serves the simulated world today, by the registry's aliases."""
    name = cfg.mlflow.registered_model
    champion = alias_pair(client, name)
    if champion is None:
        return HeuristicScorer()
    previous = alias_pair(client, name, PREVIOUS)
    holdout: Scorer = registered_scorer(cfg, previous, PREVIOUS) if previous else HeuristicScorer()
    return HoldoutScorer(
        registered_scorer(cfg, champion, "champion"), holdout, cfg.deployment.holdout_share
    )
