import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from iau_cli.core.models import build_model
from iau_cli.core.training import gradient_restricted_loss, partition_rows, train_model
from iau_cli.io.data import load_data

from .conftest import digits_config


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 2))


def test_gr_loss_matches_a_hand_computation() -> None:
    model = tiny_model()
    x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]])
    y = torch.tensor([0, 1])
    alpha = 0.1
    # By hand: gradients of the batch-mean CE via the chain rule, written out for this network.
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    h = torch.tanh(x @ w1.T + b1)
    logits = h @ w2.T + b2
    p = torch.softmax(logits, 1)
    d_logits = (p - F.one_hot(y, 2)) / len(y)
    g_w2 = d_logits.T @ h
    g_b2 = d_logits.sum(0)
    d_h = d_logits @ w2 * (1 - h**2)
    g_w1 = d_h.T @ x
    g_b1 = d_h.sum(0)
    ce = -torch.log(p[torch.arange(2), y]).mean()
    grads = [g_w1, g_b1, g_w2, g_b2]
    per_tensor = float(ce) + alpha * sum(float(g.norm()) for g in grads)
    global_norm = float(ce) + alpha * math.sqrt(sum(float((g**2).sum()) for g in grads))

    total, got_ce = gradient_restricted_loss(model, x, y, alpha, "per-tensor")
    assert float(got_ce.detach()) == pytest.approx(float(ce), rel=1e-6)
    assert float(total.detach()) == pytest.approx(per_tensor, rel=1e-6)
    total_global, _ = gradient_restricted_loss(model, x, y, alpha, "global")
    assert float(total_global.detach()) == pytest.approx(global_norm, rel=1e-6)
    plain, plain_ce = gradient_restricted_loss(model, x, y, 0.0)
    assert float(plain.detach()) == float(plain_ce.detach()) == pytest.approx(float(ce), rel=1e-6)


def test_gr_loss_is_differentiable_twice() -> None:
    model = tiny_model()
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    total, _ = gradient_restricted_loss(model, x, y, 0.5)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("norm", ["per-tensor", "global"])
def test_gr_penalty_has_a_finite_gradient_where_the_loss_gradient_vanishes(norm: str) -> None:
    from iau_cli.core.training import gradient_penalty

    # A zero gradient tensor (a parameter the batch does not move) next to a non-zero one.
    zero = torch.zeros(3, requires_grad=True)
    other = torch.tensor([3.0, 4.0], requires_grad=True)
    gradient_penalty([zero, other], norm).backward()
    assert torch.equal(zero.grad, torch.zeros(3))
    assert torch.allclose(other.grad, torch.tensor([0.6, 0.8]))


def test_a_seed_makes_training_reproducible() -> None:
    config = digits_config(epochs=2, gr_alpha=0.005)
    data = load_data(config.data)
    rows = partition_rows(data, config.train)
    first, _ = train_model(config, data, rows, torch.device("cpu"))
    second, _ = train_model(config, data, rows, torch.device("cpu"))
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    other, _ = train_model(digits_config(epochs=2, gr_alpha=0.005, seed=1), data, rows, torch.device("cpu"))
    assert not torch.equal(other.state_dict()["net.0.weight"], first.state_dict()["net.0.weight"])


def test_early_stopping_uses_an_id_hash_validation_split() -> None:
    config = digits_config(epochs=40, val_fraction=0.2, patience=1, lr=0.05)
    data = load_data(config.data)
    rows = partition_rows(data, config.train)
    assert 0.1 < len(rows.val) / len(data.train) < 0.3
    # Removing other rows never moves a row between learn and validation.
    fewer = partition_rows(data, config.train, exclude=set(data.train.ids[:100]))
    assert set(fewer.val.tolist()) == set(rows.val.tolist()) - set(range(100))
    _, stats = train_model(config, data, rows, torch.device("cpu"))
    assert stats.epochs_run < 40
    assert "val_loss" in stats.history[0]


@pytest.mark.parametrize(
    ("name", "shape", "args"),
    [
        ("logreg", [64], {}),
        ("mlp", [64], {"hidden": [8, 8]}),
        ("lenet5", [1, 32, 32], {}),
        ("resnet18", [3, 16, 16], {"width": 4}),
    ],
)
def test_builtin_models_build_from_shape(name: str, shape: list[int], args: dict) -> None:
    model = build_model(name, args, shape, 7)
    out = model.eval()(torch.randn(2, *shape))
    assert out.shape == (2, 7)


def test_lenet_sizes_itself_and_refuses_tiny_images() -> None:
    from iau_cli.errors import ModelError

    assert build_model("lenet5", {}, [3, 28, 28], 10).classifier[0].in_features == 16 * 4 * 4
    with pytest.raises(ModelError, match="at least 12×12"):
        build_model("lenet5", {}, [1, 8, 8], 10)


def test_import_path_models(tmp_path, monkeypatch) -> None:
    from iau_cli.errors import ModelError

    (tmp_path / "user_models.py").write_text(
        "import torch\n"
        "class Tiny(torch.nn.Module):\n"
        "    def __init__(self, input_shape, num_classes, width=4):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(input_shape[0], num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("user_models:Tiny", {"width": 2}, [5], 3)
    assert model(torch.randn(1, 5)).shape == (1, 3)
    with pytest.raises(ModelError, match="cannot import 'no_such_module'"):
        build_model("no_such_module:Net", {}, [5], 3)
    with pytest.raises(ModelError, match="has no attribute 'Missing'"):
        build_model("user_models:Missing", {}, [5], 3)
    with pytest.raises(ModelError, match="--trust-checkpoint-code"):
        build_model("user_models:Tiny", {}, [5], 3, allow_import=False)
    with pytest.raises(ModelError, match="bad arguments"):
        build_model("mlp", {"nonsense": 1}, [5], 3)


def test_partition_skips_forgotten_ids() -> None:
    from iau_cli.io.checkpoint import ForgottenIds

    config = digits_config()
    data = load_data(config.data)
    forgotten = ForgottenIds()
    forgotten.add(data.train.ids[:10])
    rows = partition_rows(data, config.train, forgotten)
    assert len(rows.learn) == len(data.train) - 10
    assert not np.isin(np.arange(10), rows.learn).any()
