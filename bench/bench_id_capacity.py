"""How many ids share an embedding bucket: the capacity of the ranker's hashed id embeddings.

Run: .venv/bin/python bench/bench_id_capacity.py [--requests 20000] [--days 7]
     [--buckets 20011,100003,400009]
Simulates a training window of the living world and takes the ids a ranker trains on (the
impressed candidates, which hybrid logging keeps). For each bucket count it prints the share of
distinct ids, and of training rows, whose bucket also holds another id of the window (their
embedding is shared, so it cannot learn that id alone), and the same for the pins born inside
the window: the new items a fresh model should learn.
"""

from __future__ import annotations

import argparse
from datetime import date

import numpy as np

from ranker_assets.config import load_config
from ranker_assets.training.hashing import hash_ids
from ranker_assets.world.policies import HeuristicScorer
from ranker_assets.world.simulator import served_days


def shared_ids(ids: np.ndarray, feature: int, buckets: int) -> np.ndarray:
    """The distinct `ids` whose bucket also holds another id of `ids`."""
    bucket = hash_ids(ids, feature, buckets)
    return ids[np.bincount(bucket, minlength=buckets)[bucket] > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--buckets", default="20011,100003,400009")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cfg = load_config()
    start = date(2026, 11, 1)
    pins, users, new = [], [], []
    for served in served_days(
        cfg.world, start, args.days, args.requests, args.seed, HeuristicScorer(), 0.02
    ):
        pins.append(served.pin_id[served.impressed])
        users.append(np.repeat(served.user_id, served.impressed.sum(axis=1)))
        age = served.features["pin_age_days"][served.impressed]
        new.append(pins[-1][age <= (served.ds - start).days])  # born on a day of the window
    pin_rows, user_rows = np.concatenate(pins), np.concatenate(users)
    new_pins = np.unique(np.concatenate(new))
    all_pins, all_users = np.unique(pin_rows), np.unique(user_rows)
    features = list(cfg.features.categorical)
    print(
        f"{args.days} days x {args.requests:,} requests from {start}: {len(pin_rows):,} "
        f"impressed rows; distinct pins {len(all_pins):,} ({len(new_pins):,} born in the "
        f"window), distinct users {len(all_users):,}; the catalogue holds "
        f"{cfg.world.n_pins:,} pins, the world {cfg.world.n_users:,} users\n"
    )
    print("Share of ids (and of rows) whose embedding bucket holds another id of the window:\n")
    print(f"{'buckets':>9}{'pin ids':>10}{'pin rows':>10}{'new pins':>10}{'user ids':>10}")
    for buckets in (int(b) for b in args.buckets.split(",")):
        pins_shared = shared_ids(all_pins, features.index("pin_id"), buckets)
        users_shared = shared_ids(all_users, features.index("user_id"), buckets)
        print(
            f"{buckets:>9,}{len(pins_shared) / len(all_pins):>10.3f}"
            f"{np.isin(pin_rows, pins_shared).mean():>10.3f}"
            f"{np.isin(new_pins, pins_shared).mean():>10.3f}"
            f"{len(users_shared) / len(all_users):>10.3f}"
        )


if __name__ == "__main__":
    main()
