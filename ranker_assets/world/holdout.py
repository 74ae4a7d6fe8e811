"""The holdout experiment of the closed loop: most users are served by the new champion, a
fixed share by the previous one, and each day reports engagement per request in both arms.

Arms are drawn per user (a hash of the user id), so a user sees one model for the whole
experiment, as in the article's holdout that is re-pointed after each publish.
"""

from __future__ import annotations

import numpy as np

from ranker_assets.world.policies import Features, Scorer
from ranker_assets.world.traffic import ServedDay
from ranker_assets.world.vocabulary import EVENT_TYPES

TREATMENT, HOLDOUT = "champion", "previous"


def holdout_arm(user_id: np.ndarray, share: float) -> np.ndarray:
    """True for users in the holdout arm (a stable hash of the user id below `share`)."""
    x = user_id.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    return (x % np.uint64(1_000_003)).astype(np.float64) < share * 1_000_003


class HoldoutScorer:
    """Serves the holdout share of users with `holdout`, everyone else with `main`."""

    def __init__(self, main: Scorer, holdout: Scorer, share: float) -> None:
        self.main, self.holdout, self.share = main, holdout, share
        self.name = f"{main.name} ({1 - share:.0%}) vs {holdout.name} ({share:.0%})"

    def arm(self, user_id: np.ndarray) -> np.ndarray:
        return holdout_arm(user_id, self.share)

    def score(self, features: Features) -> np.ndarray:
        scores = np.asarray(self.main.score(features), dtype=np.float64)
        held = self.arm(features["user_id"][:, 0])
        if held.any():
            scores[held] = self.holdout.score({k: v[held] for k, v in features.items()})
        return scores


def arm_engagement(served: ServedDay, held: np.ndarray) -> dict[str, dict[str, float]]:
    """Engagements per request of each arm, per engagement type (production traffic only:
    randomized requests are served at random whoever is champion)."""
    production = ~served.randomized
    out: dict[str, dict[str, float]] = {}
    for arm, rows in ((TREATMENT, production & ~held), (HOLDOUT, production & held)):
        n = int(rows.sum())
        counts = {"requests": float(n)}
        for code, name in enumerate(EVENT_TYPES[1:], start=1):
            hits = rows[served.event_request] & (served.event_type == code)
            counts[name] = float(hits.sum()) / n if n else float("nan")
        out[arm] = counts
    return out
