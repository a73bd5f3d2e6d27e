"""Reference-exact options (regrowth of just-pruned edges, CTRE's global |w|) and the explicit edge budget."""

import pytest
import torch
from torch import nn

import topo
from topo import LayerGraph
from topo.errors import ParameterError
from topo.rules import CTRE, SET, MagnitudePrune, RandomGrow, RandomPrune, RigL, Rule, RuleContext, from_name


def _keys(e, n_in):
    return sorted((e[1] * n_in + e[0]).tolist())


def _one_edge(seed):
    g = LayerGraph(2, 1, [0], [0], weight=[0.5])
    return SET(1.0, allow_regrow_pruned=True)(g, seed), SET(1.0)(g, seed)


def test_regrowth_of_a_just_pruned_edge_is_allowed_only_when_asked():
    # One edge in a 2->1 layer, ζ = 1: without the option the edge must move to the other position;
    # with it, SET's uniform regrowth over every non-kept position picks either one.
    back = 0
    for seed in range(200):
        allowed, default = _one_edge(seed)
        assert default.graph.keys().tolist() == [1] and default.reborn.shape[1] == 0
        assert allowed.births.shape[1] == allowed.deaths.shape[1] == 1
        if allowed.graph.keys().tolist() == [0]:
            back += 1
            assert allowed.reborn.tolist() == [[0], [0]] and allowed.graph.weight.tolist() == [0.0]
    assert 70 <= back <= 130  # Binomial(200, 1/2): 5 sigma


def test_dense_layer_regrows_exactly_what_it_pruned():
    g = topo.erdos_renyi([4, 3], density=1.0, seed=0)[0]
    w = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.9, -1.0, 1.1, -1.2])
    g = g.with_weight(w)
    assert SET(0.5)(g, 0).births.shape[1] == 0  # no free position: left as is
    r = SET(0.5, allow_regrow_pruned="reinit")(g, 0)
    # Per sign: the 3 smallest positives (0.1, 0.3, 0.5) and the 3 negatives closest to 0 (-0.2, -0.4, -0.6).
    assert _keys(r.deaths, 4) == _keys(r.births, 4) == _keys(r.reborn, 4) == [0, 1, 2, 3, 4, 5]
    assert r.graph.weight.tolist() == [0.0] * 6 + w[6:].tolist()
    kept = SET(0.5, allow_regrow_pruned="keep")(g, 0)
    assert kept.births.shape[1] == kept.deaths.shape[1] == 0
    assert kept.graph == g  # RigL's code: a re-selected edge keeps its value


def test_keep_mode_records_only_true_changes():
    g = LayerGraph(3, 1, [0, 1], [0, 0], weight=[0.1, 0.9])
    seen = set()
    for seed in range(60):
        r = Rule(MagnitudePrune(0.5, per_sign=False), RandomGrow(), allow_regrow_pruned="keep")(g, seed)
        # Edge 0 (|w| = 0.1) is pruned; growth picks position 0 (it stays, weight 0.1) or 2 (a birth).
        if r.graph.keys().tolist() == [0, 1]:
            assert r.births.shape[1] == r.deaths.shape[1] == 0 and torch.equal(r.graph.weight, g.weight)
        else:
            assert r.graph.keys().tolist() == [1, 2] and r.graph.weight.tolist() == [g.weight[1].item(), 0.0]
            assert _keys(r.deaths, 3) == [0] and _keys(r.births, 3) == [2]
        seen.add(tuple(r.graph.keys().tolist()))
    assert seen == {(0, 1), (1, 2)}


def test_ctre_global_pruning_ranks_abs_w_over_the_layer():
    g = LayerGraph(5, 2, [0, 1, 2, 3, 4], [0] * 5, weight=[0.1, 0.2, 0.3, -0.9, -0.8])
    ctx = RuleContext(activations=(torch.rand(8, 5, generator=torch.Generator().manual_seed(0)),
                                   torch.rand(8, 2, generator=torch.Generator().manual_seed(1))))
    per_sign = CTRE(0.4, variant="seq")(g, ctx)
    ctx.activations = ctx.activations  # reuse the scores
    global_ = CTRE(0.4, variant="seq", per_sign=False)(g, ctx)
    assert _keys(per_sign.deaths, 5) == [0, 4]   # one of 3 positives, one of 2 negatives
    assert _keys(global_.deaths, 5) == [0, 1]    # the two smallest |w|
    assert repr(CTRE(per_sign=False)) == "CTRE(zeta=0.2, variant='sim', per_sign=False)"
    with pytest.raises(ParameterError, match="variant='seq'"):
        CTRE(variant="sim", allow_regrow_pruned=True)


def test_from_name_passes_the_option_and_refuses_bad_values():
    assert from_name("set", allow_regrow_pruned=True).allow_regrow_pruned == "reinit"
    assert from_name("rigl", allow_regrow_pruned="keep").allow_regrow_pruned == "keep"
    assert from_name("magnitude+random", allow_regrow_pruned=True).allow_regrow_pruned == "reinit"
    assert SET().allow_regrow_pruned is False
    with pytest.raises(ParameterError, match="allow_regrow_pruned"):
        SET(allow_regrow_pruned="sometimes")


@pytest.mark.parametrize("budget,births,deaths", [(40, 12, 32), (60, 18, 18), (75, 33, 18), (0, 0, 60)])
def test_budget_sets_the_edge_count_exactly(budget, births, deaths):
    g = topo.erdos_renyi([20, 10], density=0.3, seed=0)[0]
    g = g.with_weight(torch.randn(g.num_edges, generator=torch.Generator().manual_seed(0)))
    r = Rule(MagnitudePrune(0.3, per_sign=False), RandomGrow())(g, 0, budget=budget)
    assert (r.num_edges, r.births.shape[1], r.deaths.shape[1]) == (budget, births, deaths)
    # Deaths are the smallest |w| of the layer; survivors keep their weights, births weigh 0.
    order = torch.argsort(g.weight.abs(), stable=True)[:deaths]
    assert _keys(r.deaths, 20) == sorted(g.keys()[order].tolist())
    w0 = dict(zip(g.keys().tolist(), g.weight.tolist()))
    born = set(_keys(r.births, 20))
    assert all(w == (0.0 if k in born else w0[k]) for k, w in zip(r.graph.keys().tolist(), r.graph.weight.tolist()))
    with pytest.raises(ParameterError, match="edge budget"):
        SET()(g, 0, budget=201)


def test_per_sign_count_split_is_exact():
    g = LayerGraph(6, 1, list(range(6)), [0] * 6, weight=[0.1, 0.2, 0.3, 0.4, -0.5, -0.6])
    drop = MagnitudePrune(0.3, per_sign=True)(g, count=3)
    # 4 positives, 2 negatives: round(3·4/6) = 2 positives (0.1, 0.2), 1 negative (-0.5).
    assert sorted(drop.tolist()) == [0, 1, 4]
    assert RandomPrune(0.3)(g, count=5, context=0).numel() == 5
    with pytest.raises(ParameterError, match="count"):
        MagnitudePrune()(g, count=7)


def _reinit_setup(mode):
    lin = topo.nn.SparseLinear(4, 3, density=1.0, seed=0, backend="csr")
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    lin(x).pow(2).sum().backward()
    opt.step()
    w0 = lin.weight.detach().clone()
    m0 = opt.state[lin.weight]["momentum_buffer"].clone()
    ev = topo.Evolver(nn.Sequential(lin), SET(0.5, allow_regrow_pruned=mode), optimizer=opt, seed=0,
                      init="zeros")
    return lin, opt, ev, w0, m0


def test_evolver_reinitialises_reborn_edges_and_zeroes_their_state():
    lin, opt, ev, w0, m0 = _reinit_setup("reinit")
    rows = ev.step(epoch=1)
    n = rows[0]["births"]
    assert n == rows[0]["deaths"] > 0 and not rows[0]["skipped"]
    w, m = lin.weight.detach(), opt.state[lin.weight]["momentum_buffer"]
    # Same edges as before (the layer is dense); the 6 pruned ones restart at 0 with zero momentum.
    pruned = torch.zeros(12, dtype=torch.bool)
    pruned[torch.tensor(_keys(ev.history_.changes(1)[0].deaths, 4))] = True
    ei = lin.edge_index
    order = torch.argsort(ei[1] * 4 + ei[0])
    assert int(pruned.sum()) == n and _keys(ev.history_.changes(1)[0].births, 4) == _keys(
        ev.history_.changes(1)[0].deaths, 4)
    assert torch.equal(w[order][pruned], torch.zeros(n)) and torch.equal(m[order][pruned], torch.zeros(n))
    assert bool((w0[order][pruned] != 0).all()) and bool((m0[order][pruned] != 0).all())
    assert torch.equal(w[order][~pruned], w0[order][~pruned]) and torch.equal(m[order][~pruned], m0[order][~pruned])


def test_evolver_keep_mode_leaves_a_dense_layer_untouched():
    lin, opt, ev, w0, m0 = _reinit_setup("keep")
    rows = ev.step(epoch=1)
    assert rows[0]["births"] == rows[0]["deaths"] == 0 and rows[0]["skipped"]
    assert torch.equal(lin.weight.detach(), w0) and torch.equal(opt.state[lin.weight]["momentum_buffer"], m0)


def test_rigl_keep_mode_matches_its_default_when_nothing_is_regrown():
    # With free positions of higher gradient than every pruned edge, both variants grow the same edges.
    g = topo.erdos_renyi([6, 4], density=0.5, seed=3)[0]
    g = g.with_weight(torch.randn(g.num_edges, generator=torch.Generator().manual_seed(3)))
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(4))
    dy = torch.randn(16, 4, generator=torch.Generator().manual_seed(5))
    a = RigL(0.25)(g, RuleContext(gradients=(x, dy)))
    b = RigL(0.25, allow_regrow_pruned="keep")(g, RuleContext(gradients=(x, dy)))
    # Exact check against brute force: b grows the top |dL/dW| among the non-kept positions.
    score = (dy.T @ x).abs().reshape(-1)
    kept = set(g.keys().tolist()) - set(_keys(a.deaths, 6))
    cand = [k for k in torch.argsort(score, descending=True, stable=True).tolist() if k not in kept]
    n = a.deaths.shape[1]
    assert sorted(b.graph.keys().tolist()) == sorted(kept | set(cand[:n]))
    assert set(_keys(a.births, 6)) == set([k for k in cand if k not in set(_keys(a.deaths, 6))][:n])
