"""The user's recent actions before each request: what the serving stack logs as the sequence.

A user acts on many surfaces; the simulator plays closeup requests only. So each request's
history is first drawn from the same hidden state that drives real engagement (the user's
actions elsewhere): an action of the last day follows the user's interest today, an older one
the interest of a week ago (what the stale profile feature is computed from), on a live pin of
that topic picked among a few with the user's hidden content taste, so the sequence reveals
what the noisy, week-old features hide. When earlier days were simulated in the same run, the
engagements the user really made on them (`EngagementHistory`) are merged in by time: the
history then carries the feedback of what was served. A day simulated alone has the drawn
part only, with the same length distribution. Each request says which (`sequence_source`).
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
OBSERVED_SOURCE = "earlier_days_engagements_and_hidden_state"
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
    observed: np.ndarray | None = None  # (n,) real engagements of earlier days among the count

    def sources(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Per request, where its sequence came from (the sequence log's `sequence_source`)."""
        n = len(self.count[rows])
        if self.observed is None:
            return np.full(n, SOURCE, dtype=object)
        return np.where(self.observed[rows] > 0, OBSERVED_SOURCE, SOURCE).astype(object)

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


def merged(drawn: RecentActions, observed: RecentActions) -> RecentActions:
    """The last actions of both, by time: as many as the longer of the two (the drawn part sets
    the length distribution, so a day simulated alone keeps it), newest last."""
    length = drawn.pin_id.shape[1]
    never = np.iinfo(np.int64).min
    ts = np.concatenate(
        [
            np.where(drawn.valid(), drawn.ts_us, never),
            np.where(observed.valid(), observed.ts_us, never),
        ],
        axis=1,
    )
    order = np.argsort(ts, axis=1, kind="stable")[:, length:]
    count = np.maximum(drawn.count, observed.count)
    kept = np.arange(length)[None, :] >= (length - count)[:, None]

    def pick(name: str) -> np.ndarray:
        both = np.concatenate([getattr(drawn, name), getattr(observed, name)], axis=1)
        return np.take_along_axis(both, order, axis=1)

    return RecentActions(
        count=count,
        pin_id=pick("pin_id"),
        action=pick("action"),
        ts_us=pick("ts_us"),
        topic=pick("topic"),
        content_type=pick("content_type"),
        observed=((order >= length) & kept).sum(axis=1),
    )


HISTORY_FIELDS = ("user", "ts_us", "pin_id", "action", "topic", "content_type")


@dataclass
class EngagementHistory:
    """Each user's last `length` engagements on the days simulated so far, sorted by (user, time);
    `add` moves it past a day.

    Only what the serving stack had received by the end of its day is carried: the rare report
    that arrives after midnight is not (its day's logs have it, the history does not)."""

    length: int
    user: np.ndarray
    ts_us: np.ndarray
    pin_id: np.ndarray
    action: np.ndarray  # index into ACTION_TYPES
    topic: np.ndarray
    content_type: np.ndarray

    @classmethod
    def empty(cls, length: int) -> EngagementHistory:
        none = np.empty(0, dtype=np.int64)
        return cls(length, none, none, none, none.astype(np.int8), none, none.astype(np.int8))

    @classmethod
    def from_table(cls, table: pa.Table, length: int) -> EngagementHistory:
        """A history saved by `table` (kept to each user's last `length`)."""
        history = cls(length, *(table[f].to_numpy() for f in HISTORY_FIELDS))
        history._keep_last({f: getattr(history, f) for f in HISTORY_FIELDS})
        return history

    def table(self) -> pa.Table:
        return pa.table({f: getattr(self, f) for f in HISTORY_FIELDS})

    def before(self, user: np.ndarray) -> RecentActions:
        """Per request, its user's last engagements (all are from earlier days), right-aligned."""
        length = self.length
        lo = np.searchsorted(self.user, user, side="left")
        hi = np.searchsorted(self.user, user, side="right")
        count = np.minimum(hi - lo, length)
        kept = np.arange(length)[None, :] >= (length - count)[:, None]
        at = np.where(kept, hi[:, None] - length + np.arange(length)[None, :], 0)

        def take(values: np.ndarray) -> np.ndarray:
            return np.where(kept, values[at], 0) if len(values) else np.zeros_like(at, values.dtype)

        return RecentActions(
            count=count,
            pin_id=take(self.pin_id),
            action=take(self.action),
            ts_us=take(self.ts_us),
            topic=take(self.topic),
            content_type=take(self.content_type),
            observed=count,
        )

    def add(
        self,
        day_end_us: int,
        user: np.ndarray,
        ts_us: np.ndarray,
        pin_id: np.ndarray,
        action: np.ndarray,
        topic: np.ndarray,
        content_type: np.ndarray,
    ) -> None:
        """Add a day's engagements (those received by `day_end_us`); keep each user's last
        `length`."""
        new = ts_us < day_end_us
        values = (user, ts_us, pin_id, action, topic, content_type)
        added = dict(zip(HISTORY_FIELDS, values, strict=True))
        self._keep_last(
            {
                f: np.concatenate([getattr(self, f), added[f][new]]).astype(getattr(self, f).dtype)
                for f in HISTORY_FIELDS
            }
        )

    def _keep_last(self, entries: dict[str, np.ndarray]) -> None:
        """Hold `entries` sorted by (user, time), each user's last `length` only."""
        order = np.lexsort((entries["ts_us"], entries["user"]))
        users = entries["user"][order]
        # Entries to the end of their user's run: keep the last `length` of each user.
        _, first, sizes = np.unique(users, return_index=True, return_counts=True)
        to_end = np.repeat(first + sizes, sizes) - 1 - np.arange(len(users))
        keep = order[to_end < self.length]
        for f in HISTORY_FIELDS:
            setattr(self, f, entries[f][keep])


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
    history: EngagementHistory | None = None,
) -> RecentActions:
    """The last `length` actions of each request's user before the request: drawn from the
    hidden state, merged with the user's engagements of earlier days when there is a history."""
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
    drawn = RecentActions(
        count=count,
        pin_id=pins.pin_id[row],
        action=action,
        ts_us=ts,
        topic=pins.pin_topic[row].astype(np.int64),
        content_type=pins.pin_content_type[row],
    )
    return drawn if history is None else merged(drawn, history.before(user))
