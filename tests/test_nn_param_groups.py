"""topo.nn.param_groups: density-scaled learning rates for sparse weights, in any optimizer and the Trainer."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import topo
from topo.errors import ParameterError


def _model():
    return topo.compile(topo.erdos_renyi([30, 40, 20, 5], epsilon=3, seed=0), seed=0)


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_group_rates_follow_each_layers_density(power):
    model = _model()
    groups = topo.nn.param_groups(model, lr=0.02, power=power)
    want = [0.02 * (layer.num_edges / (layer.in_features * layer.out_features)) ** -power
            for layer in model.sparse_layers]
    assert [g["lr"] for g in groups[:-1]] == pytest.approx(want, rel=1e-12)
    assert groups[-1]["lr"] == 0.02
    listed = [id(p) for g in groups for p in g["params"]]
    assert sorted(listed) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    assert all(g["params"][0] is layer.weight for g, layer in zip(groups, model.sparse_layers))


def test_sgd_step_moves_each_weight_by_its_layers_rate():
    model = _model()
    x = torch.randn(16, 30, generator=torch.Generator().manual_seed(1))
    model(x).square().sum().backward()
    before = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad.clone() for p in model.parameters()]
    opt = torch.optim.SGD(topo.nn.param_groups(model, lr=0.01, power=1.0), lr=0.01)
    opt.step()
    rates = {id(layer.weight): 0.01 * (layer.in_features * layer.out_features) / layer.num_edges
             for layer in model.sparse_layers}
    for p, b, g in zip(model.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), b - rates.get(id(p), 0.01) * g, rtol=1e-6, atol=1e-7)


def test_a_users_cnn_with_a_sparsified_head():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    topo.sparsify(net, density=0.1, include=["3"], seed=0)
    groups = topo.nn.param_groups(net, lr=0.1, power=0.5)
    assert len(groups) == 2  # the sparse head, then the conv, its bias and the dense layer
    head = net[3]
    assert groups[0]["lr"] == pytest.approx(0.1 * (head.num_edges / (144 * 64)) ** -0.5)
    assert len(groups[1]["params"]) == 5


@pytest.mark.parametrize("kw", [{"lr": 0.0}, {"lr": -1}, {"power": -0.5}, {"power": float("inf")},
                                {"power": True}])
def test_bad_values_are_named(kw):
    args = {"lr": 0.01, "power": 0.5, **kw}
    with pytest.raises(ParameterError, match="lr" if "lr" in kw else "power"):
        topo.nn.param_groups(_model(), **args)


def test_trainer_uses_groups_and_refuses_a_different_power_on_resume(tmp_path):
    X = torch.randn(64, 30, generator=torch.Generator().manual_seed(0))
    y = torch.arange(64) % 5

    def trainer(power, epochs=2, resume=False):
        model = _model()
        return topo.Trainer(model, lr=0.01, lr_density_power=power, epochs=epochs, batch_size=16,
                            out_dir=tmp_path / "run", resume=resume, progress=False,
                            evolver=topo.Evolver(model, topo.rules.SET(0.3), seed=0))

    t = trainer(0.5).fit((X, y))
    rates = [g["lr"] for g in t.optimizer_.param_groups]
    layers = t.model.sparse_layers
    assert rates[:3] == pytest.approx([0.01 * (la.num_edges / (la.in_features * la.out_features)) ** -0.5
                                       for la in layers])
    with pytest.raises(ParameterError, match="lr_density_power"):
        trainer(0.0, epochs=3, resume=True).fit((X, y))
    trainer(0.5, epochs=3, resume=True).fit((X, y))
    with pytest.raises(ParameterError, match="lr_density_power"):
        topo.Trainer(_model(), lr_density_power=-1.0, progress=False).fit((X, y))


def test_cli_records_the_rules_power(tmp_path):
    from topo.cli import main

    for rule, flag, want in (("set", [], 0.5), ("rigl", [], 0.0), ("set", ["--lr-density-power", "1"], 1.0)):
        out = tmp_path / f"{rule}{len(flag)}"
        assert main(["train", "--dataset", "digits", "--hidden", "20", "--epochs", "1", "--rule", rule,
                     "--quiet", "--out", str(out), *flag]) == 0
        assert json.loads((out / "config.json").read_text())["lr_density_power"] == want
    assert np.isfinite(float(np.loadtxt(tmp_path / "set0" / "metrics.csv", delimiter=",", skiprows=1,
                                        usecols=6)))
