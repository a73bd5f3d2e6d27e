"""sample_keys / make_generator: distinctness, range, exclusion, uniformity, determinism, O(m) memory."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topo import TopoError
from topo.graph import make_generator, sample_keys


@settings(max_examples=80, deadline=None)
@given(space=st.integers(1, 400), data=st.data())
def test_keys_are_distinct_sorted_in_range_and_avoid_exclude(space, data):
    exclude = sorted(data.draw(st.sets(st.integers(0, space - 1), max_size=space)))
    m = data.draw(st.integers(0, space - len(exclude)))
    ex = torch.tensor(exclude, dtype=torch.int64) if exclude else None
    k = sample_keys(space, m, make_generator(data.draw(st.integers(0, 2**31))), exclude=ex)
    assert k.dtype == torch.int64 and k.numel() == m
    assert len(set(k.tolist())) == m and k.tolist() == sorted(k.tolist())
    assert all(0 <= x < space for x in k.tolist())
    assert not set(k.tolist()) & set(exclude)


def test_huge_space_sparse_request():
    k = sample_keys(10**12, 1000, make_generator(0))
    assert k.numel() == 1000 and int(k.unique().numel()) == 1000
    assert 0 <= int(k.min()) and int(k.max()) < 10**12
    # spread over the space, not clustered at its start
    assert int(k.max()) > 10**11


def test_full_and_empty_requests():
    g = make_generator(0)
    assert sample_keys(50, 50, g).tolist() == list(range(50))
    ex = torch.tensor([3, 7], dtype=torch.int64)
    assert sample_keys(10, 8, g, exclude=ex).tolist() == [0, 1, 2, 4, 5, 6, 8, 9]
    assert sample_keys(10, 0, g).numel() == 0


@pytest.mark.parametrize("space, m, exclude_size", [(40, 6, 0), (300, 10, 40), (40, 6, 20), (40, 25, 0),
                                                    (40, 10, 15)])
def test_uniform_over_free_positions(space, m, exclude_size):
    """Chi-square of pick counts per free position; covers the rejection and the enumeration paths."""
    from scipy.stats import chi2 as chi2_dist

    gen = make_generator(2024)
    exclude = torch.arange(0, 2 * exclude_size, 2, dtype=torch.int64) if exclude_size else None
    free = space - exclude_size
    counts = torch.zeros(space)
    reps = 3000
    for _ in range(reps):
        counts[sample_keys(space, m, gen, exclude=exclude)] += 1
    if exclude is not None:
        assert counts[exclude].sum() == 0
        keep = torch.ones(space, dtype=torch.bool)
        keep[exclude] = False
        counts = counts[keep]
    expected = reps * m / free
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2_dist.sf(chi2, free - 1) > 1e-3, chi2


def test_same_generator_seed_same_keys():
    a = sample_keys(10**6, 500, make_generator(3))
    assert torch.equal(a, sample_keys(10**6, 500, make_generator(3)))
    assert not torch.equal(a, sample_keys(10**6, 500, make_generator(4)))
    g = torch.Generator().manual_seed(3)
    assert make_generator(g) is g
    assert isinstance(make_generator(None), torch.Generator)


@pytest.mark.parametrize("call, match", [
    (lambda g: sample_keys(10, 11, g), "cannot draw 11 distinct edges from 10 free positions"),
    (lambda g: sample_keys(10, 9, g, exclude=torch.tensor([1, 2])), "cannot draw 9 distinct edges from 8"),
    (lambda g: sample_keys(10, -1, g), "cannot draw -1 distinct edges"),
    (lambda g: sample_keys(10, 2, g, exclude=torch.tensor([5, 1])), "exclude must be sorted, unique"),
    (lambda g: sample_keys(10, 2, g, exclude=torch.tensor([1, 1])), "exclude must be sorted, unique"),
    (lambda g: sample_keys(10, 2, g, exclude=torch.tensor([1, 10])), r"keys in \[0, 10\)"),
    (lambda g: sample_keys(10, 2, g, exclude=torch.tensor([1.0])), "exclude must be a 1-D int64 tensor"),
])
def test_bad_requests(call, match):
    with pytest.raises(TopoError, match=match):
        call(make_generator(0))


@pytest.mark.parametrize("seed", ["1", 1.5, True])
def test_make_generator_rejects_non_int_seeds(seed):
    with pytest.raises(TopoError, match=f"seed must be an int, a torch.Generator or None, got {seed!r}"):
        make_generator(seed)


_MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys
    import torch, topo
    topo.erdos_renyi([50, 50], epsilon=2, seed=0)            # warm up allocator and code paths
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = topo.erdos_renyi([100_000, 100_000], epsilon=20, seed=0, exact=sys.argv[1] == "exact")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"edges": t.num_edges, "peak_delta_kib": after - before}))
""")


@pytest.mark.parametrize("mode", ["exact", "bernoulli"])
def test_er_sampling_memory_is_o_edges(mode):
    """A 100k x 100k layer at eps=20 (4e6 edges) must not touch anything of size n_in*n_out.

    torch allocations are invisible to tracemalloc, so the probe runs in a fresh process and
    reads the growth of its peak RSS (ru_maxrss, KiB on Linux). Even one byte per possible edge
    would be 1e10 bytes (9.3 GiB); the O(edges) path needs a few hundred MiB.
    """
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, mode], capture_output=True, text=True,
                         timeout=300, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    expected = 20 * 200_000
    if mode == "exact":
        assert res["edges"] == expected
    else:
        assert abs(res["edges"] - expected) < 3 * expected ** 0.5
    n_in_n_out_bytes = 100_000 * 100_000
    assert res["peak_delta_kib"] * 1024 < n_in_n_out_bytes / 10, res
