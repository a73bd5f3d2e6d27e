"""``topo.sparsify`` on users' models, and the Evolver on them (hooks-based collection, streamed scores)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import topo
from topo.errors import ParameterError
from topo.evolve.collect import StreamedScores, collect_scores
from topo.nn import SparseLinear
from topo.rules import CTRE, MagnitudePrune, RigL, RuleContext
from topo.rules.scores import cosine_scores, gradient_scores


class CNN(nn.Module):
    """A small CNN whose classifier head is two linear layers (the SET paper's CNN setting)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(4 * 4 * 4, 24), nn.ReLU(), nn.Dropout(0.2), nn.Linear(24, 5))

    def forward(self, x):
        return self.classifier(self.features(x.reshape(-1, 1, 8, 8)))


class Block(nn.Module):
    """A transformer-style MLP block: x + fc2(gelu(fc1(norm(x)))), on [batch, tokens, d] inputs."""

    def __init__(self, d=8, hidden=32):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)

    def forward(self, x):
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 64, generator=g), torch.randint(0, 5, (n,), generator=g)


def test_names_dtype_values_and_biases_are_kept():
    torch.manual_seed(0)
    net = CNN().double()
    dense = {n: (m.weight.detach().clone(), m.bias.detach().clone()) for n, m in net.named_modules()
             if isinstance(m, nn.Linear)}
    conv = net.features[0].weight.detach().clone()
    net.eval()
    t = topo.sparsify(net, epsilon=2, seed=0)
    assert [n for n, _ in topo.nn.sparse_layers(net)] == ["classifier.0", "classifier.3"]
    assert t.sizes == (64, 24, 5) and not net.training
    for (name, layer), g in zip(topo.nn.sparse_layers(net), t.layers):
        assert isinstance(layer, SparseLinear) and layer.weight.dtype == torch.float64
        assert layer.weight.device.type == "cpu" and not layer.training
        w, b = dense[name]
        want_edges = round(2 * (w.shape[0] + w.shape[1]))  # SET's epsilon: eps (n_in + n_out) edges
        assert layer.num_edges == g.num_edges == want_edges
        # every kept value is the dense one at that position, the bias is the dense bias
        assert torch.equal(layer.weight.detach(), w[layer.edge_index[1], layer.edge_index[0]])
        assert torch.equal(layer.bias.detach(), b) and torch.equal(g.weight, layer.weight.detach())
    assert torch.equal(net.features[0].weight, conv)  # the convolution is not touched
    # The sparse model computes the dense model with the other weights set to zero.
    x, _ = _data(6)
    x = x.double()
    feats = net.features(x.reshape(-1, 1, 8, 8))
    w0, w3 = (net.classifier[i].to_dense() for i in (0, 3))
    want = torch.relu(feats @ w0.T + net.classifier[0].bias) @ w3.T + net.classifier[3].bias
    torch.testing.assert_close(net(x), want.detach())


def test_same_seed_same_model_and_reinit():
    a, b = CNN(), CNN()
    b.load_state_dict(a.state_dict())
    ta, tb = topo.sparsify(a, density=0.2, seed=3), topo.sparsify(b, density=0.2, seed=3)
    assert ta == tb
    c = CNN()  # other dense values: re-initialised anyway
    tc = topo.sparsify(c, density=0.2, seed=3, init="xavier_uniform_dense")
    assert [g.keys().tolist() for g in tc.layers] == [g.keys().tolist() for g in ta.layers]  # same edges
    bound = (6 / (64 + 24)) ** 0.5  # Glorot with the dense fans of a 64 -> 24 layer
    w = tc.layers[0].weight
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound


def test_include_exclude_and_what_is_never_replaced():
    blk = Block()
    t = topo.sparsify(blk, density=0.25, seed=0)  # attn.out_proj is a Linear subclass read by MHA directly
    assert [n for n, _ in topo.nn.sparse_layers(blk)] == ["fc1", "fc2"] and t.sizes == (8, 32, 8)
    assert type(blk.attn.out_proj) is not SparseLinear
    x = torch.randn(3, 5, 8)
    assert blk(x).shape == (3, 5, 8)
    net = CNN()
    topo.sparsify(net, density=0.5, include="classifier.3", seed=0)
    assert isinstance(net.classifier[0], nn.Linear) and isinstance(net.classifier[3], SparseLinear)
    net = CNN()
    topo.sparsify(net, density=0.5, exclude=["classifier.3"], seed=0)
    assert isinstance(net.classifier[0], SparseLinear) and type(net.classifier[3]) is nn.Linear
    net = CNN()
    topo.sparsify(net, density=0.5, include=lambda name, m: m.out_features == 5, seed=0)
    assert isinstance(net.classifier[3], SparseLinear) and type(net.classifier[0]) is nn.Linear
    with pytest.raises(ParameterError, match="'clasifier.*' matches no nn.Linear.*classifier.0, classifier.3"):
        topo.sparsify(CNN(), density=0.5, include="clasifier.*")
    with pytest.raises(ParameterError, match="NonDynamicallyQuantizableLinear"):
        topo.sparsify(Block(), density=0.5, include="attn.*")
    with pytest.raises(ParameterError, match="exactly one of epsilon= or density="):
        topo.sparsify(CNN())
    two_heads = nn.ModuleDict({"a": nn.Linear(10, 4), "b": nn.Linear(6, 3)})
    with pytest.raises(ParameterError, match="do not chain.*'a' has out_features=4.*'b'.*in_features=6"):
        topo.sparsify(two_heads, density=0.5)
    assert type(two_heads["a"]) is nn.Linear  # nothing replaced on error
    topo.sparsify(two_heads, density=0.5, include="a")
    topo.sparsify(two_heads, density=0.5, include="b")
    ev = topo.Evolver(two_heads, "set", layers=["b"], seed=0)
    assert ev.layers == [two_heads["b"]]
    with pytest.raises(ParameterError, match="do not chain"):
        topo.Evolver(two_heads, "set")


def test_shared_module_is_replaced_everywhere():
    lin = nn.Linear(6, 6)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    topo.sparsify(net, density=0.5, seed=0)
    assert net[0] is net[2] and isinstance(net[0], SparseLinear)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.cuda
def test_device_is_kept_on_cuda():
    net = CNN().cuda()
    topo.sparsify(net, epsilon=2, seed=0)
    assert net.classifier[0].weight.device.type == "cuda" and net.classifier[0].edge_index.device.type == "cuda"
    assert net(torch.rand(4, 64, device="cuda")).shape == (4, 5)


def _hand_forward(net, x):
    """The sparsified CNN's head computed from dense copies: (head input, hidden, logits)."""
    feats = net.features(x.reshape(-1, 1, 8, 8)).detach()
    w0, w3 = net.classifier[0].to_dense(), net.classifier[3].to_dense()
    hidden = torch.relu(feats @ w0.T + net.classifier[0].bias.detach())
    return feats, hidden, hidden @ w3.T + net.classifier[3].bias.detach()


def test_cosine_rule_evolves_a_sparsified_cnn_from_its_own_activations():
    torch.manual_seed(0)
    net = CNN()
    topo.sparsify(net, epsilon=2, seed=0)
    x, _ = _data()
    feats, hidden, logits = _hand_forward(net, x)
    want = [CTRE(0.3, variant="sim")(layer.layer_graph(), RuleContext(generator=torch.Generator().manual_seed(9),
                                                                      activations=acts))
            for layer, acts in zip((net.classifier[0], net.classifier[3]),
                                   ((feats, hidden), (hidden, torch.softmax(logits, 1))))]
    ev = topo.Evolver(net, CTRE(0.3, variant="sim"), seed=9)
    ev.step(epoch=1, data=x)
    # Layer 0 is compared alone: layer 1's reference rewiring draws from the generator after layer 0's.
    got = ev.history_.changes(1)[0]
    assert torch.equal(got.births, want[0].births) and torch.equal(got.deaths, want[0].deaths)
    assert got.births.shape[1] > 0 and ev.history_.topology(1).num_edges == ev.history_.initial.num_edges


def test_gradient_rule_evolves_a_sparsified_cnn_by_the_dense_gradient():
    torch.manual_seed(0)
    net = CNN()
    topo.sparsify(net, epsilon=2, seed=0)
    x, y = _data()
    # Reference: autograd through a dense copy of the head's first layer.
    feats = net.features(x.reshape(-1, 1, 8, 8)).detach()
    w0 = net.classifier[0].to_dense().requires_grad_(True)
    w3 = net.classifier[3].to_dense()
    logits = torch.relu(feats @ w0.T + net.classifier[0].bias.detach()) @ w3.T + net.classifier[3].bias.detach()
    nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    g0 = net.classifier[0].layer_graph()
    n = MagnitudePrune(0.3, per_sign=False)(g0).numel()
    taken = torch.zeros(24, 64, dtype=torch.bool)
    taken[g0.dst, g0.src] = True
    want = torch.sort(torch.topk(w0.grad.abs().masked_fill(taken, -1).reshape(-1), n).indices).values
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    ev = topo.Evolver(net, RigL(0.3), optimizer=opt, seed=0)
    ev.step(epoch=1, data=(x, y))
    b = ev.history_.changes(1)[0].births
    assert (b[1] * 64 + b[0]).tolist() == want.tolist()
    assert all(p.grad is None for p in net.parameters())  # autograd.grad, not backward


def test_transformer_block_post_activations_follow_its_forward():
    torch.manual_seed(0)
    blk = Block()
    topo.sparsify(blk, density=0.3, seed=0)
    x = torch.randn(4, 5, 8)
    out = collect_scores(blk, [blk.fc1, blk.fc2], x, {"activations"}, max_samples=100,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = x + blk.attn(x, x, x, need_weights=False)[0]
        pre1 = blk.norm(h).reshape(-1, 8)
        z1 = blk.fc1(pre1)
        g = nn.functional.gelu(z1)
        z2 = blk.fc2(g)
    torch.testing.assert_close(out[0]["activations"][0], pre1)
    torch.testing.assert_close(out[0]["activations"][1], g)  # fc1's post: the GELU, fc2's input
    torch.testing.assert_close(out[1]["activations"][1], z2)  # fc2 feeds a residual sum: its raw output


def test_streamed_scores_equal_the_exact_ones():
    torch.manual_seed(0)
    net = CNN().double()
    topo.sparsify(net, epsilon=2, seed=0)
    x, y = _data(n=1500)  # more rows than one chunk of the stream
    layers = [net.classifier[0], net.classifier[3]]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    full = collect_scores(net, layers, (x, y), {"activations", "gradients"}, max_samples=10_000, generator=gen())
    streamed = collect_scores(net, layers, (x, y), {"activations", "gradients"}, max_samples=None,
                              generator=gen())
    for k, layer in enumerate(layers):
        assert isinstance(streamed[k]["activations"], topo.rules.scores.PairScores)
        dst, src = torch.meshgrid(torch.arange(layer.out_features), torch.arange(layer.in_features), indexing="ij")
        src, dst = src.reshape(-1), dst.reshape(-1)
        exact_cos = cosine_scores(*full[k]["activations"]).pairs(src, dst)
        exact_grad = gradient_scores(*full[k]["gradients"]).pairs(src, dst)
        torch.testing.assert_close(streamed[k]["activations"].pairs(src, dst), exact_cos, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(streamed[k]["gradients"].pairs(src, dst), exact_grad, rtol=1e-9, atol=1e-9)
        # and the rules rank the same non-edges from them
        g = layer.layer_graph()
        assert torch.equal(streamed[k]["activations"].top_nonedges(g, 30),
                           cosine_scores(*full[k]["activations"]).top_nonedges(g, 30))
    # Through the Evolver: max_samples=None uses every row, the same births as every row sampled.
    twin = copy.deepcopy(net)
    a = topo.Evolver(net, "cosine+cosine", seed=1, max_samples=None).step(epoch=1, data=(x, y))
    b = topo.Evolver(twin, "cosine+cosine", seed=1, max_samples=1500).step(epoch=1, data=(x, y))
    assert [r["births"] for r in a] == [r["births"] for r in b]
    assert topo.nn.topology_of(net) == topo.nn.topology_of(twin)


def test_streamed_scores_accumulator_and_bad_input():
    a, b = torch.randn(50, 3), torch.zeros(50, 2)
    acc = StreamedScores(3, 2)
    acc.add(a[:20], b[:20])
    acc.add(a[20:], b[20:])
    assert acc.rows == 50 and bool((acc.cosine().pairs(torch.tensor([0, 1]), torch.tensor([0, 1])) == 0).all())
    with pytest.raises(ParameterError, match="max_samples must be a positive int or None"):
        topo.Evolver(topo.compile(topo.erdos_renyi([4, 3], density=0.5, seed=0)), "set", max_samples=0)
