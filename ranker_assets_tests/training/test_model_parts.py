"""Fast unit tests of the ranker's parts: metrics, hashing, calibration, the module."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ranker_assets.config import ModelConfig
from ranker_assets.metrics import calibration_ratio, weighted_auc
from ranker_assets.training.calibration import fit_platt
from ranker_assets.training.data import holdout_mask
from ranker_assets.training.hashing import hash_ids
from ranker_assets.training.layers import Dropout, Embedding, Encoder, EncoderLayer
from ranker_assets.training.model import Architecture, CalibratedRanker, MMoERanker
from ranker_assets.training.train import EarlyStopping


def test_weighted_auc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.3
    s = rng.integers(0, 8, 60).astype(float)  # many ties
    w = rng.random(60) + 0.1
    num = den = 0.0
    for i, j in itertools.product(np.flatnonzero(y), np.flatnonzero(~y)):
        pair = w[i] * w[j]
        num += pair * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
        den += pair
    assert abs(weighted_auc(y, s, w) - num / den) < 1e-12
    assert abs(weighted_auc(y, -s, w) - (1 - num / den)) < 1e-12
    assert np.isnan(weighted_auc(np.zeros(5), np.arange(5)))


def test_platt_scaling_recalibrates_shifted_logits_on_fresh_data() -> None:
    gen = torch.Generator().manual_seed(1)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        true_logit = torch.randn(n, 2, generator=gen) * 1.5 - 2.0
        labels = (torch.rand(n, 2, generator=gen) < torch.sigmoid(true_logit)).float()
        return 0.6 * true_logit + 1.2, labels  # miscalibrated: squashed and shifted

    logits, labels = draw(40_000)
    weights = torch.ones(len(logits))
    scale, bias, status = fit_platt(logits, labels, weights, ("a", "b"), min_positives=30)
    assert status == {"a": "platt", "b": "platt"}
    fresh_logits, fresh_labels = draw(40_000)
    for i in range(2):
        raw = calibration_ratio(
            fresh_labels[:, i].numpy(), torch.sigmoid(fresh_logits[:, i]).numpy()
        )
        cal = calibration_ratio(
            fresh_labels[:, i].numpy(),
            torch.sigmoid(fresh_logits[:, i] * scale[i] + bias[i]).numpy(),
        )
        assert raw > 1.5 and abs(cal - 1) < 0.03
    assert torch.allclose(scale, torch.full((2,), 1 / 0.6), rtol=0.05)


def test_platt_falls_back_to_raw_scores_on_too_few_positives_or_a_reversing_slope() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4000, 3, generator=gen)
    labels = torch.zeros(4000, 3)
    labels[0, 0] = 1.0  # one positive: a fit would be a constant or noise
    labels[:, 1] = (logits[:, 1] < -1.0).float()  # the ranking is reversed on this head
    labels[:, 2] = (torch.rand(4000, generator=gen) < torch.sigmoid(logits[:, 2])).float()
    scale, bias, status = fit_platt(
        logits, labels, torch.ones(4000), ("one", "reversed", "fine"), min_positives=30
    )
    assert status["one"].startswith("raw: 1 held-out positives")
    assert status["reversed"].startswith("raw: fitted slope")
    assert status["fine"] == "platt"
    assert scale[:2].tolist() == [1.0, 1.0] and bias[:2].tolist() == [0.0, 0.0]
    assert 0.8 < scale[2] < 1.2


def test_a_feature_constant_in_training_cannot_produce_extreme_inputs_at_serving() -> None:
    arch = Architecture(2, 0, ("click",), 11, 2, (8,), 2, (4,), (4,), 0.0)
    torch.manual_seed(0)
    model = MMoERanker(arch).eval()
    gen = torch.Generator().manual_seed(3)
    train = torch.stack([torch.randn(500, generator=gen), torch.zeros(500)], dim=1)
    model.set_normalization(train, torch.ones(500))
    assert model.dense_active.tolist() == [1.0, 0.0]
    serving = torch.tensor([[0.3, 0.0], [0.3, 7.0], [1e9, 1e9]])
    inputs = model.normalize(serving)
    assert inputs.abs().max() <= arch.dense_clip
    assert inputs[1, 1] == 0.0  # the feature never varied in training: ignored, not amplified
    probs = torch.sigmoid(model(serving, torch.zeros((3, 0), dtype=torch.long)))
    assert probs[0] == probs[1]
    assert ((probs > 1e-4) & (probs < 1 - 1e-4)).all()


def test_early_stopping_keeps_the_best_epochs_weights_and_waits_out_its_patience() -> None:
    layer = torch.nn.Linear(2, 1)
    stopping = EarlyStopping(patience=2, task_weights={"click": 3.0})
    # Minus the task-weighted mean of the heads' losses: higher is better.
    assert stopping.score({"click": 0.2, "repin": 0.6}) == -(3 * 0.2 + 0.6) / 4
    assert math.isnan(stopping.score({}))
    decisions = []
    for epoch, score in enumerate([0.60, 0.70, 0.65, 0.69, 0.80]):
        with torch.no_grad():
            layer.weight.fill_(epoch)
        decisions.append(stopping.stop_after(epoch, score, layer))
        if decisions[-1]:
            break
    # Two epochs without beating 0.70 stop training before 0.80 is ever seen.
    assert decisions == [False, False, False, True]
    assert stopping.restore_best(layer, last_epoch=4) == 1
    assert torch.equal(layer.weight, torch.full((1, 2), 1.0))
    # Without patience, or without any defined score, it never stops and keeps the last epoch.
    for never in (EarlyStopping(None, {}), EarlyStopping(1, {})):
        for epoch in range(5):
            score = 0.9 - epoch / 10 if never.patience is None else float("nan")
            assert not never.stop_after(epoch, score, layer)
        assert never.restore_best(layer, last_epoch=4) == 4


def test_hashing_and_holdout_are_deterministic_and_per_request() -> None:
    ids = np.arange(100_000, dtype=np.int64)
    a = hash_ids(ids, 0, 1009)
    assert np.array_equal(a, hash_ids(ids, 0, 1009)) and a.min() >= 0 and a.max() < 1009
    assert not np.array_equal(a, hash_ids(ids, 1, 1009))
    assert abs(np.bincount(a, minlength=1009).std() / 99.1 - 0.1) < 0.05  # close to uniform
    requests = np.repeat(np.arange(5000), 7)
    mask = holdout_mask(requests, 0.2, 0)
    per_request = mask.reshape(5000, 7)
    assert (per_request.all(1) | ~per_request.any(1)).all()  # never splits a request
    assert abs(mask.mean() - 0.2) < 0.02


def test_mmoe_outputs_one_logit_per_head_and_normalizes_inside() -> None:
    arch = Architecture(3, 2, ("click", "repin"), 101, 4, (16,), 3, (8,), (4,), 0.0)
    model = MMoERanker(arch)
    dense = torch.tensor([[1.0, 1000.0, -5.0], [2.0, 10.0, 0.0], [0.0, 1.0, 3.0]])
    model.set_normalization(dense, torch.ones(3))
    cats = torch.tensor([[0, 5], [100, 7], [3, 3]])
    assert model(dense, cats).shape == (3, 2)
    normalized = (torch.sign(dense) * torch.log1p(dense.abs()) - model.dense_mean) / model.dense_std
    assert torch.allclose(normalized.mean(0), torch.zeros(3), atol=1e-5)
    calibrated = CalibratedRanker(model, torch.tensor([2.0, 1.0]), torch.tensor([0.5, -1.0]))
    assert torch.allclose(
        calibrated(dense, cats),
        model(dense, cats) * torch.tensor([2.0, 1.0]) + torch.tensor([0.5, -1.0]),
    )


def test_a_ranker_saved_with_one_module_per_expert_and_head_loads_and_scores_the_same() -> None:
    """Models registered before the batched MMoE layers saved one module per expert, gate and
    tower; loading one rewrites its state dict and reproduces that layout's forward pass."""
    arch = Architecture(3, 2, ("click", "repin"), 101, 4, (16,), 3, (8, 6), (5,), 0.0)
    torch.manual_seed(0)

    def mlp(n_in: int, units: tuple[int, ...]) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for u in units:
            layers += [torch.nn.Linear(n_in, u), torch.nn.ReLU(), torch.nn.Dropout(0.0)]
            n_in = u
        return torch.nn.Sequential(*layers)

    old = MMoERanker(arch)  # shared layers, embeddings and buffers: the same in both layouts
    old.experts = torch.nn.ModuleList(mlp(16, (8, 6)) for _ in range(3))
    old.gates = torch.nn.ModuleList(torch.nn.Linear(16, 3) for _ in arch.heads)
    old.towers = torch.nn.ModuleList(
        torch.nn.Sequential(mlp(6, (5,)), torch.nn.Linear(5, 1)) for _ in arch.heads
    )
    dense, cats = torch.randn(7, 3), torch.randint(0, 101, (7, 2))
    with torch.no_grad():
        h = old.shared(
            torch.cat(
                [old.normalize(dense), *(e(cats[:, i]) for i, e in enumerate(old.embeddings))], 1
            )
        )
        experts = torch.stack([e(h) for e in old.experts], dim=1)
        expected = torch.cat(
            [
                tower((torch.softmax(gate(h), 1).unsqueeze(-1) * experts).sum(1))
                for gate, tower in zip(old.gates, old.towers, strict=True)
            ],
            dim=1,
        )
    state = old.state_dict()
    assert "experts.2.3.weight" in state and "towers.1.1.bias" in state
    loaded = CalibratedRanker(MMoERanker(arch), torch.ones(2), torch.zeros(2))
    loaded.load_state_dict(
        {f"base.{k}": v for k, v in state.items()}
        | {"scale": torch.ones(2), "bias": torch.zeros(2)}
    )
    assert torch.allclose(loaded.eval()(dense, cats), expected, atol=1e-6)


def test_the_embeddings_fast_backward_gives_torchs_gradients_padding_row_included() -> None:
    torch.manual_seed(0)
    ours = Embedding(11, 3, padding_idx=0)
    theirs = torch.nn.Embedding(11, 3, padding_idx=0)
    theirs.load_state_dict(ours.state_dict())
    ids = torch.tensor([[0, 3, 3, 10], [5, 0, 3, 1]])  # repeats and padding
    upstream = torch.randn(2, 4, 3)
    for module in (ours, theirs):
        (module(ids) * upstream).sum().backward()
    assert torch.equal(ours(ids), theirs(ids))
    assert ours.weight.grad is not None and theirs.weight.grad is not None
    assert torch.allclose(ours.weight.grad, theirs.weight.grad, atol=1e-6)
    assert not ours.weight.grad[0].any()  # the padding row is never trained


@pytest.mark.parametrize("heads", [1, 2])
def test_the_encoder_layer_is_torchs_transformer_layer_and_loads_its_weights(heads: int) -> None:
    """Models registered with nn.TransformerEncoder load into the encoder unchanged and score
    the same; training follows the same gradients."""
    torch.manual_seed(0)
    torchs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, heads, 16, 0.0, batch_first=True),
        2,
        enable_nested_tensor=False,
    )
    ours = Encoder(EncoderLayer(8, heads, 16), 2)
    assert ours.state_dict().keys() == torchs.state_dict().keys()
    for p in torchs.parameters():  # away from the initial zeros and ones
        torch.nn.init.normal_(p, std=0.5)
    ours.load_state_dict(torchs.state_dict())
    x = torch.randn(5, 7, 8)
    for module in (ours, torchs):
        module.train()
        (module(x) ** 2).sum().backward()
        module.eval()
    with torch.no_grad():
        assert torch.allclose(ours(x), torchs(x), atol=1e-5)
    for (name, p), q in zip(ours.named_parameters(), torchs.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-4), name


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_drops_its_share_independently_and_keeps_the_expected_activation(p: float) -> None:
    torch.manual_seed(0)
    dropout = Dropout(p).train()
    x = torch.full((400, 500), 2.0)
    y = dropout(x)
    dropped = (y == 0).float()
    assert abs(float(dropped.mean()) - p) < 0.003  # 200k draws: 4+ standard errors
    assert abs(float(y.mean()) - 2.0) < 0.01
    assert torch.allclose(torch.unique(y), torch.tensor([0.0, 2.0 * dropout.scale]))
    # Four elements share a 64-bit word: neighbours (and elements a word apart) independent.
    flat = dropped.flatten()
    for lag in (1, 2, 3, 4):
        assert abs(float(torch.corrcoef(torch.stack([flat[:-lag], flat[lag:]]))[0, 1])) < 0.01
    assert torch.equal(dropout.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_a_window_too_small_for_full_batches_gets_smaller_ones() -> None:
    cfg = ModelConfig(batch_size=2048, min_steps_per_epoch=20)
    assert cfg.step_rows(1_000_000) == 2048  # large windows: the configured batch
    assert cfg.step_rows(20 * 2048) == 2048
    assert cfg.step_rows(20 * 2048 - 1) == 2048  # ceil: never fewer than 20 steps
    assert cfg.step_rows(11_000) == 550  # a 1-day demo window: 20 steps of 550
    assert cfg.step_rows(7) == 1
    assert ModelConfig(batch_size=256, min_steps_per_epoch=1).step_rows(11_000) == 256
