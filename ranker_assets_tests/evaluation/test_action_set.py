"""Per-slot off-policy values of one-item-per-slot logs over an item table, against the on-policy
value of the policy itself."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ranker_assets.config import REPO_ROOT, load_config
from ranker_assets.evaluation.action_set import (
    ItemTableError,
    load_item_table,
    model_slates,
    slot_matches,
    why_not_crossable,
)
from ranker_assets.evaluation.off_policy import slot_estimates
from ranker_assets.evaluation.rows import off_policy_basis, served_utility
from ranker_assets.training.data import to_tensors
from ranker_assets.training.train import train_ranker

ITEMS, SLOTS = 20, 3
EXAM = np.array([1.0, 0.7, 0.5])
INPUTS = ["user_id", "uf0", "uf1", "pin_id", "iq", "iv0", "iv1"]


class World:
    """Users and items with hidden vectors; a click needs examination of the slot and appeal."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.quality = rng.normal(-1.5, 0.8, ITEMS)
        self.item_vec = rng.normal(0, 1, (ITEMS, 2))
        self.user_vec = rng.normal(0, 1, (500, 2))
        noise = rng.normal(0, 0.2, (ITEMS, 3))
        self.table = pd.DataFrame(
            {
                "pin_id": [f"item-{i:02d}" for i in range(ITEMS)],
                "iq": self.quality + noise[:, 0],
                "iv0": self.item_vec[:, 0] + noise[:, 1],
                "iv1": self.item_vec[:, 1] + noise[:, 2],
            }
        )

    def appeal(self, users: np.ndarray) -> np.ndarray:
        """(requests, items) click probability in an examined slot."""
        logit = self.quality + (self.user_vec[users] @ self.item_vec.T)
        return 1 / (1 + np.exp(-logit))

    def log(self, requests: int, seed: int, order: np.ndarray | None = None) -> pd.DataFrame:
        """One row per shown slot. `order` (requests, items) ranks the items of each request
        deterministically (propensity 1); None serves a uniform shuffle (propensity 1/items)."""
        rng = np.random.default_rng(seed)
        users = rng.integers(0, len(self.user_vec), requests)
        if order is None:
            order = np.argsort(rng.random((requests, ITEMS)), axis=1)
            propensity = 1.0 / ITEMS
        else:
            propensity = 1.0
        shown = order[:, :SLOTS]
        p = np.take_along_axis(self.appeal(users), shown, 1) * EXAM
        click = rng.random(p.shape) < p
        uf = self.user_vec[users] + rng.normal(0, 0.2, (requests, 2))
        rows = np.repeat(np.arange(requests), SLOTS)
        frame = pd.DataFrame(
            {
                "request_id": [f"r{seed}-{i}" for i in rows],
                "user_id": [f"u{x}" for x in users[rows]],
                "uf0": uf[rows, 0],
                "uf1": uf[rows, 1],
                "position": np.tile(np.arange(SLOTS), requests),
                "propensity": propensity,
                "click": click.ravel().astype(np.int8),
                "p_true": p.ravel(),
            }
        )
        items = self.table.iloc[shown.ravel()].reset_index(drop=True)
        return pd.concat([frame, items], axis=1)


def score(frame: pd.DataFrame) -> np.ndarray:
    """A model of the world: appeal read from the noisy request and item features."""
    return (frame["iq"] + frame["uf0"] * frame["iv0"] + frame["uf1"] * frame["iv1"]).to_numpy()


def on_policy(world: World, scorer, requests: int, seed: int) -> pd.DataFrame:
    """The policy that serves by `scorer`, run for real: its own log, propensity 1."""
    first_rows = world.log(requests, seed)[lambda f: f["position"] == 0]
    context = first_rows[["request_id", "user_id", "uf0", "uf1"]]
    pairs = context.loc[context.index.repeat(ITEMS)].reset_index(drop=True)
    pairs = pd.concat([pairs, pd.concat([world.table] * len(context), ignore_index=True)], axis=1)
    order = np.argsort(-scorer(pairs).reshape(len(context), ITEMS), axis=1, kind="stable")
    return world.log(requests, seed, order)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.mark.parametrize("scorer", [score, lambda f: -score(f)], ids=["good", "reversed"])
def test_per_slot_estimates_recover_the_policys_own_on_policy_value(world, scorer) -> None:
    logged = world.log(30_000, seed=1)
    assert why_not_crossable(logged, world.table, INPUTS) is None
    slates = model_slates(logged, world.table, scorer, SLOTS)
    matched = slot_matches(logged, slates)
    assert 0.7 * len(logged) / ITEMS < matched.sum() < 1.3 * len(logged) / ITEMS
    est = slot_estimates(logged, matched, ("click",), SLOTS, 200, 0.95, 0).set_index("estimator")
    served = on_policy(world, scorer, 30_000, seed=2)
    requests = served["request_id"].nunique()
    observed = served["click"].sum() / requests  # clicks per request when it really served
    expected = served["p_true"].sum() / requests  # the same, without the clicks' noise
    for name in ("ips", "snips"):
        low, high = est.loc[name, ["ci_low", "ci_high"]]
        assert low <= expected <= high, (name, expected, est)
        assert abs(est.loc[name, "value"] / observed - 1) < 0.12, (name, observed, est)


def test_a_better_policy_gets_a_higher_estimate(world) -> None:
    logged = world.log(20_000, seed=3)
    values = {}
    for label, scorer in (("good", score), ("reversed", lambda f: -score(f))):
        matched = slot_matches(logged, model_slates(logged, world.table, scorer, SLOTS))
        est = slot_estimates(logged, matched, ("click",), SLOTS, 50, 0.9, 0)
        values[label] = est.set_index("estimator").loc["snips", "value"]
    assert values["good"] > 2 * values["reversed"], values


def test_model_slates_rank_each_request_over_the_whole_table(world) -> None:
    logged = world.log(50, seed=4)
    # A scorer that prefers items by their index in the table, whatever the request.
    slates = model_slates(logged, world.table, lambda f: -f["pin_id"].str[5:].astype(int), SLOTS)
    assert len(slates) == 50 * SLOTS
    first = np.array(["item-00", "item-01", "item-02"])
    assert all(
        list(items) == list(first) for items in slates.groupby("request_id")["pin_id"].agg(list)
    )
    matched = slot_matches(logged, slates)
    assert (matched == (logged["pin_id"].to_numpy() == first[logged["position"]])).all()


def test_uncrossable_logs_are_refused_with_the_reason(world) -> None:
    logged = world.log(200, seed=5)
    # A pair feature (differs between a request's items) that the table does not carry.
    logged["affinity"] = np.arange(len(logged), dtype=float)
    reason = why_not_crossable(logged, world.table, [*INPUTS, "affinity"])
    assert reason is not None and "['affinity']" in reason and "item-side" in reason
    smaller = world.table[world.table["pin_id"] != logged["pin_id"].iloc[0]]
    reason = why_not_crossable(logged, smaller, INPUTS)
    assert reason is not None and "not the full action set" in reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="pin_id"), "no pin_id column"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "1 repeated pin_id (first: 'item-00')"),
        (lambda t: t.assign(iq=t["iq"].where(t.index > 0)), "null values in ['iq']"),
        (lambda t: t.assign(pin_id=t.index), "vocabulary.id_type is string"),
    ],
)
def test_a_broken_item_table_is_an_error_naming_the_problem(
    world, tmp_path: Path, change, message: str
) -> None:
    path = tmp_path / "items.parquet"
    change(world.table).to_parquet(path)
    with pytest.raises(ItemTableError, match=re.escape(message)):
        load_item_table(path, "string")
    world.table.to_parquet(path)
    assert load_item_table(path, "string").equals(world.table)


def test_a_trained_ranker_is_valued_per_slot_through_the_configs_item_table(
    world, tmp_path: Path
) -> None:
    """The report's path: the bandit ranker's config names the item table; a ranker trained on
    the uniform slot logs is valued per slot, and its estimate matches what it earns serving."""
    base = load_config(REPO_ROOT / "configs" / "examples" / "bandit_ranker.yaml")
    world.table.to_parquet(tmp_path / "items.parquet")
    features = base.features.model_copy(
        update={"dense": ("uf0", "uf1", "iq", "iv0", "iv1"), "categorical": ("pin_id", "user_id")}
    )
    cfg = base.model_copy(update={"features": features})
    logged = world.log(20_000, seed=6).assign(weight=1.0, policy="random")
    assert "one per slot" in off_policy_basis(logged, cfg)[0]  # no item table: refused
    cfg = cfg.model_copy(
        update={
            "evaluation": cfg.evaluation.model_copy(
                update={"item_table": str(tmp_path / "items.parquet")}
            )
        }
    )
    tensors = to_tensors(pa.Table.from_pandas(logged), features, ("click",), 4099, "random")
    ranker = train_ranker(tensors, features, cfg.model).calibrated
    serve = partial(served_utility, ranker, features, cfg.ranking_weights())
    randomized = world.log(20_000, seed=7).assign(weight=1.0, policy="random")
    note, items = off_policy_basis(randomized, cfg)
    assert note is None and items is not None and len(items) == ITEMS
    matched = slot_matches(randomized, model_slates(randomized, items, serve, SLOTS))
    est = slot_estimates(randomized, matched, ("click",), SLOTS, 200, 0.95, 0).set_index(
        "estimator"
    )
    served = on_policy(world, serve, 20_000, seed=8)
    expected = served["p_true"].sum() / served["request_id"].nunique()
    uniform = randomized["p_true"].sum() / randomized["request_id"].nunique()
    assert expected > 1.5 * uniform  # the ranker learned something worth valuing
    for name in ("ips", "snips"):
        assert est.loc[name, "ci_low"] <= expected <= est.loc[name, "ci_high"], (expected, est)
    # A pair feature the table lacks makes the unlogged items unscorable: refused, with why.
    pairwise = features.model_copy(update={"dense": (*features.dense, "pair")})
    note, items = off_policy_basis(
        randomized.assign(pair=np.arange(len(randomized), dtype=float)),
        cfg.model_copy(update={"features": pairwise}),
    )
    assert items is None and "cannot stand in" in note and "['pair']" in note
