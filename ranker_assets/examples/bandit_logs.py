"""A small generator of a non-closeup ranker's logs: an item recommender run by a bandit.

Shaped like public bandit logs (e.g. the Open Bandit Dataset): impressions and clicks only,
string-hashed ids, many dense user-item features (informative, noise, heavy-tailed, and rare
ones that are zero almost always), no query, platform or content type. Each request offers
`candidates` items; a Thompson-sampling production policy ("bts") shows the top `slots` with
per-slot propensities estimated by Monte Carlo, as such logs record them, and a uniform slice
("random") shuffles them with propensity 1/n and logs every candidate. The log simply ends on
the last day: its clicks have no next day to arrive on. Files follow docs/log_contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ranker_assets.logs.landing import day_dir, write_jsonl_atomic, write_parquet_atomic

US = 1_000_000


@dataclass(frozen=True)
class BanditWorld:
    items: int = 200
    users: int = 2000
    candidates: int = 10
    slots: int = 3
    dense: int = 30  # features f00..f29
    random_share: float = 0.2
    mc_draws: int = 200


def feature_names(world: BanditWorld) -> list[str]:
    return [f"f{i:02d}" for i in range(world.dense)]


def _day(
    world: BanditWorld, seed: int, ds: date, requests: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng([seed, ds.toordinal()])
    base = np.random.default_rng(seed)  # the same items and users every day
    item_quality = base.normal(-2.3, 0.8, world.items)
    item_vec = base.normal(0, 1, (world.items, 4))
    user_vec = base.normal(0, 1, (world.users, 4))
    n, c, k = requests, world.candidates, world.slots
    user = rng.integers(0, world.users, n)
    cands = np.stack([rng.choice(world.items, c, replace=False) for _ in range(n)])
    affinity = (user_vec[user][:, None, :] * item_vec[cands]).sum(-1) / 2  # (n, c)
    logit = item_quality[cands] + affinity
    p_click = 1 / (1 + np.exp(-logit))
    # Dense features: noisy views of the signal, noise, heavy tails, and rare ones.
    f = rng.normal(0, 1, (n, c, world.dense)).astype(np.float32)
    f[..., 0] = affinity + rng.normal(0, 0.5, (n, c))
    f[..., 1] = item_quality[cands] + rng.normal(0, 0.3, (n, c))
    f[..., 2] = np.exp(rng.normal(3, 2, (n, c)))  # heavy-tailed popularity count
    for j in range(world.dense - 4, world.dense):  # rare: zero but for 1 row in 2,000
        f[..., j] = np.where(rng.random((n, c)) < 5e-4, rng.exponential(50, (n, c)), 0.0)
    # Production: Thompson sampling on per-item Beta posteriors; uniform slice: a shuffle.
    random = rng.random(n) < world.random_share
    alpha = 1 + np.exp(item_quality[cands]) * 50
    beta_ = 1 + 50
    draws = rng.beta(alpha[:, None, :], beta_, (n, world.mc_draws, c))
    mc_rank = np.argsort(np.argsort(-draws, axis=2), axis=2)  # (n, M, c) rank of each item
    served = np.argsort(np.argsort(-draws[:, 0, :], axis=1), axis=1)  # the first draw serves
    shuffled = np.argsort(rng.random((n, c)), axis=1).argsort(axis=1)
    position = np.where(random[:, None], shuffled, served)
    slot_prob = (mc_rank == position[:, None, :]).mean(axis=1)  # P(item at its slot)
    propensity = np.where(random[:, None], 1.0 / c, np.maximum(slot_prob, 1.0 / world.mc_draws))
    shown = position < k
    click = shown & (rng.random((n, c)) < p_click * (1.0 / (1 + position)) ** 0.5)
    start = int(datetime(ds.year, ds.month, ds.day, tzinfo=UTC).timestamp()) * US
    ts = start + np.sort(rng.integers(0, 86_400 * US - 1, n))
    logged = shown | random[:, None]  # all shown items; every candidate of a random request
    r, s = np.nonzero(logged)
    feats = pd.DataFrame(
        {
            "request_id": [f"r{ds:%Y%m%d}-{i:06x}" for i in r],
            "pin_id": [f"item-{x:04x}" for x in cands[r, s]],
            "user_id": [f"user-{x:05x}" for x in user[r]],
            "request_ts": pd.to_datetime(ts[r], unit="us", utc=True).astype("datetime64[us, UTC]"),
            "position": position[r, s].astype(np.int32),
            "impressed": shown[r, s],
            "policy": np.where(random[r], "random", "bts"),
            "propensity": propensity[r, s].astype(np.float64),
        }
    )
    for j, name in enumerate(feature_names(world)):
        feats[name] = f[r, s, j]
    er, es = np.nonzero(shown)
    imp_ts = ts[er] + position[er, es].astype(np.int64) * 100_000
    events = [
        pd.DataFrame({"request": er, "slot": es, "event_type": "impression", "timestamp": imp_ts})
    ]
    cr, cs = np.nonzero(click)
    delay = rng.exponential(600, len(cr)) * US  # clicks may cross midnight
    events.append(
        pd.DataFrame(
            {
                "request": cr,
                "slot": cs,
                "event_type": "click",
                "timestamp": ts[cr] + delay.astype(np.int64),
            }
        )
    )
    ev = pd.concat(events, ignore_index=True)
    ev = pd.DataFrame(
        {
            "event_id": [f"e{ds:%Y%m%d}-{i}" for i in range(len(ev))],
            "request_id": [f"r{ds:%Y%m%d}-{i:06x}" for i in ev["request"]],
            "pin_id": [f"item-{x:04x}" for x in cands[ev["request"], ev["slot"]]],
            "user_id": [f"user-{x:05x}" for x in user[ev["request"]]],
            "event_type": ev["event_type"],
            "position": position[ev["request"], ev["slot"]].astype(np.int64),
            "timestamp": pd.to_datetime(ev["timestamp"], unit="us", utc=True),
        }
    )
    return feats, ev


def land_bandit_logs(
    landing: Path,
    start: date,
    days: int,
    requests: int,
    seed: int = 0,
    world: BanditWorld | None = None,
) -> None:
    """Land `days` days of logs from `start`; events land in the folder of their own day, and
    nothing lands after the last day (the log is finished)."""
    world = world or BanditWorld()
    last = start + timedelta(days=days - 1)
    events_by_day: dict[date, list[pd.DataFrame]] = {}
    for i in range(days):
        ds = start + timedelta(days=i)
        feats, events = _day(world, seed, ds, requests)
        write_parquet_atomic(
            pa.Table.from_pandas(feats, preserve_index=False),
            day_dir(landing, "feature_log", ds) / f"from-{ds}.parquet",
        )
        for day, group in events.groupby(events["timestamp"].dt.date):
            if day <= last:
                events_by_day.setdefault(day, []).append(group)
    for day, groups in events_by_day.items():
        write_jsonl_atomic(
            pd.concat(groups, ignore_index=True),
            day_dir(landing, "event_log", day) / "events.jsonl",
        )
