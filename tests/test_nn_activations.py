"""AllReLU (Curci, Mocanu & Pechenizkiy 2021): values, gradients and its place in SparseMLP and the dense MLP."""

import pytest
import torch

import topo
from topo.cli.factory import dense_mlp
from topo.nn.activations import AllReLU, parse_allrelu


def test_allrelu_values_and_gradient_match_the_formula():
    x = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    for position, slope in ((0, -0.6), (1, 0.6), (2, -0.6)):
        f = AllReLU(0.6, position)
        y = f(x)
        expected = torch.where(x >= 0, x, slope * x)
        assert torch.equal(y, expected)
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g, torch.where(x >= 0, torch.ones_like(x), torch.full_like(x, slope)))


def test_parse_allrelu_and_bad_alpha():
    assert parse_allrelu("allrelu") == 0.6 and parse_allrelu("allrelu:0.75") == 0.75
    assert parse_allrelu("relu") is None
    with pytest.raises(ValueError, match="1.5"):
        parse_allrelu("allrelu:1.5")
    with pytest.raises(ValueError, match="x"):
        parse_allrelu("allrelu:x")


def test_sparse_mlp_alternates_the_slope_by_hidden_layer():
    t = topo.erdos_renyi([8, 16, 16, 16, 3], epsilon=4, seed=0)
    model = topo.compile(t, activation="allrelu:0.5", seed=0)
    assert [m.slope for m in model.activations] == [-0.5, 0.5, -0.5]
    x = torch.randn(5, 8)
    h = x
    for k, layer in enumerate(model.layers):
        h = layer(h)
        if k < 3:
            h = torch.where(h >= 0, h, h * (-0.5 if k % 2 == 0 else 0.5))
    assert torch.allclose(model.eval()(x), h, atol=1e-6)


def test_dense_mlp_takes_allrelu():
    m = dense_mlp([4, 8, 8, 2], activation="allrelu", seed=0)
    slopes = [mod.slope for mod in m if isinstance(mod, AllReLU)]
    assert slopes == [-0.6, 0.6]
