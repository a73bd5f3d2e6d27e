"""topo.estimate_memory: exact where topo's allocations are exact, and close to a measured peak RSS."""

from __future__ import annotations

import os

import pytest
import torch

import topo
from topo.errors import TopoError
from topo.nn.memory import estimate_memory, format_bytes


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


CASES = [
    dict(sizes=[64, 100, 100, 10], epsilon=10),
    dict(sizes=[30, 50, 7], density=[0.2, 0.6]),
    dict(sizes=[30, 50, 7], epsilon=4, output_dense=True),
    dict(sizes=[30, 50, 7], epsilon=4, bias=False, dtype=torch.float64),
    dict(sizes=[5, 6, 4], density=1.0),
]


@pytest.mark.parametrize("case", CASES)
def test_parameters_gradients_and_optimizer_state_are_exact(case):
    case = dict(case)
    sizes, dtype = case.pop("sizes"), case.pop("dtype", torch.float32)
    output_dense, bias = case.pop("output_dense", False), case.pop("bias", True)
    topology = topo.erdos_renyi(sizes, seed=0, **case)
    model = topo.compile(topology, output_dense=output_dense, bias=bias, dtype=dtype, seed=0)
    for optimizer, make in (("sgd-momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
                            ("adam", lambda p: torch.optim.Adam(p, lr=0.1))):
        est = estimate_memory(sizes, batch=8, dtype=dtype, optimizer=optimizer, output_dense=output_dense,
                              bias=bias, **case)
        assert est.edges == [g.num_edges for g in model.topology().layers]  # a dense output layer is complete
        assert est.parameters == _bytes(model.parameters())
        opt = make(model.parameters())
        model(torch.randn(8, sizes[0], dtype=dtype)).sum().backward()
        opt.step()
        assert est.gradients == _bytes(p.grad for p in model.parameters())
        state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.dim()]
        assert est.optimizer_state == _bytes(state)
        model.zero_grad(set_to_none=True)


def test_indices_match_the_layers_buffers_and_csr_structures():
    sizes = [300, 500, 400, 10]
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=5, seed=0), backend="csr")
    model(torch.randn(4, sizes[0])).sum().backward()
    real = 0
    for layer in model.sparse_layers:
        st = layer.csr_structure()
        assert layer.edge_index.dtype == torch.int32         # 8 B per edge (issue 16: int32 where it fits)
        real += _bytes([layer.edge_index])
        real += _bytes(getattr(st, n) for n in type(st).__slots__
                       if isinstance(getattr(st, n, None), torch.Tensor) and n not in ("src", "dst"))
    assert estimate_memory(sizes, epsilon=5, backend="csr").indices == real


def test_components_scale_as_documented():
    small = estimate_memory([784, 1000, 1000, 10], epsilon=5, batch=64, backend="csr")
    big = estimate_memory([784, 1000, 1000, 10], epsilon=5, batch=128, backend="csr")
    assert big.activations > small.activations and big.parameters == small.parameters
    assert estimate_memory([784, 1000, 10], epsilon=5, optimizer="sgd").optimizer_state == 0
    no_evo = estimate_memory([784, 1000, 10], epsilon=5, evolve=False)
    assert no_evo.evolution == no_evo.history == 0
    dropout = estimate_memory([784, 1000, 10], epsilon=5, dropout=0.3)
    assert dropout.activations > estimate_memory([784, 1000, 10], epsilon=5).activations
    assert small.total == small.persistent + max(small.activations + small.workspace, small.evolution)
    text = str(small)
    assert "expected peak" in text and format_bytes(small.total) in text and "edges" in text
    assert small.as_dict()["total"] == small.total


def test_total_is_close_to_a_measured_peak_rss():
    """A 1M-edge SET-MLP trained a step and evolved once in a fresh process (topo.bench.scale)."""
    from topo.bench.scale import run_isolated

    r = run_isolated(100_000, epsilon=5, batch=32, steps=1, timeout=300)
    assert "error" not in r, r.get("error")
    assert r["est_parameters"] == r["parameters"]
    # The claim estimate_memory makes is the process's expected peak, runtime allowance included.
    # (Subtracting the measured import baseline instead mixes a measured baseline, which moves with
    # the environment — 233 MB alone, 297 MB under pytest -n 2 — with the estimate's fixed allowance.)
    measured, estimated = r["peak"], r["est_total"]
    # Stated accuracy: within a factor 1.5 either way (docs/benchmarks.md lists the errors per size).
    assert measured / 1.5 <= estimated <= measured * 1.5, (measured, estimated)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=[10, 5], epsilon=2, batch=0), "batch"),
    (dict(sizes=[10, 5], epsilon=2, optimizer="lbfgs"), "optimizer"),
    (dict(sizes=[10, 5], epsilon=2, dtype=torch.int32), "dtype"),
    (dict(sizes=[10, 5], epsilon=2, dropout=1.0), "dropout"),
    (dict(sizes=[10, 5], epsilon=2, density=0.5), "exactly one"),
    (dict(sizes=[10, 5]), "exactly one"),
    (dict(sizes=[10], epsilon=2), "sizes"),
    (dict(sizes=[10, 0], epsilon=2), "sizes"),
    (dict(sizes=[10, 5], epsilon=2, backend="gpu"), "backend"),
    (dict(sizes=[10, 5], epsilon=2, history_steps=-1), "history_steps"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(TopoError, match=match):
        estimate_memory(**kwargs)


def test_activation_checkpointing_gives_the_same_gradients_and_is_estimated_smaller():
    model = topo.compile(topo.erdos_renyi([20, 64, 64, 5], epsilon=4, seed=0), dropout=0.3, seed=0, backend="csr")
    X, y = torch.randn(16, 20, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 5
    grads = []
    for flag in (False, True):
        model.checkpoint_activations = flag
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout masks; checkpointing replays them in backward
        torch.nn.functional.cross_entropy(model(X), y).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    plain = estimate_memory([784, 2000, 2000, 10], epsilon=5, dropout=0.3)
    ckpt = estimate_memory([784, 2000, 2000, 10], epsilon=5, dropout=0.3, checkpoint=True)
    assert ckpt.activations < plain.activations and ckpt.parameters == plain.parameters


def test_history_weights_decide_the_weight_copies_the_history_keeps():
    sizes = [784, 1000, 1000, 10]
    est = {hw: estimate_memory(sizes, epsilon=5, history_steps=6, history_weights=hw)
           for hw in ("all", "none", "all:float16", "every:4")}
    e = est["all"].num_edges
    assert est["all"].history - est["none"].history == 6 * 4 * e       # six float32 copies of every weight
    assert est["all:float16"].history - est["none"].history == 6 * 2 * e
    assert est["every:4"].history - est["none"].history == 2 * 4 * e   # steps 4 and (the sixth, rounded up) 8
    assert est["none"].evolution == est["all"].evolution
    with pytest.raises(topo.errors.TopologyError, match="history weights"):
        estimate_memory(sizes, epsilon=5, history_weights="some")


def test_evolution_scratch_follows_a_measured_step():
    # The estimate of one SET step's peak (largest layer's scratch plus what scales with all edges)
    # against VmHWM around a real step of a 1M-edge layer: within a factor of two either way.
    status = "/proc/self/status"
    if not os.path.exists(status):
        pytest.skip("needs Linux /proc to read the process's peak RSS")
    lin = topo.nn.SparseLinear(100_000, 100_000, epsilon=5, seed=0)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(torch.randn(4, 100_000)).sum().backward()
    opt.step()
    ev = topo.Evolver(lin, topo.rules.SET(0.3), optimizer=opt, seed=1, history_weights="none")

    def kib(key):
        with open(status) as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) * 1024

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = kib("VmRSS")
    ev.step(epoch=1)
    peak = kib("VmHWM") - before
    est = estimate_memory([100_000, 100_000], epsilon=5, history_weights="none").evolution
    assert est / 2 < peak < est * 2, (peak, est)


def test_history_growth_per_update_matches_a_real_set_history():
    # What the estimate adds per recorded update (births + deaths of 0.3·E edges in int32 rows, plus
    # the weights it keeps) against the bytes a real History holds after SET updates.
    sizes = [300, 400, 10]
    model = topo.compile(topo.erdos_renyi(sizes, epsilon=5, seed=0), seed=0)
    for hw in ("none", "every:2"):
        ev = topo.Evolver(model, topo.rules.SET(0.3), seed=1, history_weights=hw)
        for epoch in (1, 2, 3, 4):
            ev.step(epoch=epoch)
        held = ev.history_.recorded_nbytes
        per_step = [estimate_memory(sizes, epsilon=5, history_steps=n, history_weights=hw).history for n in (0, 4)]
        assert abs((per_step[1] - per_step[0]) - held) < 0.05 * held, (hw, held, per_step)
    # Held narrow, handed out as int64 LayerChanges of the right edges: births new, deaths alive before.
    change, before = ev.history_.changes(4)[0], ev.history_.topology(3)[0]
    assert change.births.dtype == change.deaths.dtype == torch.int64 and change.births.shape[1] > 0
    alive = set(before.keys().tolist())
    assert all(int(d) * 300 + int(s) not in alive for s, d in change.births.t())
    assert all(int(d) * 300 + int(s) in alive for s, d in change.deaths.t())
