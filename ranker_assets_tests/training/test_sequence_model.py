"""The sequence ranker reads the user's recent actions: on a small world where only they say
what the user wants now, it beats the same ranker without them, and its inputs are built once
per request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
import torch

from ranker_assets.config import FeatureSpec, ModelConfig, SequenceModel, SequenceSpec
from ranker_assets.training.data import to_tensors
from ranker_assets.training.sequences import sequence_data
from ranker_assets.training.serving import predict_frame
from ranker_assets.training.train import train_ranker

TOPICS, REQUESTS, CANDIDATES, ACTIONS = 16, 3000, 4, 20
SEQUENCE = SequenceSpec(max_length=ACTIONS, attributes={"topic": "pin_topic"})
WITH = FeatureSpec(dense=("noise",), categorical=("pin_topic",), sequence=SEQUENCE)
WITHOUT = FeatureSpec(dense=("noise",), categorical=("pin_topic",))
MODEL = ModelConfig(
    heads=("click",),
    epochs=6,
    batch_size=256,
    hash_buckets=101,
    shared_units=(32,),
    expert_units=(16,),
    tower_units=(8,),
    sequence=SequenceModel(length=ACTIONS, layers=1, heads=2, dim=8),
)


def _world(seed: int = 0) -> pa.Table:
    """Each user wants two topics now, seen only in their last actions; a candidate of one of
    them is clicked 70% of the time, any other 3% (the best possible AUC is about 0.86)."""
    rng = np.random.default_rng(seed)
    wanted = np.stack([rng.choice(TOPICS, 2, replace=False) for _ in range(REQUESTS)])
    topics = wanted[np.arange(REQUESTS)[:, None], rng.integers(0, 2, (REQUESTS, ACTIONS))]
    request = np.repeat(np.arange(REQUESTS), CANDIDATES)
    candidate = rng.integers(0, TOPICS, REQUESTS * CANDIDATES)
    hit = (candidate[:, None] == wanted[request]).any(axis=1)
    noon = datetime(2026, 11, 1, 12, tzinfo=UTC)
    times = [noon - timedelta(minutes=m) for m in range(ACTIONS, 0, -1)]
    n = len(request)
    return pa.table(
        {
            "request_id": pa.array(request, pa.int64()),
            "request_ts": pa.array([noon] * n, pa.timestamp("us", tz="UTC")),
            "pin_id": pa.array(np.arange(n) + 10_000, pa.int64()),
            "pin_topic": pa.array(candidate, pa.int64()),
            "noise": pa.array(rng.normal(size=n).astype(np.float32)),
            "action_pin_id": pa.array(list(topics[request] * 1000 + 7), pa.list_(pa.int64())),
            "action_type": pa.array([["click"] * ACTIONS] * n),
            "action_ts": pa.array([times] * n, pa.list_(pa.timestamp("us", tz="UTC"))),
            "action_topic": pa.array(list(topics[request]), pa.list_(pa.int64())),
            "click": pa.array((rng.random(n) < np.where(hit, 0.7, 0.03)).astype(np.int8)),
            "weight": pa.array(np.ones(n)),
            "policy": pa.array(["production"] * n),
        }
    )


@pytest.fixture(scope="module")
def world() -> pa.Table:
    return _world()


def test_the_sequence_ranker_beats_the_same_ranker_without_the_sequence(world) -> None:
    aucs = {}
    for name, spec in (("with", WITH), ("without", WITHOUT)):
        data = to_tensors(world, spec, MODEL.heads, MODEL.hash_buckets, sequence_length=ACTIONS)
        aucs[name] = train_ranker(data, spec, MODEL).holdout["auc_click"]
    # Without the actions the candidate's topic says nothing of this user's wish: ~0.5.
    assert aucs["without"] < 0.6 and aucs["with"] > aucs["without"] + 0.15, aucs


def test_a_requests_sequence_is_encoded_once_and_its_last_actions_are_kept(world) -> None:
    seq = sequence_data(world, SEQUENCE, 5, 101)
    assert seq.tokens.shape == (REQUESTS, 5, 3)  # per request: item, type, topic
    assert torch.equal(seq.request_index[:CANDIDATES], torch.zeros(CANDIDATES, dtype=torch.long))
    last = world.slice(0, 1).to_pylist()[0]
    ages = seq.age_hours[0].numpy()
    assert np.allclose(ages, [5 / 60, 4 / 60, 3 / 60, 2 / 60, 1 / 60], atol=1e-6)  # newest last
    same_topic = sequence_data(world.slice(0, 1), SEQUENCE, ACTIONS, 101).tokens[0, :, 2]
    topics = np.asarray(last["action_topic"])
    assert (same_topic.numpy()[:, None] == same_topic.numpy()[None, :]).sum() == (
        (topics[:, None] == topics[None, :]).sum()
    )


def test_scores_change_when_the_sequence_changes(world) -> None:
    data = to_tensors(world, WITH, MODEL.heads, MODEL.hash_buckets, sequence_length=ACTIONS)
    model = train_ranker(data, WITH, MODEL.model_copy(update={"epochs": 1})).calibrated
    frame = world.slice(0, 40).to_pandas()
    before = predict_frame(model, frame, WITH)["p_click"].to_numpy()
    frame["action_topic"] = [np.asarray(v) * 0 + 15 for v in frame["action_topic"]]
    after = predict_frame(model, frame, WITH)["p_click"].to_numpy()
    assert not np.allclose(before, after)


@pytest.mark.parametrize("as_frame", [True, False])
def test_requests_with_no_logged_actions_at_all_read_as_an_empty_history(
    world, as_frame: bool
) -> None:
    """A frame (a scored request, a chunk of the report's rows) whose every request lacks its
    sequence has only null lists: they read as no history, not as an untyped column."""
    rows = world.slice(0, 2 * CANDIDATES)
    for name in SEQUENCE.columns:
        index = rows.schema.get_field_index(name)
        rows = rows.set_column(index, name, pa.nulls(rows.num_rows, rows.schema.field(name).type))
    seq = sequence_data(rows.to_pandas() if as_frame else rows, SEQUENCE, 5, 101)
    assert seq.tokens.shape == (2, 5, 3) and int(seq.tokens.abs().sum()) == 0
    assert float(seq.age_hours.abs().sum()) == 0.0
