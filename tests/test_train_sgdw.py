"""SGDW: SGD with SET's decoupled weight decay, against SET's update written out in numpy."""

import numpy as np
import pytest
import torch

import topo
from topo.errors import ParameterError
from topo.train import SGDW


def _set_reference(w0, grads, lr, momentum, wd):
    """SET's set_mlp_sequential update: pdw = m*pdw - lr*dw; w += pdw - wd*w (float64)."""
    w, pdw = w0.astype(np.float64).copy(), np.zeros_like(w0, dtype=np.float64)
    for g in grads:
        pdw = momentum * pdw - lr * g
        w = w + pdw - wd * w
    return w


def test_sgdw_matches_set_update_over_steps():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=50)
    grads = [rng.normal(size=50) for _ in range(20)]
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = SGDW([w], lr=0.01, momentum=0.9, weight_decay=2e-4)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), _set_reference(w0, grads, 0.01, 0.9, 2e-4), rtol=1e-12)
    # torch's L2 penalty at the same numbers is a different update (decay scaled by lr, inside momentum)
    w2 = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt2 = torch.optim.SGD([w2], lr=0.01, momentum=0.9, weight_decay=2e-4)
    for g in grads:
        w2.grad = torch.tensor(g)
        opt2.step()
    assert np.abs(w2.detach().numpy() - w.detach().numpy()).max() > 1e-4


def test_sgdw_closure_gradient_before_decay_and_groups():
    a = torch.nn.Parameter(torch.tensor([2.0]))
    b = torch.nn.Parameter(torch.tensor([2.0]))
    opt = SGDW([{"params": [a]}, {"params": [b], "decoupled_weight_decay": 0.5}], lr=0.1, weight_decay=0.25)

    def closure():
        opt.zero_grad()
        loss = (a ** 2).sum() + (b ** 2).sum()  # gradient 2·w at the undecayed w = 4
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == pytest.approx(8.0)
    assert a.item() == pytest.approx(2.0 * 0.75 - 0.4)
    assert b.item() == pytest.approx(2.0 * 0.5 - 0.4)
    c = torch.nn.Parameter(torch.tensor([1.0]))
    opt.add_param_group({"params": [c]})
    assert opt.param_groups[-1]["decoupled_weight_decay"] == 0.25


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), True, "0.1"])
def test_sgdw_rejects_bad_decay(bad):
    with pytest.raises(ParameterError, match="weight_decay"):
        SGDW([torch.nn.Parameter(torch.zeros(2))], weight_decay=bad)


def test_sgdw_in_trainer_with_evolution_and_resume(tmp_path):
    """The Trainer's "sgdw": momentum carried across SET rewires, bit-identical resume."""
    x, y = torch.randn(96, 12, generator=torch.Generator().manual_seed(0)), torch.arange(96) % 3

    def run(out, epochs, resume=False):
        model = topo.compile(topo.erdos_renyi([12, 16, 3], epsilon=2, seed=0), seed=0)
        ev = topo.Evolver(model, topo.rules.SET(0.3), seed=0)
        t = topo.Trainer(model, optimizer="sgdw", lr=0.05, weight_decay=1e-3, evolver=ev, epochs=epochs,
                         batch_size=32, seed=0, out_dir=out, resume=resume, progress=False)
        t.fit((x, y))
        return t, model

    t, full = run(tmp_path / "full", 4)
    assert isinstance(t.optimizer_, SGDW)
    assert t.optimizer_.state  # momentum buffers exist and survived three rewires
    run(tmp_path / "part", 2)
    _, resumed = run(tmp_path / "part", 4, resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
