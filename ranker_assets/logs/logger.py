"""The online half of hybrid logging: which served candidates get their features logged.

The serving backend caches every candidate it served with its full features (the
context-and-candidate cache). The client reports impressions and engagements. The logger
turns those reports into feature-log requests against the cache:
- every engagement (all positives, and hides) requests a log of that pin;
- an impression requests one only if a deterministic hash keeps it (the impression keep rate);
- on randomized-traffic requests every served candidate is logged, impressed or not.
Requests for the same (request, pin) are deduplicated, and each row records the keep rate that
applied to it so the trainer can undo the sampling with weight 1 / keep_rate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ranker_assets.config import FEATURE_LOG_KEY_COLUMNS, LoggingConfig
from ranker_assets.world.recent_actions import list_array
from ranker_assets.world.traffic import ServedDay
from ranker_assets.world.vocabulary import CONTENT_TYPES, EVENT_TYPES, PLATFORMS

# Why a row was logged, strongest first: on a duplicate request the strongest reason wins.
LOG_REASONS: tuple[str, ...] = ("engagement", "randomized", "impression_sample", "full")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def keep_hash(request_id: np.ndarray, pin_id: np.ndarray, salt: str) -> np.ndarray:
    """A uniform [0, 1) number per (request, pin), stable across runs, machines and languages.

    splitmix64 over the ids mixed with a salt, so the keep decision is reproducible without
    state: any component (backend, client, a replay) reaches the same decision.
    """
    salt64 = np.uint64(int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "little"))
    with np.errstate(over="ignore"):
        x = (
            request_id.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ pin_id.astype(np.uint64)
            ^ salt64
        )
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class CandidateCache:
    """The backend's context-and-candidate cache for a day: one row per served candidate."""

    day: ServedDay

    def row_of(self, request_row: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return request_row.astype(np.int64) * self.day.n_candidates + slot

    def columns(self) -> dict[str, np.ndarray]:
        """All cached columns, flattened to one entry per served candidate."""
        d, c = self.day, self.day.n_candidates
        per_request = {
            "request_id": d.request_id,
            "query_pin_id": d.query_pin_id,
            "request_ts": d.request_ts_us,
        }
        cols = {k: np.repeat(v, c) for k, v in per_request.items()}
        cols["user_id"] = np.repeat(d.user_id, c)
        cols["position"] = d.position.ravel().astype(np.int32)
        cols["impressed"] = d.impressed.ravel()
        cols["platform"] = np.repeat(d.platform, c)
        cols["content_type"] = d.content_type.ravel()
        cols["policy"] = np.repeat(d.randomized, c)
        cols["propensity"] = d.propensity.ravel()
        for name, values in d.features.items():
            cols[name] = values.ravel()
        return cols


@dataclass(frozen=True)
class LoggedDay:
    """What the logging stack wrote for one day of traffic."""

    feature_log: pa.Table
    event_log: pd.DataFrame
    ground_truth: pa.Table
    n_served: int
    n_impressed: int
    n_log_requests: int  # before deduplication
    sequence_log: pa.Table | None = None  # one row per request with a logged candidate


def sequence_log(day: ServedDay, requests: np.ndarray) -> pa.Table:
    """The users' recent actions, once per request in `requests` (request rows), never per
    candidate: the point of hybrid logging is that a request's context is stored once."""
    recent = day.recent
    assert recent is not None
    valid = recent.valid()[requests]
    columns = {
        "request_id": pa.array(day.request_id[requests]),
        "user_id": pa.array(day.user_id[requests]),
        "request_ts": pa.array(day.request_ts_us[requests], type=pa.timestamp("us", tz="UTC")),
    }
    for name, values in recent.columns(requests).items():
        columns[name] = list_array(values, valid)
    columns["sequence_source"] = pa.array(recent.sources(requests), type=pa.string())
    return pa.table(columns)


def _categorical(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    return pa.array(np.asarray(names, dtype=object)[codes], type=pa.string())


def _to_table(cols: dict[str, np.ndarray], rows: np.ndarray) -> pa.Table:
    """Gather `rows` from flattened cache columns into a typed Arrow table."""
    out: dict[str, pa.Array] = {}
    for name, values in cols.items():
        v = values[rows]
        if name == "request_ts":
            out[name] = pa.array(v, type=pa.timestamp("us", tz="UTC"))
        elif name == "platform":
            out[name] = _categorical(v, PLATFORMS)
        elif name == "content_type":
            out[name] = _categorical(v, CONTENT_TYPES)
        elif name == "policy":
            out[name] = pa.array(np.where(v, "randomized", "production"), type=pa.string())
        elif v.dtype.kind == "f" and name != "propensity":
            out[name] = pa.array(v.astype(np.float32))
        else:
            out[name] = pa.array(v)
    return pa.table(out)


def client_event_log(day: ServedDay) -> pd.DataFrame:
    """The client's event stream: one small row per impression and per engagement."""
    d = day
    req, slot = d.event_request, d.event_slot
    request_id = d.request_id[req]
    pin_id = d.pin_id[req, slot]
    types = np.asarray(EVENT_TYPES, dtype=object)[d.event_type]
    events = pd.DataFrame(
        {
            "request_id": request_id,
            "pin_id": pin_id,
            "user_id": d.user_id[req],
            "event_type": types,
            "position": d.position[req, slot].astype(np.int32),
            "timestamp": pd.to_datetime(d.event_ts_us, unit="us", utc=True),
            "platform": np.asarray(PLATFORMS, dtype=object)[d.platform[req]],
        }
    )
    events.insert(
        0,
        "event_id",
        events["request_id"].astype(str) + "-" + events["pin_id"].astype(str) + "-" + types,
    )
    return events.sort_values(["timestamp", "event_id"], kind="stable").reset_index(drop=True)


def feature_log_rows(
    day: ServedDay, cfg: LoggingConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Apply the logging rules: returns cache rows to log, their reason codes and keep rates.

    Also returns how many log requests were made before deduplication.
    """
    cache = CandidateCache(day)
    n_rows = day.n_requests * day.n_candidates
    if cfg.mode == "full":
        rows = np.arange(n_rows)
        return rows, np.full(n_rows, LOG_REASONS.index("full"), np.int8), np.ones(n_rows), n_rows
    is_engagement = day.event_type != EVENT_TYPES.index("impression")
    engaged_rows = cache.row_of(day.event_request[is_engagement], day.event_slot[is_engagement])
    imp_req, imp_slot = np.nonzero(day.impressed)
    u = keep_hash(day.request_id[imp_req], day.pin_id[imp_req, imp_slot], cfg.hash_salt)
    keep = u < cfg.impression_keep_rate
    sampled_rows = cache.row_of(imp_req[keep], imp_slot[keep])
    rand_req = np.nonzero(day.randomized)[0]
    rand_rows = (rand_req[:, None] * day.n_candidates + np.arange(day.n_candidates)).ravel()
    requests = [
        (engaged_rows, "engagement"),
        (rand_rows, "randomized"),
        (sampled_rows, "impression_sample"),
    ]
    all_rows = np.concatenate([r for r, _ in requests])
    all_reasons = np.concatenate(
        [np.full(len(r), LOG_REASONS.index(k), np.int8) for r, k in requests]
    )
    # Deduplicate: one row per (request, pin), keeping the strongest reason.
    order = np.lexsort((all_reasons, all_rows))
    rows_sorted, reasons_sorted = all_rows[order], all_reasons[order]
    first = np.ones(len(rows_sorted), dtype=bool)
    first[1:] = rows_sorted[1:] != rows_sorted[:-1]
    rows, reasons = rows_sorted[first], reasons_sorted[first]
    keep_rate = np.where(
        reasons == LOG_REASONS.index("impression_sample"), cfg.impression_keep_rate, 1.0
    )
    return rows, reasons, keep_rate, len(all_rows)


def log_day(day: ServedDay, cfg: LoggingConfig) -> LoggedDay:
    """Run the logging stack over a day of traffic and return the three logs it produces."""
    cols = CandidateCache(day).columns()
    rows, reasons, keep_rate, n_requests = feature_log_rows(day, cfg)
    logged = _to_table(cols, rows)
    logged = logged.append_column("keep_rate", pa.array(keep_rate)).append_column(
        "log_reason", _categorical(reasons, LOG_REASONS)
    )
    extra = [c for c in logged.column_names if c not in FEATURE_LOG_KEY_COLUMNS]
    truth_cols = {k: cols[k] for k in ("request_id", "pin_id", "position", "impressed", "policy")}
    truth_cols.update({k: v.ravel() for k, v in day.truth.items()})
    sequences = None
    if day.recent is not None:
        sequences = sequence_log(day, np.unique(rows // day.n_candidates))
    return LoggedDay(
        sequence_log=sequences,
        feature_log=logged.select([*FEATURE_LOG_KEY_COLUMNS, *extra]),
        event_log=client_event_log(day),
        ground_truth=_to_table(truth_cols, np.arange(len(cols["request_id"]))),
        n_served=len(cols["request_id"]),
        n_impressed=int(day.impressed.sum()),
        n_log_requests=n_requests,
    )
