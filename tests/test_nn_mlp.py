"""topo.compile / SparseMLP against a hand-written dense forward pass; the auto rule; the bench CLI."""

import json

import numpy as np
import pytest
import torch

import topo
from topo.errors import ParameterError, ParameterTypeError
from topo.nn import SparseLinear, SparseMLP, choose_backend
from topo.nn.backends import CPU_BREAK_EVEN_DENSITY, CPU_TORCH_OPS_BREAK_EVEN_DENSITY, DENSE_MAX_CELLS


def _topology(seed=0):
    return topo.erdos_renyi([20, 32, 24, 5], density=0.3, seed=seed)


def _dense_forward(model, x, act):
    for k, layer in enumerate(model.layers):
        w = layer.to_dense() if isinstance(layer, SparseLinear) else layer.weight.detach()
        x = x @ w.t() + layer.bias.detach()
        if k < len(model.layers) - 1:
            x = act(x)
    return x


@pytest.mark.parametrize("backend", ["csr", "dense", "auto"])
@pytest.mark.parametrize("activation, fn", [("relu", torch.relu), ("tanh", torch.tanh),
                                             (torch.nn.Sigmoid(), torch.sigmoid)])
def test_compile_matches_dense_forward(backend, activation, fn):
    model = topo.compile(_topology(), activation=activation, backend=backend, seed=0)
    assert isinstance(model, SparseMLP) and len(model.sparse_layers) == 3
    assert all(isinstance(m, SparseLinear) for m in model.sparse_layers)
    x = torch.randn(6, 20)
    torch.testing.assert_close(model(x), _dense_forward(model, x, fn), rtol=1e-5, atol=1e-5)


def test_topology_round_trip_and_state_dict():
    t = _topology()
    model = topo.compile(t, seed=1)
    got = model.topology()
    assert got.sizes == t.sizes and got.fingerprint() == t.fingerprint() and got.weighted
    for layer, g in zip(model.sparse_layers, got.layers):
        assert torch.equal(layer.weight.detach(), g.weight)
    x = torch.randn(3, 20)
    again = topo.compile(got, seed=2)              # weighted topology: its weights are kept
    for a, b in zip(model.sparse_layers, again.sparse_layers):
        b.bias.data.copy_(a.bias.data)
    torch.testing.assert_close(again(x), model(x))
    other = topo.compile(_topology(seed=7), seed=3)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(x), model(x))
    assert other.topology() == model.topology()


def test_output_dense_dropout_and_rewire_guard():
    model = topo.compile(_topology(), dropout=0.5, output_dense=True, seed=0)
    assert len(model.sparse_layers) == 2 and isinstance(model.output_layer, torch.nn.Linear)
    t = model.topology()
    assert t.sizes == (20, 32, 24, 5) and t.layers[-1].num_edges == 24 * 5
    torch.testing.assert_close(t.layers[-1].to_dense(), model.output_layer.weight.detach())
    model.eval()
    x = torch.randn(4, 20)
    torch.testing.assert_close(model(x), _dense_forward(model, x, torch.relu), rtol=1e-5, atol=1e-5)
    model.train()
    h = torch.relu(model.sparse_layers[0](torch.ones(64, 20)))
    assert (model.dropouts[0](h) == 0).float().mean() > 0.3
    with pytest.raises(ParameterError, match="dense output layer cannot be rewired"):
        model.rewire(2, _topology().layers[2])


def test_model_rewire_keeps_training():
    t = _topology()
    model = topo.compile(t, backend="csr", seed=0, regrow_init="zeros")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(8, 20)).sum().backward()
    opt.step()
    new = topo.erdos_renyi([20, 32], density=0.3, seed=11).layers[0]
    before = model.sparse_layers[0].weight.detach().clone()
    m = model.rewire(0, new)
    topo.nn.remap_optimizer_state(opt, model.sparse_layers[0], m)
    keep = m >= 0
    assert torch.equal(model.sparse_layers[0].weight.detach()[m[keep]], before[keep])
    assert model.topology().layers[0].keys().equal(new.keys())
    model(torch.randn(8, 20)).sum().backward()
    opt.step()


def test_training_reduces_loss_and_seeds_repeat():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=g)
    y = (x[:, :5].sum(1) > 0).long() + 2 * (x[:, 5:10].sum(1) > 0).long()
    losses = []
    for _ in range(2):
        model = topo.compile(topo.erdos_renyi([20, 64, 4], epsilon=8, seed=0), backend="csr", seed=0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(60):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert losses[0] < 0.5 * torch.log(torch.tensor(4.0)).item()
    assert losses[0] == losses[1]


def test_forward_hooks_see_every_sparse_layer():
    model = topo.compile(_topology(), seed=0)
    seen = {}
    for k, layer in enumerate(model.sparse_layers):
        layer.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0].shape, o.shape)))
    model(torch.randn(3, 20))
    assert seen == {0: ((3, 20), (3, 32)), 1: ((3, 32), (3, 24)), 2: ((3, 24), (3, 5))}


def test_bad_arguments():
    with pytest.raises(ParameterError, match="'swish'"):
        topo.compile(_topology(), activation="swish")
    with pytest.raises(ParameterError, match="'fast'"):
        topo.compile(_topology(), backend="fast")
    with pytest.raises(ParameterError, match="dropout"):
        topo.compile(_topology(), dropout=1.5)
    with pytest.raises(ParameterError, match="layer_index 3"):
        topo.compile(_topology()).rewire(3, _topology().layers[0])
    with pytest.raises(ParameterTypeError, match="expected a Topology"):
        topo.compile([_topology().layers[0]])


def test_auto_rule():
    assert choose_backend(64, 100, 64 * 100) == "dense"
    assert choose_backend(1000, 1000, int(1e6 * CPU_BREAK_EVEN_DENSITY) + 1) == "dense"
    assert choose_backend(1000, 1000, int(1e6 * CPU_BREAK_EVEN_DENSITY) - 1) == "csr"
    assert choose_backend(DENSE_MAX_CELLS, 2, 2 * DENSE_MAX_CELLS) == "csr"   # full, but too large
    assert choose_backend(1000, 1000, 100_000, "cuda") == "dense"   # 10 %: above the CUDA break-even
    assert choose_backend(1000, 1000, 10_000, "cuda") == "csr"
    model = topo.compile(topo.erdos_renyi([64, 100, 10], density=[0.5, 0.01], seed=0))
    assert [m.active_backend for m in model.sparse_layers] == ["dense", "csr"]


def test_auto_rule_follows_the_cpu_kernels_switch():
    from topo.nn import kernels

    between = int(1e6 * (CPU_TORCH_OPS_BREAK_EVEN_DENSITY + CPU_BREAK_EVEN_DENSITY) / 2)
    previous = kernels.set_enabled(True)
    try:
        assert choose_backend(1000, 1000, between) == ("csr" if kernels.enabled() else "dense")
        kernels.set_enabled(False)          # torch's slower CSR ops: dense wins from a lower density
        assert choose_backend(1000, 1000, between) == "dense"
    finally:
        kernels.set_enabled(previous)


def test_bench_layers_cli(tmp_path, capsys):
    from topo.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "layers", "--sizes", "50:40", "--methods", "csr", "dense", "dense_x_mask",
                 "--repeat", "2", "--sgemm-n", "256", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["sgemm_gflops"] > 0 and [c["method"] for c in res["cases"]] == ["csr", "dense", "dense_x_mask"]
    assert all(c["edges"] == 20 * 90 for c in res["cases"])
    assert "ratios" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "layers", "--sizes", "0"])


def test_tune_cpu_allocator_in_a_fresh_process():
    import subprocess
    import sys

    code = ("import torch, topo; assert topo.nn.tune_cpu_allocator(); "
            "a = torch.zeros(20_000_000); del a; b = torch.ones(20_000_000); print(int(b.sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "20000000"


def test_dropout_matches_nn_dropout_semantics():
    from topo.nn import Dropout

    d = Dropout(0.3)
    x = torch.randn(400, 500, requires_grad=True)
    torch.manual_seed(0)
    y = d(x)
    keep = y != 0
    frac = keep.float().mean().item()
    assert abs(frac - 0.7) < 0.01                                  # Bernoulli(0.7) keep mask
    torch.testing.assert_close(y[keep], x.detach()[keep] / 0.7)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, keep.float() / 0.7)
    torch.manual_seed(0)
    assert torch.equal(d(x), y)                                    # global RNG: repeatable
    d.eval()
    assert torch.equal(d(x), x)
    assert isinstance(d, torch.nn.Dropout) and Dropout(0.0).train()(x) is x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_is_bernoulli_and_independent_of_layout(p):
    # topo's CPU Dropout hashes each element's row-major position with a per-call seed: the keep
    # fraction is 1 - p, neighbours are uncorrelated, and the same seed gives the same mask for a
    # contiguous input and a transposed view of the same values (the layout a SparseMLP's layers
    # pass), also in backward when the upstream gradient arrives in another layout.
    from topo.nn import Dropout

    d = Dropout(p)
    x = torch.randn(256, 300, dtype=torch.float64)
    torch.manual_seed(3)
    y = d(x)
    keep = (y != 0).numpy().ravel()
    n = keep.size
    assert abs(keep.mean() - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5
    lag1 = np.corrcoef(keep[:-1], keep[1:])[0, 1]
    assert abs(lag1) < 4 / n ** 0.5
    xt = x.t().contiguous().t().requires_grad_()                  # same values, transposed storage
    torch.manual_seed(3)
    yt = d(xt)
    assert torch.equal(yt, y)
    yt.backward(torch.ones(256, 300, dtype=torch.float64))       # a contiguous (row-major) gradient
    torch.testing.assert_close(xt.grad, (y != 0).double() / (1 - p))
    torch.manual_seed(4)
    assert not torch.equal(d(x) != 0, y != 0)                     # another seed, another mask


def test_dropout_of_half_precision_and_empty_inputs_keeps_torch_semantics():
    from topo.nn import Dropout

    torch.manual_seed(0)
    y = Dropout(0.5)(torch.ones(1000, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and sorted(set(y.float().tolist())) == [0.0, 2.0]
    assert Dropout(0.5)(torch.ones(0, 7)).shape == (0, 7)
