"""The user's recent actions before each request: what the serving stack logs as the sequence.

Days are simulated independently, so a day cannot look up the engagements of earlier days:
each request's history is drawn from the same hidden state that drives real engagement. An
action of the last day follows the user's interest today; an older one the interest of a week
ago (what the stale profile feature is computed from). The item is a live pin of that topic,
picked among a few with the user's hidden content taste, so the sequence reveals what the
noisy, week-old features hide. Every sequence says so in the log (`sequence_source`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ranker_assets.config import SEQUENCE_ACTION, SEQUENCE_ITEM, SEQUENCE_TS, WorldConfig
from ranker_assets.world.drift import DayState
from ranker_assets.world.entities import Population
from ranker_assets.world.vocabulary import CONTENT_TYPES

US_PER_DAY = 86_400 * 1_000_000
SOURCE = "simulated_from_hidden_state"
# Engagement types in a history, in the proportions of the world's base rates per impression
# (closeup, click, repin, long_click; see traffic.INTERCEPTS).
ACTION_TYPES: tuple[str, ...] = ("closeup", "click", "repin", "long_click")
ACTION_SHARES = np.array([0.55, 0.32, 0.07, 0.06])
# How many live pins of the action's topic the user picks among, by content taste.
TASTE_CHOICES = 3


@dataclass(frozen=True)
class RecentActions:
    """Per request, the last `length` actions, oldest first, right-aligned in (n, L) arrays."""

    count: np.ndarray  # (n,) actions in the history (the rightmost `count` entries are real)
    pin_id: np.ndarray  # (n, L) int64
    action: np.ndarray  # (n, L) index into ACTION_TYPES
    ts_us: np.ndarray  # (n, L) int64, ascending, before the request
    topic: np.ndarray  # (n, L) int64
    content_type: np.ndarray  # (n, L) index into CONTENT_TYPES

    def columns(self, rows: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """(n, L) arrays of `rows` in their logged form, by sequence-log column."""
        return {
            SEQUENCE_ITEM: self.pin_id[rows],
            SEQUENCE_ACTION: np.asarray(ACTION_TYPES, dtype=object)[self.action[rows]],
            SEQUENCE_TS: self.ts_us[rows].view("datetime64[us]"),
            "action_topic": self.topic[rows],
            "action_content_type": np.asarray(CONTENT_TYPES, dtype=object)[self.content_type[rows]],
        }

    def valid(self) -> np.ndarray:
        """(n, L) True where an entry is a real action (the rightmost `count` of a row)."""
        length = self.pin_id.shape[1]
        return np.arange(length)[None, :] >= (length - self.count)[:, None]


def per_request_lists(columns: dict[str, np.ndarray], count: np.ndarray) -> dict[str, np.ndarray]:
    """(n, L) right-aligned arrays -> per column an object array of n arrays of the real entries
    (the list columns a model's input frame has; repeat them per candidate by reference)."""
    length = next(iter(columns.values())).shape[1]
    out = {}
    for name, values in columns.items():
        lists = np.empty(len(count), dtype=object)
        lists[:] = [row[length - k :] for row, k in zip(values, count, strict=True)]
        out[name] = lists
    return out


def list_array(values: np.ndarray, valid: np.ndarray) -> pa.ListArray:
    """(n, L) right-aligned arrays -> an Arrow list array of each row's real entries."""
    offsets = np.concatenate([[0], np.cumsum(valid.sum(axis=1))]).astype(np.int32)
    flat = values[valid]
    if flat.dtype.kind == "M":
        child = pa.array(flat.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC"))
    else:
        child = pa.array(flat)
    return pa.ListArray.from_arrays(pa.array(offsets), child)


def _draw_topics(interest: np.ndarray, user: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF topic draws: entry i from row `user[i]` of `interest`, with uniforms `u`.

    Each user's CDF is shifted by its row number, so one sorted search serves every user."""
    n_users, width = interest.shape
    cum = np.cumsum(interest, axis=1, dtype=np.float64)
    shifted = (cum / cum[:, -1:] + np.arange(n_users)[:, None]).ravel()
    idx = np.searchsorted(shifted, u + user, side="right")
    return np.minimum(idx - user * width, width - 1)


def recent_actions(
    cfg: WorldConfig,
    pop: Population,
    state: DayState,
    user: np.ndarray,
    request_ts_us: np.ndarray,
    length: int,
    rng: np.random.Generator,
) -> RecentActions:
    """The last `length` actions of each request's user before the request."""
    n = len(user)
    # Actions per day scale with the user's activity; a light user's history is shorter.
    rate = cfg.actions_per_day * pop.user_activity[user] / pop.user_activity.mean()
    count = np.minimum(rng.poisson(rate * cfg.history_days), length)
    gaps = rng.exponential(1.0, size=(n, length)) / rate[:, None] * US_PER_DAY
    # Column L-1 is the newest action: it precedes the request by the first gap.
    ts = request_ts_us[:, None] - np.cumsum(gaps, axis=1)[:, ::-1].astype(np.int64) - 1
    recent = (request_ts_us[:, None] - ts) < US_PER_DAY
    u = rng.random((n, length))
    topic = np.empty((n, length), dtype=np.int64)
    for interest, mask in ((state.user_interest, recent), (state.stale_interest, ~recent)):
        r, _ = np.nonzero(mask)
        topic[mask] = _draw_topics(interest, user[r], u[mask])
    pins = state.catalogue
    options = np.stack([pins.sample_pins_in_topics(topic, rng) for _ in range(TASTE_CHOICES)])
    taste = np.exp(pop.user_content_pref[user[:, None], pins.pin_content_type[options]])
    pick = (np.cumsum(taste, axis=0) < rng.random((n, length)) * taste.sum(axis=0)).sum(axis=0)
    row = np.take_along_axis(options, np.minimum(pick, TASTE_CHOICES - 1)[None], axis=0)[0]
    action = rng.choice(len(ACTION_TYPES), size=(n, length), p=ACTION_SHARES).astype(np.int8)
    return RecentActions(
        count=count,
        pin_id=pins.pin_id[row],
        action=action,
        ts_us=ts,
        topic=pins.pin_topic[row].astype(np.int64),
        content_type=pins.pin_content_type[row],
    )
