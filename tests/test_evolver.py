"""topo.Evolver end to end on compiled models: rewiring, optimizer state, History, scores, schedules, resume."""

import copy

import pytest
import torch
from torch import nn

import topo
from topo.errors import ParameterError, ParameterTypeError
from topo.rules import CTRE, SET, RigL, Rule, RuleContext, Schedule


def _model(sizes=(12, 20, 16, 5), epsilon=3, seed=0, **kw):
    return topo.compile(topo.erdos_renyi(list(sizes), epsilon=epsilon, seed=seed), seed=seed, backend="csr", **kw)


def _data(n=64, n_in=12, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_in, generator=g), torch.randint(0, classes, (n,), generator=g)


def _train(model, opt, x, y, steps=3):
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _keyed(layer, values):
    ei = layer.edge_index.cpu()
    return dict(zip((ei[1] * layer.in_features + ei[0]).tolist(), values.detach().cpu().tolist()))


def test_set_evolution_keeps_counts_and_history_matches_the_model():
    model = _model()
    before = model.topology()
    ev = topo.Evolver(model, SET(0.3), seed=0)
    for epoch in (1, 2, 3):
        rows = ev.step(epoch=epoch)
        now = model.topology()
        assert [g.num_edges for g in now.layers] == [g.num_edges for g in before.layers]
        assert all(r["births"] == r["deaths"] > 0 for r in rows)
        assert ev.history_.topology(epoch) == now  # structure and recorded weights
    assert ev.history_.epochs == [0.0, 1.0, 2.0, 3.0]
    assert ev.history_.topology(0) == before
    frame = ev.history_.frame()
    assert (frame[frame.epoch > 0].seconds > 0).all()


@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                                      lambda p: torch.optim.Adam(p, lr=0.01)])
def test_optimizer_state_of_survivors_survives_a_step(make_opt):
    model = _model()
    opt = make_opt(model.parameters())
    x, y = _data()
    _train(model, opt, x, y)
    layer = model.sparse_layers[1]
    key = "momentum_buffer" if "momentum_buffer" in opt.state[layer.weight] else "exp_avg"
    state_before = _keyed(layer, opt.state[layer.weight][key])
    weight_before = _keyed(layer, layer.weight)
    ev = topo.Evolver(model, SET(0.3), optimizer=opt, seed=1)
    ev.step(epoch=1)
    state_after = _keyed(layer, opt.state[layer.weight][key])
    weight_after = _keyed(layer, layer.weight)
    survivors = state_after.keys() & state_before.keys()
    births = state_after.keys() - state_before.keys()
    assert survivors and births and len(state_after) == len(state_before)
    assert all(state_after[k] == state_before[k] and weight_after[k] == weight_before[k] for k in survivors)
    assert all(state_after[k] == 0.0 for k in births)
    _train(model, opt, x, y, steps=1)  # the optimizer keeps working on the rewired parameter


def _run(seed, rule_name="set", steps=3):
    torch.manual_seed(123)  # the model's own init and the training batches
    model = _model(seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = _data(seed=7)
    ev = topo.Evolver(model, rule_name, optimizer=opt, seed=seed)
    for epoch in range(1, steps + 1):
        _train(model, opt, x, y, steps=2)
        ev.step(epoch=epoch, data=(x, y))
    return model.topology()


@pytest.mark.parametrize("rule_name", ["set", "ctre-sim", "rigl"])
def test_same_seed_same_run(rule_name):
    a, b = _run(0, rule_name), _run(0, rule_name)
    assert a == b
    if rule_name != "rigl":  # RigL draws nothing at random apart from births' initial values
        assert a.fingerprint() != _run(1, rule_name).fingerprint()


def test_cosine_growth_uses_the_activations_of_the_network():
    model = _model(sizes=(12, 20, 5), epsilon=2)
    x, _ = _data(n=50)
    g0 = model.sparse_layers[0].layer_graph()
    # Independent reference: the hidden post-activation computed densely by hand.
    w0 = model.sparse_layers[0].to_dense()
    hidden = torch.relu(x @ w0.T + model.sparse_layers[0].bias.detach())
    want = CTRE(0.3, variant="sim")(g0, RuleContext(generator=torch.Generator().manual_seed(4),
                                                   activations=(x, hidden)))
    ev = topo.Evolver(model, CTRE(0.3, variant="sim"), seed=4)
    ev.step(epoch=1, data=x)  # 50 rows <= max_samples: all used, no sampling draws
    got = ev.history_.changes(1)[0]
    assert torch.equal(got.births, want.births) and torch.equal(got.deaths, want.deaths)


def test_collected_activations_match_a_manual_forward():
    from topo.evolve.collect import collect_scores

    model = _model(sizes=(12, 20, 16, 5), epsilon=3, dropout=0.5)
    model.train()
    x, y = _data(n=40)
    out = collect_scores(model, list(model.sparse_layers), (x, y), {"activations"}, max_samples=4096,
                         generator=torch.Generator().manual_seed(0))
    h = x
    for k, layer in enumerate(model.sparse_layers):
        z = h @ layer.to_dense().T + layer.bias.detach()
        post = torch.softmax(z, 1) if k == 2 else torch.relu(z)
        pre_got, post_got = out[k]["activations"]
        torch.testing.assert_close(pre_got, h, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(post_got, post, rtol=1e-5, atol=1e-5)
        h = post
    assert model.training  # mode restored; eval mode meant no dropout above


def test_rigl_growth_is_the_top_dense_gradient_and_leaves_grads_alone():
    model = _model(sizes=(12, 20, 5), epsilon=2)
    x, y = _data(n=30)
    layer0, layer1 = model.sparse_layers
    g0 = layer0.layer_graph()
    # Reference: autograd through dense copies of both layers.
    w0 = layer0.to_dense().requires_grad_(True)
    w1 = layer1.to_dense()
    logits = torch.relu(x @ w0.T + layer0.bias.detach()) @ w1.T + layer1.bias.detach()
    nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    pruned = topo.rules.MagnitudePrune(0.3, per_sign=False)(g0)
    n = pruned.numel()
    taken = torch.zeros(20, 12, dtype=torch.bool)
    taken[g0.dst, g0.src] = True
    want = torch.sort(torch.topk(w0.grad.abs().masked_fill(taken, -1).reshape(-1), n).indices).values
    ev = topo.Evolver(model, RigL(0.3), seed=0)
    ev.step(epoch=1, data=(x, y))
    b = ev.history_.changes(1)[0].births
    assert (b[1] * 12 + b[0]).tolist() == want.tolist()
    assert all(p.grad is None for p in model.parameters())


def test_dense_layers_are_skipped_and_dense_outputs_recorded():
    model = _model(sizes=(40, 30, 5), epsilon=10)  # 30 -> 5 at eps 10 is dense, 40 -> 30 is not
    assert model.sparse_layers[1].density == 1.0
    rows = topo.Evolver(model, SET(), seed=0).step()
    assert rows[1]["skipped"] and rows[1]["births"] == 0 and not rows[0]["skipped"] and rows[0]["births"] > 0
    model = _model(sizes=(12, 20, 5), epsilon=3, output_dense=True)
    ev = topo.Evolver(model, SET(), seed=0)
    rows = ev.step(epoch=1)
    assert len(rows) == 2 and rows[1]["skipped"] and len(ev.history_.initial) == 2
    assert ev.history_.topology(1) == model.topology()


def test_user_model_with_sparse_layers_in_module_order():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(topo.nn.SparseLinear(12, 20, density=0.3, seed=0), nn.Tanh())
            self.head = topo.nn.SparseLinear(20, 5, density=0.4, seed=1)

        def forward(self, x):
            return self.head(self.body(x))

    net = Net()
    ev = topo.Evolver(net, "ctre-sim", seed=0, activation="tanh")
    x, y = _data(n=20)
    rows = ev.step(data=[(x[:10], y[:10]), (x[10:], y[10:])])
    assert [r["births"] for r in rows] == [round(0.2 * 72), round(0.2 * 40)]
    assert [g.num_edges for g in ev.history_.topology(1).layers] == [72, 40]
    assert ev.history_.epochs == [0.0, 1.0]  # default label: the schedule position


def test_schedule_decay_and_step_cadence():
    model = _model()
    ev = topo.Evolver(model, SET(0.4), schedule=Schedule(decay="linear", total=4), seed=0)
    n_edges = model.sparse_layers[0].num_edges
    counts = [ev.step(epoch=e)[0]["births"] for e in (1, 2, 3)]
    expected = [topo.rules.count_for(0.4 * (1 - e / 4), n_edges) for e in (1, 2, 3)]
    # per-sign rounding may differ from the global count by one per sign
    assert all(abs(c - w) <= 1 for c, w in zip(counts, expected)) and counts[0] > counts[1] > counts[2]
    assert ev.due(epoch=3) and not ev.due(epoch=4)  # every epoch but the last
    ev2 = topo.Evolver(_model(), "rigl", schedule=Schedule(decay="cosine", every=10, stop_at=0.5, total=100))
    assert [s for s in range(1, 101) if ev2.due(step=s)] == [10, 20, 30, 40]
    x, y = _data()
    rows = ev2.step(step=40, data=(x, y))
    assert rows[0]["zeta"] == pytest.approx(0.3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 0.8)).item()))


def test_ctre_seq_observes_metrics_through_step():
    model = _model()
    x, y = _data()
    ev = topo.Evolver(model, CTRE(0.2, variant="seq", patience=2), seed=0)
    ev.step(epoch=1, data=x, metrics={"val_acc": 0.5})
    ev.step(epoch=2, data=x, metrics={"val_acc": 0.4})
    assert ev.rule.needs == {"activations"}
    ev.step(epoch=3, data=x, metrics={"val_acc": 0.45})
    assert ev.rule.needs == frozenset()
    ev.step(epoch=4)  # random growth now: no data needed


def test_resume_from_state_dict_continues_identically(tmp_path):
    model = _model()
    x, _ = _data()
    ev = topo.Evolver(model, CTRE(0.2, variant="seq", patience=2), seed=3)
    ev.step(epoch=1, data=x, metrics={"val_acc": 0.5})
    saved_model, state = copy.deepcopy(model), copy.deepcopy(ev.state_dict())
    ev.history_.save(tmp_path / "h.npz")
    ev.step(epoch=2, data=x, metrics={"val_acc": 0.4})
    ev.step(epoch=3, data=x, metrics={"val_acc": 0.4})
    resumed = topo.Evolver(saved_model, CTRE(0.2, variant="seq", patience=2), seed=999)
    resumed.load_state_dict(state)
    resumed.history_ = topo.History.load(tmp_path / "h.npz")
    resumed.step(epoch=2, data=x, metrics={"val_acc": 0.4})
    resumed.step(epoch=3, data=x, metrics={"val_acc": 0.4})
    assert saved_model.topology() == model.topology()
    assert resumed.rule.grow.switched and ev.rule.grow.switched
    assert resumed.history_.topology(3) == ev.history_.topology(3)
    with pytest.raises(ParameterError, match="Evolver state"):
        resumed.load_state_dict({"updates": 1})


def test_bad_input_is_a_clear_error():
    model = _model()
    with pytest.raises(ValueError, match="unknown rule 'sett'"):
        topo.Evolver(model, "sett")
    with pytest.raises(ParameterError, match="no SparseLinear"):
        topo.Evolver(nn.Linear(3, 2), "set")
    with pytest.raises(ParameterError, match="max_samples"):
        topo.Evolver(model, "set", max_samples=0)
    with pytest.raises(ParameterTypeError, match="optimizer"):
        topo.Evolver(model, "set", optimizer="sgd")
    with pytest.raises(ParameterError, match="activation"):
        topo.Evolver(model, "set", activation="swish2")
    with pytest.raises(ParameterError, match="pass data"):
        topo.Evolver(model, "ctre-sim").step()
    with pytest.raises(ParameterError, match="targets"):
        topo.Evolver(model, "rigl").step(data=torch.randn(4, 12))
    with pytest.raises(ParameterTypeError, match="metrics"):
        topo.Evolver(model, "set").observe(0.9)
    with pytest.raises(ValueError, match="zeta"):
        topo.Evolver(model, Rule(topo.rules.MagnitudePrune(1.2), topo.rules.RandomGrow()))
    ev = topo.Evolver(model, "set", seed=0)
    ev.step(epoch=2)
    before = model.topology()
    with pytest.raises(ParameterError, match="epoch 1 must come after"):
        ev.step(epoch=1)
    assert model.topology() == before  # nothing was rewired
