"""The closed loop: the simulated world is served by whatever the registry says is champion.

With no champion the heuristic serves. Once one is deployed, it serves most users and
`previous` (or the heuristic, before a second deploy) keeps serving the holdout share, so every
simulated day reports new vs previous champion engagement, as the article's holdout does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from ranker_assets.config import RankerConfig
from ranker_assets.deployment import RankerPair, alias_pair
from ranker_assets.evaluation.report import utility
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.tracking import PREVIOUS, load_registered
from ranker_assets.world.holdout import HoldoutScorer
from ranker_assets.world.policies import Features, HeuristicScorer, Scorer


class RankerScorer:
    """A registered ranker as a serving policy: the configured utility of its head probabilities."""

    def __init__(self, cfg: RankerConfig, pair: RankerPair, label: str) -> None:
        self.module, self.spec = load_registered(
            f"models:/{cfg.mlflow.registered_model}/{pair.version}"
        )
        self.weights = cfg.ranking_weights()
        self.name = f"{label} v{pair.version}"

    def score(self, features: Features) -> np.ndarray:
        shape = features[self.spec.inputs[0]].shape
        frame = pd.DataFrame({c: features[c].ravel() for c in self.spec.inputs})
        return utility(predict_frame(self.module, frame, self.spec), self.weights).reshape(shape)


def serving_policy(cfg: RankerConfig, client: MlflowClient) -> Scorer:
    """What serves the simulated world today, by the registry's aliases."""
    name = cfg.mlflow.registered_model
    champion = alias_pair(client, name)
    if champion is None:
        return HeuristicScorer()
    previous = alias_pair(client, name, PREVIOUS)
    holdout: Scorer = RankerScorer(cfg, previous, PREVIOUS) if previous else HeuristicScorer()
    return HoldoutScorer(
        RankerScorer(cfg, champion, "champion"), holdout, cfg.deployment.holdout_share
    )
