"""Randomized-traffic replay: score a day served in uniform random order, against the truth.

On randomized traffic a candidate's position does not depend on any ranker's score, so an AUC
on its impressed rows measures how well a scorer ranks by relevance, free of position bias:
the unbiased evaluation randomized traffic exists for. With the simulator the day can be all
randomized, and the oracle (the hidden engagement probability given examination) is known.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from ranker_assets.config import RankerConfig
from ranker_assets.metrics import weighted_auc
from ranker_assets.world.drift import day_state
from ranker_assets.world.entities import build_population
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.traffic import simulate_day
from ranker_assets.world.truth import candidates_frame


def replay_day(cfg: RankerConfig, seed: int, day: date, requests: int) -> pd.DataFrame:
    """Impressed candidates of a fully randomized day: features, labels and true probabilities."""
    pop = build_population(cfg.world, seed)
    served = simulate_day(
        cfg.world,
        pop,
        day_state(cfg.world, pop, seed, day),
        seed,
        day,
        requests,
        HeuristicScorer(),
        1.0,
        cfg.logging.sequence_length if cfg.features.sequence else 0,
    )
    frame = candidates_frame(served)
    return frame[frame["impressed"]].reset_index(drop=True)


def replay_aucs(
    frame: pd.DataFrame, model_scores: pd.DataFrame, heads: tuple[str, ...]
) -> pd.DataFrame:
    """Per head: AUC of the model, the heuristic serving policy and the oracle on replayed rows."""
    heuristic = HeuristicScorer().score({c: frame[c].to_numpy() for c in frame.columns})
    rows = []
    for h in heads:
        y = frame[h].to_numpy()
        rows.append(
            {
                "head": h,
                "model": weighted_auc(y, model_scores[f"p_{h}"].to_numpy()),
                "heuristic": weighted_auc(y, heuristic),
                "oracle": weighted_auc(y, frame[f"p_{h}"].to_numpy()),
                "positives": int(y.sum()),
            }
        )
    table = pd.DataFrame(rows).set_index("head")
    table["gap_closed"] = (table["model"] - table["heuristic"]) / (
        table["oracle"] - table["heuristic"]
    )
    return table
