"""Density-changing rules: GMP's cubic schedule (exact edge counts), GraNet, the Evolver with changing counts."""

import pytest
import torch
from torch import nn

import topo
from topo.errors import ParameterError
from topo.rules import GMP, GraNet, RuleContext, Schedule, cubic_density


def _dense_model(sizes=(20, 10, 5), seed=0):
    return topo.compile(topo.erdos_renyi(list(sizes), density=1.0, seed=seed), seed=seed, backend="csr")


def _data(n=64, n_in=20, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_in, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_schedule_progress_counts_updates():
    s = Schedule(total=6)  # updates after epochs 1..5
    assert [s.progress(e) for e in range(1, 6)] == [0.2, 0.4, 0.6, 0.8, 1.0]
    s = Schedule(every=100, stop_at=0.75, total=1000)  # steps 100..700
    assert s.last_position() == 700 and s.progress(350) == 0.5
    assert Schedule().progress(3) is None and Schedule(total=1).last_position() is None


def test_cubic_density_values():
    assert [round(cubic_density(p, 1.0, 0.1), 10) for p in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5)] == \
        [1.0, 0.5608, 0.2944, 0.1576, 0.1072, 0.1, 0.1]


def test_gmp_edge_counts_follow_the_cubic_schedule_exactly():
    # 20->10 (200 positions) and 10->5 (50), dense -> 10 %, 5 updates (progress 0.2 .. 1.0):
    # 200·d = 112.16, 58.88, 31.52, 21.44, 20 and 50·d = 28.04, 14.72, 7.88, 5.36, 5, rounded half up.
    model = _dense_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = _data()
    ev = topo.Evolver(model, GMP(final_density=0.1), optimizer=opt, schedule=Schedule(total=6), seed=0)
    counts = []
    for epoch in range(1, 6):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        w_before = [dict(zip((m.edge_index[1] * m.in_features + m.edge_index[0]).tolist(), m.weight.tolist()))
                    for m in model.sparse_layers]
        rows = ev.step(epoch=epoch)
        assert all(r["births"] == 0 for r in rows)
        counts.append([m.num_edges for m in model.sparse_layers])
        for m, before, _ in zip(model.sparse_layers, w_before, rows):
            # Survivors are the largest |w| and keep their values and momentum rows.
            keys = (m.edge_index[1] * m.in_features + m.edge_index[0]).tolist()
            assert [before[k] for k in keys] == m.weight.tolist()
            assert min(abs(before[k]) for k in keys) >= max(
                (abs(v) for k, v in before.items() if k not in set(keys)), default=0.0)
            assert opt.state[m.weight]["momentum_buffer"].shape == (m.num_edges,)
    assert counts == [[112, 28], [59, 15], [32, 8], [21, 5], [20, 5]]
    frame = ev.history_.frame()
    assert frame[frame.layer == 0].num_edges.tolist() == [200, 112, 59, 32, 21, 20]
    assert ev.history_.topology("last") == model.topology()
    # Training goes on at the new sizes.
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def test_gmp_end_and_initial_density():
    g = topo.erdos_renyi([20, 10], density=1.0, seed=0)[0]
    g = g.with_weight(torch.randn(200, generator=torch.Generator().manual_seed(0)))
    rule = GMP(final_density=0.1, initial_density=0.5, end=0.5)
    # p = 0.25 / 0.5 = 0.5: d = 0.1 + 0.4·0.125 = 0.15 -> 30 edges; after end: 20.
    assert rule(g, RuleContext(progress=0.25)).num_edges == 30
    assert rule(g, RuleContext(progress=0.75)).num_edges == 20
    with pytest.raises(ParameterError, match="progress"):
        rule(g, RuleContext())
    with pytest.raises(ParameterError, match="final_density"):
        GMP(final_density=0.6, initial_density=0.5)


def test_granet_prunes_to_budget_and_regrows_by_gradient_at_zero():
    g = topo.erdos_renyi([20, 10], density=0.5, seed=1)[0]
    g = g.with_weight(torch.randn(g.num_edges, generator=torch.Generator().manual_seed(1)))
    x = torch.randn(32, 20, generator=torch.Generator().manual_seed(2))
    dy = torch.randn(32, 10, generator=torch.Generator().manual_seed(3))
    rule = GraNet(final_density=0.1, initial_density=1.0, zeta=0.5)
    r = rule(g, RuleContext(gradients=(x, dy), progress=0.4))
    # Budget 59 (200·0.2944 = 58.88); swap round(0.5·59) = 30: deaths = 100 - 59 + 30 = 71, births 30.
    assert (r.num_edges, r.births.shape[1], r.deaths.shape[1]) == (59, 30, 71)
    order = torch.argsort(g.weight.abs(), stable=True)
    dead = set(g.keys()[order[:71]].tolist())
    assert set((r.deaths[1] * 20 + r.deaths[0]).tolist()) == dead
    score = (dy.T @ x).abs().reshape(-1)
    free = [k for k in torch.argsort(score, descending=True, stable=True).tolist()
            if k not in set(g.keys().tolist())]
    assert sorted((r.births[1] * 20 + r.births[0]).tolist()) == sorted(free[:30])
    born = set((r.births[1] * 20 + r.births[0]).tolist())
    assert all(w == 0.0 for k, w in zip(r.graph.keys().tolist(), r.graph.weight.tolist()) if k in born)
    assert GraNet.init == "zeros" and rule.needs == frozenset({"gradients"})


def test_granet_in_the_evolver_with_adam():
    model = _dense_model(seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = _data(seed=2)
    ev = topo.Evolver(model, GraNet(final_density=0.2, zeta=0.3), optimizer=opt,
                      schedule=Schedule(decay="cosine", total=4), seed=0, init="normal:0.5")
    for epoch in (1, 2, 3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        rows = ev.step(epoch=epoch, data=(x, y))
        for m in model.sparse_layers:
            assert opt.state[m.weight]["exp_avg"].shape == (m.num_edges,) == m.weight.shape
    # Last update (progress 1): the final density exactly.
    assert [m.num_edges for m in model.sparse_layers] == [40, 10]
    assert rows[0]["births"] > 0 and rows[0]["deaths"] > rows[0]["births"]
    assert ev.history_.topology("last") == model.topology()
