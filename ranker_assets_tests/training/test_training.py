"""The trainer end to end on simulated data: quality vs heuristic and oracle, MLflow, options."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from ranker_assets.evaluation.replay import replay_aucs, replay_day
from ranker_assets.training.data import TrainingDataError, attach_sequences, load_window
from ranker_assets.training.pipeline import TrainedRanker, ranker_tensors, train_partition
from ranker_assets.training.serving import predict_frame, pyfunc_input
from ranker_assets.training.tracking import CHAMPION
from ranker_assets.training.train import train_ranker
from ranker_assets_tests.conftest import DAYS, SEED, START, TrainingWorld

pytestmark = pytest.mark.spark
TAGS = {"dagster_run_id": "test-run"}


def _train(world: TrainingWorld, days: list[str] = DAYS, **model: object) -> TrainedRanker:
    cfg = world.cfg.model_copy(update={"model": world.cfg.model.model_copy(update=model)})
    return train_partition(world.lake, cfg, days[-1], "legacy", "hash-legacy", TAGS, days=days)


@pytest.fixture(scope="module")
def trained(training_world: TrainingWorld) -> TrainedRanker:
    return _train(training_world)


@pytest.fixture(scope="module")
def replay(training_world: TrainingWorld) -> pd.DataFrame:
    """A later day served fully at random: unbiased evaluation data the model never saw."""
    return replay_day(training_world.cfg, SEED, START + timedelta(days=5), 4000)


@pytest.fixture(scope="module")
def champion(training_world: TrainingWorld) -> TrainedRanker:
    """A different model (one day, another seed) made champion: the teacher and warm start."""
    champ = _train(training_world, DAYS[:1], seed=3)
    client = MlflowClient(training_world.cfg.mlflow.resolved_uri())
    reg = champ.registered
    client.set_registered_model_alias(reg.name, CHAMPION, reg.version)
    client.set_registered_model_alias(reg.raw_name, CHAMPION, reg.raw_version)
    return champ


def _scores(world: TrainingWorld, model: torch.nn.Module, frame: pd.DataFrame) -> pd.DataFrame:
    return predict_frame(model, frame, world.cfg.features)


def test_the_ranker_beats_the_heuristic_and_nears_the_oracle(
    training_world, trained, replay
) -> None:
    table = replay_aucs(
        replay,
        _scores(training_world, trained.outcome.calibrated, replay),
        trained.outcome.raw.arch.heads,
    )
    assert (table["positives"] > 200).all()
    assert (table["model"] > table["heuristic"] + 0.015).all(), table
    assert (table["oracle"] - table["model"] < 0.1).all(), table


def test_calibration_brings_held_out_predictions_to_the_observed_rate(trained) -> None:
    heads = trained.outcome.raw.arch.heads
    raw = np.array([trained.outcome.holdout[f"pred_over_actual_raw_{h}"] for h in heads])
    cal = np.array([trained.outcome.holdout[f"pred_over_actual_calibrated_{h}"] for h in heads])
    # Measured on the half of the holdout Platt was not fitted on: within 3 standard errors
    # of a count of its positives (about half the holdout's), and never worse than 5% needs.
    positives = np.array([trained.outcome.holdout[f"positives_{h}"] for h in heads]) / 2
    assert (np.abs(cal - 1) < np.maximum(0.05, 3 / np.sqrt(positives))).all(), (cal, positives)
    # Where the raw model is already calibrated (dropout 0.3 keeps it close), Platt may move it
    # only within the noise of the positives it is measured on.
    assert (np.abs(cal - 1) <= np.abs(raw - 1) + 2 / np.sqrt(positives)).all(), (cal, raw)


def test_registry_round_trip_reproduces_in_memory_predictions(training_world, trained) -> None:
    world, reg = training_world, trained.registered
    mlflow.set_tracking_uri(world.cfg.mlflow.resolved_uri())
    examples = world.lake.read("training_examples", [DAYS[0]]).slice(0, 700)
    frame = attach_sequences(world.lake, examples, [DAYS[0]], world.cfg.features).to_pandas()
    served = pyfunc_input(frame, world.cfg.features)  # what a serving host sends the pyfunc
    # A request's recent actions travel once, on its first row; every row is scored with them.
    assert served["action_pin_id"].notna().sum() == frame["request_id"].nunique() < len(frame)
    for uri, module in (
        (reg.uri, trained.outcome.calibrated),
        (f"models:/{reg.raw_name}/{reg.raw_version}", trained.outcome.raw),
    ):
        loaded = mlflow.pyfunc.load_model(uri).predict(served)
        assert np.array_equal(loaded.to_numpy(), _scores(world, module, frame).to_numpy())
    client = MlflowClient()
    client.set_registered_model_alias(reg.name, "candidate", reg.version)
    by_alias = mlflow.pyfunc.load_model(f"models:/{reg.name}@candidate").predict(served)
    assert np.array_equal(
        by_alias.to_numpy(), _scores(world, trained.outcome.calibrated, frame).to_numpy()
    )
    tags = client.get_model_version(reg.name, reg.version).tags
    assert tags["dagster_run_id"] == "test-run" and tags["input_partitions"] == ",".join(DAYS)
    assert tags["sampling_config"] == "legacy" and tags["sampling_config_hash"] == "hash-legacy"
    assert tags["raw_version"] == reg.raw_version
    assert (
        client.get_model_version(reg.raw_name, reg.raw_version).tags["calibrated_version"]
        == reg.version
    )
    run = client.get_run(reg.run_id)
    assert run.info.status == "FINISHED"
    # Artifacts live beside the sqlite store, never in ./mlruns of whatever directory we run in.
    store = world.cfg.mlflow.resolved_uri().removeprefix("sqlite:///").removesuffix("/mlflow.db")
    assert run.info.artifact_uri.startswith(f"file://{store}/mlartifacts/")
    assert {"holdout_auc_repin", "loss_repin"} <= set(run.data.metrics)
    epochs = len(trained.outcome.history)  # early stopping may end before model.epochs
    assert len(client.get_metric_history(reg.run_id, "loss_repin")) == epochs
    assert run.data.metrics["epochs_trained"] == epochs
    assert run.data.metrics["epoch_kept"] == trained.outcome.epoch_kept


def test_warm_start_begins_at_the_champion(training_world, champion) -> None:
    @torch.no_grad()
    def distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
        pairs = zip(a.parameters(), b.parameters(), strict=True)
        return float(sum(((p - q) ** 2).sum() for p, q in pairs))

    warm = _train(training_world, epochs=1, warm_start=True)
    cold = _train(training_world, epochs=1)
    target = champion.outcome.raw
    assert distance(warm.outcome.raw, target) < 0.5 * distance(cold.outcome.raw, target)
    assert torch.equal(
        warm.outcome.raw.dense_mean, target.dense_mean
    )  # the champion's normalization


def test_distillation_pulls_the_student_towards_the_teacher(
    training_world, champion, replay
) -> None:
    # Both train every epoch: early stopping would let them stop at different ones.
    student = _train(training_world, distillation_weight=5.0, early_stopping_patience=None)
    alone = _train(training_world, early_stopping_patience=None)
    teacher = _scores(training_world, champion.outcome.raw, replay).to_numpy()
    plain = _scores(training_world, alone.outcome.raw, replay).to_numpy()
    distilled = _scores(training_world, student.outcome.raw, replay).to_numpy()
    assert np.abs(distilled - teacher).mean() < 0.7 * np.abs(plain - teacher).mean()


def test_a_failed_training_leaves_a_failed_mlflow_run(training_world) -> None:
    late = str(START + timedelta(days=4))
    with pytest.raises(
        TrainingDataError, match=r"missing the sampled datasets of \['2026-11-04', '2026-11-05'\]"
    ):
        train_partition(training_world.lake, training_world.cfg, late, "legacy", "h", TAGS)
    client = MlflowClient(training_world.cfg.mlflow.resolved_uri())
    runs = client.search_runs(
        [client.get_experiment_by_name(training_world.cfg.mlflow.experiment).experiment_id],
        filter_string=f"tags.partition_ds = '{late}'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]


def test_calibrating_on_randomized_rows_holds_exactly_them_out_of_training(training_world) -> None:
    cfg = training_world.cfg
    data = ranker_tensors(
        load_window(training_world.lake, "legacy", DAYS, cfg.features, cfg.model.heads), cfg
    )
    model = cfg.model.model_copy(update={"calibrate_on": "randomized", "epochs": 1})
    outcome = train_ranker(data, cfg.features, model)
    randomized = int(data.randomized.sum())
    assert 0 < randomized < len(data)
    assert outcome.rows["holdout"] == randomized
    assert outcome.rows["train"] == len(data) - randomized
    production = data.subset(torch.nonzero(~data.randomized).squeeze(1))
    with pytest.raises(TrainingDataError, match="no randomized-traffic rows"):
        train_ranker(production, cfg.features, model)


def test_early_stopping_ends_after_its_patience_with_the_best_epochs_weights(
    training_world,
) -> None:
    cfg = training_world.cfg
    data = ranker_tensors(
        load_window(training_world.lake, "legacy", DAYS, cfg.features, cfg.model.heads), cfg
    )
    # A learning rate this high over-fits a small window within a few epochs.
    model = cfg.model.model_copy(
        update={"epochs": 15, "learning_rate": 0.03, "early_stopping_patience": 2}
    )
    stopped = train_ranker(data, cfg.features, model)
    scores = [row["early_stopping_score"] for row in stopped.history]
    best = int(np.argmax(scores))
    assert stopped.epoch_kept == best
    assert len(scores) == best + 3 < 15  # two epochs that did not beat the best, then stop
    # Its weights are those of training only up to the best epoch (training is deterministic).
    upto_best = train_ranker(
        data,
        cfg.features,
        model.model_copy(update={"epochs": best + 1, "early_stopping_patience": None}),
    )
    assert upto_best.epoch_kept == best
    kept, reference = stopped.raw.state_dict(), upto_best.raw.state_dict()
    assert all(torch.equal(kept[k], reference[k]) for k in kept)


# Another process training a small network on both cores for as long as the test needs them.
_BUSY = """
import torch
x = torch.randn(4096, 64)
w = torch.randn(64, 64, requires_grad=True)
while True:
    idx = torch.randint(0, 4096, (20000,))
    torch.zeros(4096, 64).index_put_((idx,), (x[idx] @ w), accumulate=True).sum().backward()
"""


def test_training_is_reproducible_while_other_work_shares_the_cores(training_world) -> None:
    """Same seed, same rows, the same weights, while another process trains beside it. Without
    deterministic kernels (train.deterministic_kernels) about half of such trainings differed."""
    world = training_world
    cfg = world.cfg.model_copy(update={"model": world.cfg.model.model_copy(update={"epochs": 1})})
    table = load_window(world.lake, "legacy", DAYS[:1], cfg.features, cfg.model.heads)
    data = ranker_tensors(table, cfg)
    busy = subprocess.Popen([sys.executable, "-c", _BUSY], stdin=subprocess.DEVNULL)
    try:
        weights = [train_ranker(data, cfg.features, cfg.model).raw.state_dict() for _ in range(4)]
    finally:
        busy.kill()
        busy.wait()
    first = weights[0]
    for other in weights[1:]:
        assert all(torch.equal(first[k], other[k]) for k in first)
