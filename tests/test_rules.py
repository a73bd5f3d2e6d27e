"""Prune/grow criteria and their compositions, on LayerGraphs, against brute-force references."""

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import topo
from topo import LayerGraph
from topo.errors import ParameterError, ParameterTypeError, TopologyError
from topo.rules import (
    CTRE,
    SET,
    CosineGrow,
    CosinePrune,
    GradientGrow,
    MagnitudePrune,
    RandomGrow,
    RandomPrune,
    RigL,
    Rule,
    RuleContext,
    Static,
    from_name,
)

COMBOS = ["set", "ctre-sim", "ctre-seq", "rigl", "static", "cosine+random", "magnitude+cosine", "cosine+cosine",
          "random+gradient", "magnitude-global+random", "random+random", "cosine+gradient"]


def _weighted(n_in, n_out, density, seed):
    g = topo.erdos_renyi([n_in, n_out], density=density, seed=seed)[0]
    return g.with_weight(torch.randn(g.num_edges, generator=torch.Generator().manual_seed(seed + 100)))


def _samples(n_in, n_out, seed, samples=16):
    gen = torch.Generator().manual_seed(seed)
    pre, post = torch.randn(samples, n_in, generator=gen).relu(), torch.randn(samples, n_out, generator=gen).relu()
    return pre, post, torch.randn(samples, n_in, generator=gen), torch.randn(samples, n_out, generator=gen)


def _context(n_in, n_out, seed):
    pre, post, x, dy = _samples(n_in, n_out, seed)
    return RuleContext(generator=torch.Generator().manual_seed(seed + 1), activations=(pre, post), gradients=(x, dy))


def _check_invariants(g, r):
    keys0, keys1 = set(g.keys().tolist()), set(r.graph.keys().tolist())
    born = set((r.births[1] * g.n_in + r.births[0]).tolist())
    dead = set((r.deaths[1] * g.n_in + r.deaths[0]).tolist())
    assert r.graph.num_edges == g.num_edges
    assert len(born) == r.births.shape[1] and len(dead) == r.deaths.shape[1] == r.births.shape[1]
    assert born.isdisjoint(keys0) and dead <= keys0 and born.isdisjoint(dead)
    assert keys1 == (keys0 - dead) | born
    # Survivors keep their weights; births weigh 0.
    w0 = dict(zip(g.keys().tolist(), g.weight.tolist()))
    for key, w in zip(r.graph.keys().tolist(), r.graph.weight.tolist()):
        assert w == (0.0 if key in born else w0[key])


@settings(max_examples=40, deadline=None)
@given(n_in=st.integers(1, 12), n_out=st.integers(1, 12), density=st.floats(0.05, 1.0),
       zeta=st.floats(0.0, 1.0), seed=st.integers(0, 2**16), name=st.sampled_from(COMBOS),
       mode=st.sampled_from(["exact", "pool-uniform", "pool", "approx"]))
def test_every_rule_keeps_count_and_never_duplicates(n_in, n_out, density, zeta, seed, name, mode):
    g = _weighted(n_in, n_out, density, seed)
    r = from_name(name, zeta, mode=mode)(g, _context(n_in, n_out, seed))
    _check_invariants(g, r)
    capacity = n_in * n_out - g.num_edges
    assert r.births.shape[1] <= capacity
    if name == "static" or capacity == 0:
        assert r.births.shape[1] == 0 and r.graph == g


def test_set_per_sign_on_a_hand_built_layer():
    # 6 non-negative weights (one exactly 0) and 4 negative ones.
    w = [0.9, -0.05, 0.0, 0.4, -0.7, 0.1, -0.2, 0.3, -1.5, 0.05]
    g = LayerGraph(10, 2, list(range(10)), [0] * 10, weight=w)  # room for 10 births on output 1
    # zeta = 0.5: positives 0.0 (2), 0.05 (9), 0.1 (5); negatives nearest zero -0.05 (1), -0.2 (6).
    # Most prunable first: by |w|, ties by position.
    assert MagnitudePrune(0.5)(g).tolist() == [2, 1, 9, 5, 6]
    r = SET(0.5)(g, 0)
    assert sorted(r.deaths[0].tolist()) == [1, 2, 5, 6, 9]
    # zeta = 0.3: round(1.8) = 2 positives (0.0, 0.05), round(1.2) = 1 negative (-0.05).
    assert sorted(MagnitudePrune(0.3)(g).tolist()) == [1, 2, 9]
    # Here the two modes disagree: the smallest |w| are all negative.
    w2 = [0.9, -0.05, 0.8, 0.4, -0.01, 0.7, -0.02, 0.3, -1.5, 0.6]
    g2 = g.with_weight(torch.tensor(w2))
    # per sign: positives 0.3 (7), 0.4 (3); negative nearest zero -0.01 (4) -- not the most negative -1.5 (8)
    assert sorted(MagnitudePrune(0.3)(g2).tolist()) == [3, 4, 7]
    # global |w|: round(3.0) = 3 smallest |w|: -0.01 (4), -0.02 (6), -0.05 (1)
    assert sorted(MagnitudePrune(0.3, per_sign=False)(g2).tolist()) == [1, 4, 6]


def _numpy_per_sign(w, zeta):
    """Independent reference for SET's per-sign rule (round half up, zeros on the positive side, ties by index)."""
    w = np.asarray(w)
    idx = np.arange(w.size)
    pos, neg = idx[w >= 0], idx[w < 0]
    n_pos, n_neg = math.floor(zeta * pos.size + 0.5), math.floor(zeta * neg.size + 0.5)
    drop_pos = pos[np.lexsort((pos, w[pos]))][:n_pos]
    drop_neg = neg[np.lexsort((neg, -w[neg]))][:n_neg]
    return set(drop_pos.tolist()) | set(drop_neg.tolist())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("zeta", [0.1, 0.25, 0.3, 0.5, 0.9])
def test_magnitude_prune_matches_numpy_reference(seed, zeta):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=301).round(2)  # rounding creates ties and zeros
    g = LayerGraph(301, 1, np.arange(301), np.zeros(301, dtype=np.int64), weight=torch.from_numpy(w))
    assert set(MagnitudePrune(zeta)(g).tolist()) == _numpy_per_sign(w, zeta)
    n = math.floor(zeta * 301 + 0.5)
    glob = np.lexsort((np.arange(301), np.abs(w)))[:n]
    assert MagnitudePrune(zeta, per_sign=False)(g).tolist() == glob.tolist()


def test_cosine_prune_drops_lowest_cosine_edges():
    g = _weighted(30, 20, 0.3, seed=1)
    ctx = _context(30, 20, seed=2)
    pre, post, _, _ = _samples(30, 20, seed=2)
    a = pre.double() / pre.double().norm(dim=0).clamp_min(1e-300)
    b = post.double() / post.double().norm(dim=0).clamp_min(1e-300)
    cos = (b.T @ a).abs()[g.dst, g.src].numpy()
    n = math.floor(0.3 * g.num_edges + 0.5)
    want = np.lexsort((np.arange(g.num_edges), cos))[:n]
    assert CosinePrune(0.3)(g, context=ctx).tolist() == want.tolist()


def test_random_prune_is_seeded_and_uniform_in_count():
    g = _weighted(40, 30, 0.2, seed=3)
    a = RandomPrune(0.3)(g, context=7)
    assert torch.equal(a, RandomPrune(0.3)(g, context=7))
    assert not torch.equal(a, RandomPrune(0.3)(g, context=8))
    assert a.numel() == math.floor(0.3 * g.num_edges + 0.5) and torch.unique(a).numel() == a.numel()


def _dense_cos(pre, post):
    a = pre.double() / pre.double().norm(dim=0).clamp_min(1e-300)
    b = post.double() / post.double().norm(dim=0).clamp_min(1e-300)
    return (b.T @ a).abs()


@pytest.mark.parametrize("grow,source", [(CosineGrow(), "activations"), (GradientGrow(), "gradients")])
def test_scored_growth_picks_the_true_topk_of_free_positions(grow, source):
    g = _weighted(25, 18, 0.25, seed=4)
    ctx = _context(25, 18, seed=5)
    rule = Rule(MagnitudePrune(0.3), grow)
    r = rule(g, ctx)
    _check_invariants(g, r)
    pre, post, x, dy = _samples(25, 18, seed=5)
    if source == "activations":
        score = _dense_cos(pre, post)
    else:
        score = (dy.double().T @ x.double()).abs()
    taken = torch.zeros(18, 25, dtype=torch.bool)
    taken[g.dst, g.src] = True  # every pre-step edge: survivors and the just-pruned ones
    s = score.masked_fill(taken, -1).reshape(-1)
    want = torch.sort(torch.topk(s, r.births.shape[1]).indices).values
    assert (r.births[1] * 25 + r.births[0]).tolist() == want.tolist()


def test_ctre_sim_replaces_reselected_pruned_edges_by_random_ones():
    g = _weighted(20, 15, 0.3, seed=6)
    # Activations that make pruned positions attractive: post = pre projected, so cosine likes many pairs.
    ctx = _context(20, 15, seed=7)
    r = CTRE(0.4, variant="sim")(g, ctx)
    _check_invariants(g, r)
    n = r.births.shape[1]
    dead = set((r.deaths[1] * 20 + r.deaths[0]).tolist())
    kept_keys = set(g.keys().tolist()) - dead
    score = _dense_cos(*_samples(20, 15, seed=7)[:2]).reshape(-1)
    mask = torch.zeros(300, dtype=torch.bool)
    mask[list(kept_keys)] = True
    ranked = torch.topk(score.masked_fill(mask, -1), n).indices.tolist()  # dead edges compete
    chosen_alive = [k for k in ranked if k not in dead]
    born = set((r.births[1] * 20 + r.births[0]).tolist())
    assert set(chosen_alive) <= born
    n_random = n - len(chosen_alive)
    assert n_random > 0  # the test is only meaningful if cosine re-selected some pruned edges
    assert len(born - set(chosen_alive)) == n_random


def test_ctre_seq_switches_to_random_after_patience():
    rule = CTRE(0.2, variant="seq", patience=3)
    assert rule.needs == {"activations"}
    for acc in [0.5, 0.6, 0.6, 0.59, 0.61]:  # improvements reset the counter
        rule.observe({"val_acc": acc})
    assert not rule.grow.switched and rule.grow.stalled == 0
    saved = rule.state_dict()
    for acc in [0.6, 0.61, 0.6]:
        rule.observe({"val_acc": acc})
    assert rule.grow.switched and rule.needs == frozenset()
    g = _weighted(20, 10, 0.3, seed=8)
    r = rule(g, 0)  # random growth: no activations needed any more
    _check_invariants(g, r)
    fresh = CTRE(0.2, variant="seq", patience=3)
    fresh.load_state_dict(saved)
    assert fresh.grow.best == 0.61 and not fresh.grow.switched
    rule.observe({"loss": 1.0})  # other metrics are ignored
    with pytest.raises(ParameterError, match="activations"):
        fresh(g, 0)


def test_same_seed_same_result_and_seeds_matter():
    g = _weighted(30, 30, 0.1, seed=9)
    for name in ["set", "ctre-sim", "random+gradient"]:
        for mode in ["exact", "pool-uniform", "pool", "approx"]:
            rule = from_name(name, mode=mode)
            a, b = rule(g, _context(30, 30, 1)), rule(g, _context(30, 30, 1))
            assert a.graph == b.graph and torch.equal(a.births, b.births)
    a, c = SET()(g, 1), SET()(g, 2)
    assert torch.equal(a.deaths, c.deaths) and not torch.equal(a.births, c.births)


def test_nearly_dense_layers_replace_only_what_can_regrow():
    keys = torch.arange(12)[torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]  # 10 of 12 positions
    g = LayerGraph.from_keys(4, 3, keys, weight=torch.arange(1.0, 11.0))
    r = SET(0.5)(g, 0)
    assert r.births.shape[1] == 2 and r.graph.num_edges == 10
    assert sorted((r.births[1] * 4 + r.births[0]).tolist()) == [10, 11]
    # the two most prunable (smallest positive weights 1.0, 2.0 -> keys 0, 1) are the ones that went
    assert sorted((r.deaths[1] * 4 + r.deaths[0]).tolist()) == [0, 1]
    dense = LayerGraph.from_keys(4, 3, torch.arange(12), weight=torch.ones(12))
    for rule in (SET(), RigL(), CTRE()):
        r = rule(dense, 0)
        assert r.births.shape[1] == 0 and r.graph == dense


def test_zeta_zero_and_one():
    g = _weighted(10, 10, 0.2, seed=10)
    assert SET(0.0)(g, 0).births.shape[1] == 0
    r = Rule(RandomPrune(1.0), RandomGrow())(g, 0)
    assert r.births.shape[1] == g.num_edges
    _check_invariants(g, r)
    assert SET(0.3)(g, 0, zeta=0.0).births.shape[1] == 0  # the call's zeta (a schedule's) wins


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), True, "0.3", None])
def test_bad_zeta_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="zeta must be a number in \\[0, 1\\]") as err:
        SET(bad) if bad is not None else MagnitudePrune(bad)
    assert repr(bad) in str(err.value)
    g = _weighted(5, 5, 0.5, seed=0)
    if bad is not None:
        with pytest.raises(ValueError, match="zeta"):
            SET()(g, 0, zeta=bad)


def test_from_name_knows_every_combination_and_rejects_unknown():
    for name in COMBOS + ["magnitude+gradient", "random+cosine"]:
        rule = from_name(name)
        assert rule.name == name
    assert from_name(" SET ").name == "set"
    assert from_name("ctre-sim").zeta == 0.2 and from_name("rigl", 0.5).zeta == 0.5
    assert isinstance(from_name("static"), Static)
    for bad in ["sett", "cosine+", "magnitude+hebbian", "+random", "", "ctre"]:
        with pytest.raises(ValueError, match=re.escape(f"unknown rule {bad!r}")):
            from_name(bad)
    with pytest.raises(ValueError, match="variant"):
        CTRE(variant="both")
    with pytest.raises(ValueError, match="patience"):
        CTRE(variant="seq", patience=0)
    with pytest.raises(ValueError, match="mode"):
        from_name("rigl", mode="fast")
    with pytest.raises(ValueError, match="pool_factor"):
        CosineGrow(pool_factor=0.5)


def test_missing_scores_and_weights_are_clear_errors():
    g = _weighted(8, 8, 0.3, seed=1)
    with pytest.raises(ParameterError, match="activations"):
        CTRE()(g, 0)
    with pytest.raises(ParameterError, match="gradient"):
        RigL()(g, 0)
    with pytest.raises(ParameterError, match="weighted"):
        SET()(g.with_weight(None), 0)
    r = Rule(RandomPrune(0.5), RandomGrow())(g.with_weight(None), 0)
    assert r.graph.weight is None and r.graph.num_edges == g.num_edges
    with pytest.raises(ParameterTypeError, match="LayerGraph"):
        SET()(topo.Topology([g]), 0)


def test_custom_criteria_plug_in_and_faulty_ones_are_caught():
    class DropFirstHalf(topo.rules.PruneCriterion):
        def select(self, graph, zeta, context):
            mask = torch.zeros(graph.num_edges, dtype=torch.bool)
            mask[: graph.num_edges // 2] = True
            return mask

    class RegrowTheDead(topo.rules.GrowCriterion):
        def select(self, graph, n, context, exclude):
            return exclude[:n]

    g = _weighted(10, 10, 0.3, seed=2)
    r = Rule(DropFirstHalf(), RandomGrow())(g, 0)
    _check_invariants(g, r)
    assert sorted(r.deaths[1] * 10 + r.deaths[0]) == sorted(g.keys()[: g.num_edges // 2])
    with pytest.raises(TopologyError, match="just-pruned"):
        Rule(DropFirstHalf(), RegrowTheDead())(g, 0)
