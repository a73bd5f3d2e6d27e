"""Edge keys ``dst * n_in + src`` on huge layers: correct up to the int64 limit, a clear error beyond it."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topo
from topo.errors import TopologyError
from topo.graph.layer import MAX_KEY_SPACE, LayerGraph, check_key_space
from topo.graph.sampling import make_generator, sample_keys

LIMIT = 2**63


@pytest.mark.parametrize("sizes, edges", [
    ([2**40] * 2, ([0, 0], [0, 2**24])),   # key 2**64 wrapped to 0: a false "duplicate edge"
    ([2**32] * 2, ([0, 1], [2**31, 2**31 + 1])),  # keys past 2**63 went negative, the order wrong
    ([2**62, 2], ([0], [0])),              # exactly 2**63 cells: the key space itself is no int64
])
def test_from_edges_refuses_layers_beyond_int64_keys(sizes, edges):
    with pytest.raises(TopologyError, match=rf"layer 0: a {sizes[0]}->{sizes[1]} layer .* below 2\*\*63"):
        topo.from_edges(sizes, [edges])


def test_erdos_renyi_refuses_before_sampling():
    # Was a bare "Overflow when unpacking long long" from torch.randint.
    with pytest.raises(TopologyError, match=r"1099511627776->1099511627776 layer has 2\*\*80\.0 possible edges"):
        topo.erdos_renyi([2**40] * 2, density=1e-22)
    with pytest.raises(TopologyError, match="layer has"):
        topo.nn.SparseLinear(2**40, 2**40, density=1e-22)


def test_sample_keys_refuses_a_space_beyond_int64():
    with pytest.raises(TopologyError, match=r"key space 9223372036854775808 is outside"):
        sample_keys(LIMIT, 1, make_generator(0))


def test_largest_layer_keeps_dst_src_order_and_real_duplicates():
    n_in, n_out = 2**40, 2**23 - 1  # n_in * n_out just below 2**63
    assert check_key_space(n_in, n_out) == n_in * n_out < LIMIT
    src = [5, n_in - 1, 0, n_in - 1]
    dst = [0, 0, n_out - 1, n_out - 1]
    g = topo.from_edges([n_in, n_out], [(src[::-1], dst[::-1], [4.0, 3.0, 2.0, 1.0])])[0]
    assert g.dst.tolist() == dst and g.src.tolist() == src
    assert g.weight.tolist() == [1.0, 2.0, 3.0, 4.0]  # permuted alongside
    assert g.keys().tolist() == [d * n_in + s for s, d in zip(src, dst)]
    assert int(g.keys()[-1]) == n_in * n_out - 1 == MAX_KEY_SPACE - n_in  # the largest key of the layer
    with pytest.raises(TopologyError, match=rf"duplicate edge \(src={n_in - 1}, dst={n_out - 1}\)"):
        topo.from_edges([n_in, n_out], [([n_in - 1, 0, n_in - 1], [n_out - 1, 0, n_out - 1])])


def test_erdos_renyi_near_the_limit():
    n_in, n_out = 2**31, 2**31 - 1
    t = topo.erdos_renyi([n_in, n_out], density=1e-15, seed=0)
    g = t[0]
    assert g.num_edges == round(1e-15 * n_in * n_out)
    keys = g.keys()
    assert bool((keys[1:] > keys[:-1]).all()) and int(keys[0]) >= 0 and int(keys[-1]) < n_in * n_out
    assert int(g.src.max()) < n_in and int(g.dst.max()) < n_out
    # Keys are spread over the whole space, not folded into the low part by an overflow.
    assert int(keys[-1]) > n_in * n_out // 2
    assert topo.erdos_renyi([n_in, n_out], density=1e-15, seed=0) == t


def _reference(n_in, n_out, src, dst):
    """(src, dst) sorted by (dst, src) with Python ints, or None when an edge repeats."""
    pairs = list(zip(src, dst))
    if len(set(pairs)) != len(pairs):
        return None
    pairs.sort(key=lambda p: (p[1], p[0]))
    return [p[0] for p in pairs], [p[1] for p in pairs]


@st.composite
def _layers(draw):
    bits = draw(st.integers(0, 63))
    n_in = draw(st.integers(1, 2**bits))
    # Mostly inside the int64 key range, sometimes right at or beyond it.
    if draw(st.booleans()):
        n_out = draw(st.integers(1, max(1, MAX_KEY_SPACE // n_in)))
    else:
        n_out = draw(st.integers(max(1, MAX_KEY_SPACE // n_in), max(1, MAX_KEY_SPACE // n_in) + 3))
    n = draw(st.integers(0, 12))
    src = draw(st.lists(st.one_of(st.integers(0, min(n_in - 1, 3)), st.integers(0, n_in - 1)), min_size=n,
                        max_size=n))
    dst = draw(st.lists(st.one_of(st.integers(0, min(n_out - 1, 3)), st.integers(0, n_out - 1)), min_size=n,
                        max_size=n))
    return n_in, n_out, src, dst


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_layers())
def test_from_edges_matches_a_python_reference(layer):
    n_in, n_out, src, dst = layer
    ref = _reference(n_in, n_out, src, dst)
    if n_in * n_out >= LIMIT:
        with pytest.raises(TopologyError, match="below 2\\*\\*63"):
            topo.from_edges([n_in, n_out], [(src, dst)])
        return
    if ref is None:
        with pytest.raises(TopologyError, match="duplicate edge"):
            topo.from_edges([n_in, n_out], [(src, dst)])
        return
    t = topo.from_edges([n_in, n_out], [(src, dst)])
    assert t[0].src.tolist() == ref[0] and t[0].dst.tolist() == ref[1]
    assert t[0].keys().tolist() == [d * n_in + s for s, d in zip(*ref)]
    # from_keys inverts keys() on the whole range
    assert LayerGraph.from_keys(n_in, n_out, t[0].keys()) == t[0]


@settings(max_examples=60, deadline=None)
@given(_layers())
def test_save_load_round_trip_of_huge_layers(tmp_path_factory, layer):
    n_in, n_out, src, dst = layer
    if n_in * n_out >= LIMIT or _reference(n_in, n_out, src, dst) is None:
        return
    t = topo.from_edges([n_in, n_out], [(src, dst, np.arange(len(src), dtype=np.float32))])
    path = tmp_path_factory.mktemp("keys") / "t.npz"
    t.save(path)
    back = topo.load(path)
    assert back == t and back.sizes == (n_in, n_out)
    assert torch.equal(back[0].weight, t[0].weight)
