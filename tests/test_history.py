"""History: recording, replay and edge lifetimes against a brute-force set replay; persistence; bad input."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import topo
from topo import History, LayerChange, ParameterError, ParameterTypeError, TopoError, TopologyError, TopologyFormatError


def edge_index(pairs):
    pairs = sorted(pairs)
    return torch.tensor([[s for s, _ in pairs], [d for _, d in pairs]], dtype=torch.int64).reshape(2, -1)


def random_history(seed, sizes=(6, 5, 4), steps=6, with_weights=True, rebirth_same_step=True):
    """A random evolution plus its brute-force reference: per epoch the alive edge sets, and per
    layer every life of every edge as (src, dst, start, end)."""
    rng = np.random.default_rng(seed)
    t0 = topo.erdos_renyi(list(sizes), density=0.4, seed=seed)
    h = History(t0, meta={"seed": seed})
    alive = [set(zip(g.src.tolist(), g.dst.tolist())) for g in t0]
    born = [{e: 0.0 for e in a} for a in alive]
    lives = [[] for _ in alive]
    states = {0.0: [set(a) for a in alive]}
    weights = {}
    epoch = 0.0
    for _ in range(steps):
        epoch += float(rng.choice([1.0, 0.5, 2.0]))
        changes = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            live = sorted(alive[k])
            dead_now = [live[i] for i in rng.permutation(len(live))[: rng.integers(0, len(live) + 1)]]
            empty = sorted({(s, d) for s in range(a) for d in range(b)} - alive[k])
            pool = empty + (dead_now if rebirth_same_step else [])
            births = [pool[i] for i in rng.permutation(len(pool))[: rng.integers(0, len(pool) + 1)]]
            for e in dead_now:
                lives[k].append((e[0], e[1], born[k].pop(e), epoch))
                alive[k].discard(e)
            for e in births:
                alive[k].add(e)
                born[k][e] = epoch
            changes.append(LayerChange(births=edge_index(births), deaths=edge_index(dead_now),
                                       seconds=float(rng.random())))
        w = None
        if with_weights and rng.random() < 0.7:
            w = [torch.randn(len(alive[k]), generator=torch.Generator().manual_seed(int(epoch * 10) + k))
                 for k in range(len(alive))]
            weights[epoch] = w
        h.record(epoch, changes, weights=w)
        states[epoch] = [set(x) for x in alive]
    for k in range(len(alive)):
        lives[k] += [(s, d, start, math.inf) for (s, d), start in born[k].items()]
        lives[k].sort(key=lambda r: (r[1], r[0], r[2]))
    return h, states, weights, lives


def reference_topology(sizes, state, w=None):
    edges = []
    for a in state:
        pairs = sorted(a, key=lambda e: (e[1], e[0]))
        item = ([s for s, _ in pairs], [d for _, d in pairs])
        edges.append(item)
    t = topo.from_edges(sizes, edges)
    return t if w is None else t.with_weights(w)


def check_against_reference(h, states, weights, lives, sizes=(6, 5, 4)):
    assert h.epochs == sorted(states) and len(h) == len(states)
    initial = h.topology(0)
    for e, state in states.items():
        expected = reference_topology(sizes, state, weights.get(e))
        got = h.topology(e)
        assert got.with_weights([None] * len(got)) == expected.with_weights([None] * len(expected))
        if e != 0.0:
            assert got == expected and got.weighted == (e in weights)
        else:
            assert got == initial
    replay = list(h)
    assert [e for e, _ in replay] == h.epochs
    for (e, t) in replay:
        assert t == h.topology(e)
    for k in range(len(sizes) - 1):
        iv = h.edge_intervals(k)
        got = list(zip(iv["src"].tolist(), iv["dst"].tolist(), iv["start"].tolist(), iv["end"].tolist()))
        assert got == lives[k]
    f = h.frame()
    assert list(f.columns) == ["epoch", "layer", "births", "deaths", "num_edges", "seconds", "step"]
    for e, state in states.items():
        for k, a in enumerate(state):
            row = f[(f.epoch == e) & (f.layer == k)]
            assert len(row) == 1 and int(row.num_edges.iloc[0]) == len(a)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replay_matches_brute_force(seed):
    h, states, weights, lives = random_history(seed)
    check_against_reference(h, states, weights, lives)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**20), steps=st.integers(0, 5), with_weights=st.booleans(),
       rebirth=st.booleans())
def test_replay_property(seed, steps, with_weights, rebirth):
    h, states, weights, lives = random_history(seed, steps=steps, with_weights=with_weights,
                                               rebirth_same_step=rebirth)
    check_against_reference(h, states, weights, lives)


def test_documented_example_and_accessors():
    t0 = topo.from_edges([2, 2], [([0, 1], [0, 1])])
    h = History(t0)
    births, deaths = torch.tensor([[1], [0]]), torch.tensor([[0], [0]])
    h.record(1, [LayerChange(births=births, deaths=deaths, seconds=0.25)], weights=[torch.tensor([3.0, 4.0])])
    h.record(3, [LayerChange()])
    assert h.epochs == [0.0, 1.0, 3.0] and h.num_layers == 1
    assert h.topology(1)[0].src.tolist() == [1, 1] and h.topology(1)[0].weight.tolist() == [3.0, 4.0]
    assert h.topology(3) == h.topology(-1) == h.topology("last") == h.topology(None) == h.final
    assert not h.final.weighted
    assert h.topology(-2) == h.topology(1) and h.topology("1") == h.topology(1)
    assert h.topology(-3) == t0
    assert h.resolve_epoch("last") == 3.0 and h.resolve_epoch(-1) == 3.0 and h.resolve_epoch(1) == 1.0
    c = h.changes(1)[0]
    assert c.births.tolist() == [[1], [0]] and c.deaths.tolist() == [[0], [0]] and c.seconds == 0.25
    f = h.frame()
    assert f.births.tolist() == [2, 1, 0] and f.deaths.tolist() == [0, 1, 0]
    assert f.num_edges.tolist() == [2, 2, 2] and f.seconds.tolist() == [0.0, 0.25, 0.0]
    assert "epochs=0..3, 3 in all" in repr(h)


@pytest.mark.parametrize("epoch, match", [(2, r"epoch 2 is not in this history \(epochs 0..3"),
                                          (-4, "epoch -4 is not in this history"),
                                          ("soon", "epoch 'soon' is neither a number nor 'last'"),
                                          (0.5, "epoch 0.5 is not in this history")])
def test_unknown_epochs(epoch, match):
    h = History(topo.from_edges([2, 2], [([0], [0])]))
    h.record(1, [LayerChange()])
    h.record(3, [LayerChange()])
    with pytest.raises(TopoError, match=match):
        h.topology(epoch)


def test_returned_topologies_do_not_alias_the_record():
    h = History(topo.from_edges([2, 2], [([0], [0])]))
    w = torch.tensor([1.0, 2.0])
    births = torch.tensor([[1], [1]])
    h.record(1, [LayerChange(births=births)], weights=[w])
    w += 10         # the caller keeps training its live parameter
    births[0, 0] = 0
    assert h.topology(1)[0].weight.tolist() == [1.0, 2.0]
    assert h.changes(1)[0].births.tolist() == [[1], [1]]
    t = h.topology(1)
    t[0].weight[0] = 99.0
    assert h.topology(1)[0].weight.tolist() == [1.0, 2.0]
    for _, t in h:
        t[0].src[0] = 1
    assert h.topology(0)[0].src.tolist() == [0] and h.initial[0].src.tolist() == [0]


@pytest.mark.parametrize("change, match", [
    (LayerChange(deaths=[[1], [0]]), "layer 0: a death names an edge that is not alive"),
    (LayerChange(deaths=[[0, 0], [0, 0]]), "layer 0: deaths list an edge twice"),
    (LayerChange(births=[[0], [0]]), r"layer 0: births clash with live edges \(duplicate edge \(src=0, dst=0\)"),
    (LayerChange(births=[[1, 1], [1, 1]]), "births clash with live edges"),
    # out of range would alias another edge through dst * n_in + src: (3, 0) -> (0, 1)
    (LayerChange(births=[[3], [0]]), r"layer 0: births src index 3 out of range \[0, 3\)"),
    (LayerChange(births=[[-1], [1]]), r"layer 0: births src index -1 out of range"),
    (LayerChange(deaths=[[3], [0]]), r"layer 0: deaths src index 3 out of range \[0, 3\)"),
    (LayerChange(births=[[0], [2]]), r"layer 0: births dst index 2 out of range \[0, 2\)"),
])
def test_bad_changes_are_rejected_and_leave_history_unchanged(change, match):
    t0 = topo.from_edges([3, 2], [([0, 1], [0, 1])])
    h = History(t0)
    with pytest.raises(TopologyError, match=match):
        h.record(1, [change])
    assert h.epochs == [0.0] and h.final == t0
    h.record(1, [LayerChange(births=[[2], [0]])])  # still usable afterwards
    assert h.final.num_edges == 3


def test_bad_record_calls():
    h = History(topo.from_edges([3, 2, 2], [([0], [0]), ([1], [1])]))
    with pytest.raises(TopologyError, match="got changes for 1 layers, the topology has 2"):
        h.record(1, [LayerChange()])
    with pytest.raises(ParameterTypeError, match=r"changes\[1\] is a tuple, expected LayerChange"):
        h.record(1, [LayerChange(), ([], [])])
    with pytest.raises(ParameterError, match="epoch 0.0 must be finite and after the last recorded epoch 0.0"):
        h.record(0, [LayerChange(), LayerChange()])
    with pytest.raises(ParameterError, match="epoch nan must be finite"):
        h.record(float("nan"), [LayerChange(), LayerChange()])
    with pytest.raises(TopologyError, match="got weights for 1 layers, the topology has 2"):
        h.record(1, [LayerChange(), LayerChange()], weights=[None])
    with pytest.raises(TopologyError, match=r"weights of layer 1 have shape \(3,\), expected \(1,\)"):
        h.record(1, [LayerChange(), LayerChange()], weights=[None, torch.zeros(3)])
    with pytest.raises(TopologyError, match=r"edge lists must have shape \[2, k\]"):
        LayerChange(births=[[0, 1, 2]])
    with pytest.raises(ParameterTypeError, match="initial must be a Topology, got list"):
        History([1, 2])
    with pytest.raises(ParameterError, match=r"layer 2 out of range \[0, 2\)"):
        h.edge_intervals(2)
    assert h.epochs == [0.0]


# -- persistence --------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    h, states, weights, lives = random_history(5, steps=5)
    h.initial = h.initial.with_weights([torch.randn(g.num_edges) for g in h.initial])
    p = tmp_path / "h.npz"
    h.save(p)
    back = History.load(p)
    assert back.epochs == h.epochs and back.meta == {"seed": 5}
    for e in h.epochs:
        a, b = back.topology(e), h.topology(e)
        assert a == b and a.weighted == b.weighted
        if e:
            for ca, cb in zip(back.changes(e), h.changes(e)):
                assert torch.equal(ca.births, cb.births) and torch.equal(ca.deaths, cb.deaths)
                assert ca.seconds == cb.seconds
    assert back.frame().equals(h.frame())
    for k in range(h.num_layers):
        for key, arr in h.edge_intervals(k).items():
            np.testing.assert_array_equal(back.edge_intervals(k)[key], arr)
    empty = History(topo.Topology.empty([2, 2]))
    empty.save(tmp_path / "e.npz")
    assert History.load(tmp_path / "e.npz").epochs == [0.0]


def test_history_and_topology_files_are_not_interchangeable(tmp_path):
    h, *_ = random_history(1, steps=2)
    h.save(tmp_path / "h.npz")
    h.topology(0).save(tmp_path / "t.npz")
    with pytest.raises(TopologyFormatError, match="holds 'topo.history', expected 'topo.topology'"):
        topo.load(tmp_path / "h.npz")
    with pytest.raises(TopologyFormatError, match="holds 'topo.topology', expected 'topo.history'"):
        History.load(tmp_path / "t.npz")


def test_truncated_and_corrupt_history_files(tmp_path):
    h, *_ = random_history(3, sizes=(3, 2), steps=2)
    p = tmp_path / "h.npz"
    h.save(p)
    raw = p.read_bytes()
    bad = tmp_path / "bad.npz"
    for n in range(0, len(raw), 23):
        bad.write_bytes(raw[:n])
        with pytest.raises(TopologyFormatError):
            History.load(bad)
    for i in range(0, len(raw), 9):
        b = bytearray(raw)
        b[i] ^= 0xFF
        bad.write_bytes(bytes(b))
        try:
            back = History.load(bad)
        except TopologyFormatError:
            continue
        assert back.epochs == h.epochs and all(back.topology(e) == h.topology(e) for e in h.epochs)


def _resave(src, dst, **changes):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("changes, match", [
    (dict(__version__=np.array(7)), "format version 7"),
    (dict(epochs=np.array([2.0, 1.0])), "inconsistent history: epoch 1.0 must be finite and after"),
    (dict(seconds=np.zeros(3)), "epochs/seconds/has_weights have shapes"),
    (dict(**{"layer0.births_ptr": np.array([0, 5, 1])}), "layer0.births and its pointer array disagree"),
    (dict(**{"layer0.deaths": np.array([[9], [9]], np.int32), "layer0.deaths_ptr": np.array([0, 1, 1])}),
     "inconsistent history: layer 0: deaths src index 9 out of range"),
    (dict(**{"layer0.weights_ptr": None}), "missing or has malformed history data"),
    (dict(stray=np.array(1)), r"unexpected arrays \['stray'\]"),
])
def test_inconsistent_history_files(tmp_path, changes, match):
    # The first layout (one array per layer over all steps), as older topo wrote it.
    _resave(Path(__file__).parent / "data" / "history_v1.npz", tmp_path / "bad.npz", **changes)
    with pytest.raises(TopologyFormatError, match=match):
        History.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("changes, match", [
    (dict(__version__=np.array(7)), "format version 7"),
    (dict(**{"step000001.epoch": np.float64(0.5)}), "inconsistent history: epoch 0.5 must be finite and after"),
    (dict(**{"step000000.seconds": np.zeros(3)}), r"step000000.seconds has shape \(3,\)"),
    (dict(**{"step000000.layer0.deaths": np.array([[9], [9]], np.int32)}),
     "inconsistent history: layer 0: deaths src index 9 out of range"),
    (dict(**{"step000001.layer0.births": None}), "missing or has malformed history data"),
    (dict(**{"step000002.layer0.births": np.zeros((2, 0), np.int32)}), "unexpected arrays"),
    (dict(stray=np.array(1)), r"unexpected arrays \['stray'\]"),
])
def test_inconsistent_history_files_step_layout(tmp_path, changes, match):
    h, *_ = random_history(4, sizes=(3, 2), steps=2)
    h.save(tmp_path / "h.npz")
    _resave(tmp_path / "h.npz", tmp_path / "bad.npz", **changes)
    with pytest.raises(TopologyFormatError, match=match):
        History.load(tmp_path / "bad.npz")
