"""Sorted int64 key sets in linear time: locate, membership, merge, union, de-duplication.

Evolution works on sorted edge keys ``dst * n_in + src`` (a layer's CSR order).
Two sorted arrays are compared or merged by walking them together, in
``O(n + m)`` with sequential memory access, rather than by a binary search per
query (``searchsorted``: ``log n`` cache misses each on a large layer) or by
re-sorting their concatenation (``O((n + m) log(n + m))``). The walk gallops
(exponential then binary search), so a few queries into a large array cost
``O(m log(n / m))``.

The walks are numba kernels (numba is a dependency of topo); where numba does
not import, or after :func:`set_compiled` ``(False)``, numpy's ``searchsorted``
and boolean-mask scatters compute the same results. Inputs and outputs are CPU
torch tensors (shared with numpy, no copies); tensors on other devices go
through torch's own ops.
"""

from __future__ import annotations

import numpy as np
import torch

from ._walks import kernels as _kernels
from .alloc import empty

__all__ = ["is_increasing", "locate", "contains", "merge", "interleave", "union", "dedupe", "split_keys",
           "linear_keys", "split_into", "edge_list", "compact", "match", "carry", "apply", "insert", "transpose",
           "compiled", "set_compiled"]

_USE_COMPILED = True


def compiled() -> bool:
    """Whether the numba kernels are used (numba imports and :func:`set_compiled` did not switch them off)."""
    return _USE_COMPILED and _kernels() is not None


def set_compiled(flag: bool) -> bool:
    """Use the numba kernels (``True``, the default) or numpy's equivalents; returns the previous setting."""
    global _USE_COMPILED
    old, _USE_COMPILED = _USE_COMPILED, bool(flag)
    return old


_RAW = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _raw(t: torch.Tensor) -> np.ndarray:
    """``t`` as a numpy array of same-width integers (bfloat16 and all: values are only moved)."""
    return _np(t) if t.dtype == torch.bool else _np(t.detach().contiguous().view(_RAW[t.element_size()]))


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


def _cpu(*ts: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" for t in ts)


def is_increasing(keys: torch.Tensor, strict: bool = True) -> bool:
    """Whether ``keys`` (1-D) is strictly (or, ``strict=False``, weakly) increasing; ``O(n)``.

    Examples
    --------
    >>> is_increasing(torch.tensor([1, 3, 7])), is_increasing(torch.tensor([1, 3, 3]))
    (True, False)
    """
    if keys.numel() < 2:
        return True
    if not _cpu(keys):
        return bool((keys[1:] > keys[:-1]).all() if strict else (keys[1:] >= keys[:-1]).all())
    a = _np(keys)
    return bool(np.all(a[1:] > a[:-1]) if strict else np.all(a[1:] >= a[:-1]))


def locate(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """``torch.searchsorted(keys, queries)`` (left side) for sorted ``keys`` and sorted ``queries``, int64.

    Examples
    --------
    >>> locate(torch.tensor([2, 4, 6]), torch.tensor([1, 4, 5, 9])).tolist()
    [0, 1, 2, 3]
    """
    if not _cpu(keys, queries):
        return torch.searchsorted(keys, queries)
    k, q = _np(keys).astype(np.int64, copy=False), _np(queries).astype(np.int64, copy=False)
    if compiled() and q.size:
        out = np.empty(q.size, dtype=np.int64)
        _kernels()["locate"](k, q, out)
        return torch.from_numpy(out)
    return torch.from_numpy(np.searchsorted(k, q).astype(np.int64, copy=False))


def contains(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Mask of the sorted ``queries`` found in the sorted ``keys``.

    Examples
    --------
    >>> contains(torch.tensor([2, 4, 6]), torch.tensor([1, 4, 6, 9])).tolist()
    [False, True, True, False]
    """
    n = keys.numel()
    if n == 0 or queries.numel() == 0:
        return torch.zeros(queries.shape, dtype=torch.bool, device=queries.device)
    pos = locate(keys, queries)
    if not _cpu(keys, queries):
        return keys[pos.clamp_(max=n - 1)] == queries
    k, q, p = _np(keys), _np(queries), pos.numpy()
    np.minimum(p, n - 1, out=p)
    return torch.from_numpy(k[p] == q)


def interleave(a: torch.Tensor, b: torch.Tensor, at_b: torch.Tensor) -> torch.Tensor:
    """``a`` and ``b`` woven together: ``out[at_b] = b`` (``at_b`` increasing), ``a`` fills the rest in order.

    Any dtype (values are copied bit for bit); ``out`` has ``len(a) + len(b)`` entries.

    Examples
    --------
    >>> interleave(torch.tensor([1., 2., 3.]), torch.tensor([9.]), torch.tensor([1])).tolist()
    [1.0, 9.0, 2.0, 3.0]
    """
    n = a.numel() + b.numel()
    if not _cpu(a, b, at_b) or a.dtype != b.dtype or a.dtype.is_complex or a.dtype == torch.bool:
        out = torch.empty(n, dtype=torch.promote_types(a.dtype, b.dtype), device=a.device)
        at_b = at_b.to(a.device)
        rest = torch.ones(n, dtype=torch.bool, device=a.device)
        rest[at_b] = False
        out[rest] = a.to(out.dtype)
        out[at_b] = b.to(out.dtype)
        return out
    out = empty(n, a.dtype)
    if n == 0:
        return out
    # Moved as raw integers of the same width: numba and numpy have no bfloat16, the copy is exact.
    av, bv, ov = _raw(a), _raw(b), _raw(out)
    at_np = _np(at_b).astype(np.int64, copy=False)
    if compiled():
        _kernels()["interleave"](av, bv, at_np, ov)
    else:
        others = np.ones(n, dtype=bool)
        others[at_np] = False
        ov[others] = av
        ov[at_np] = bv
    return out


def merge(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge sorted ``a`` and sorted ``b``: ``(merged, at_b)``, ``at_b`` the positions of ``b`` in ``merged``.

    An element of ``b`` equal to one of ``a`` lands before it (so :func:`dedupe` keeps one of each).

    Examples
    --------
    >>> m, at = merge(torch.tensor([1, 5, 8]), torch.tensor([3, 9]))
    >>> m.tolist(), at.tolist()
    ([1, 3, 5, 8, 9], [1, 4])
    """
    at_b = locate(a, b)
    if at_b.device.type == "cpu":
        at_b.numpy()[:] += np.arange(b.numel())
    else:
        at_b += torch.arange(b.numel(), device=at_b.device)
    return interleave(a, b, at_b), at_b


def dedupe(keys: torch.Tensor) -> torch.Tensor:
    """A sorted array without its repeated entries (``torch.unique`` of a sorted input, in ``O(n)``)."""
    if keys.numel() < 2:
        return keys
    if not _cpu(keys):
        return torch.unique_consecutive(keys)
    k = _np(keys)
    keep = np.empty(k.size, dtype=bool)
    keep[0] = True
    np.not_equal(k[1:], k[:-1], out=keep[1:])
    return keys if keep.all() else torch.from_numpy(k[keep])


def union(*parts: torch.Tensor) -> torch.Tensor:
    """Sorted, unique union of int64 key arrays; sorted parts are merged, unsorted ones sorted first.

    Examples
    --------
    >>> union(torch.tensor([1, 4]), torch.tensor([4, 2])).tolist()
    [1, 2, 4]
    """
    out = torch.empty(0, dtype=torch.int64)
    for p in parts:
        p = p.reshape(-1).to(torch.int64)
        if not is_increasing(p, strict=False):
            p = torch.sort(p).values
        if p.numel():
            out = p if out.numel() == 0 else merge(out, p)[0]
    return dedupe(out)


def split_keys(keys: torch.Tensor, n_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(src, dst)`` of keys ``dst * n_in + src`` (int64), one division instead of a division and a modulo."""
    if not _cpu(keys):
        dst = torch.div(keys, n_in, rounding_mode="floor")
        return keys - dst * n_in, dst
    k = _np(keys).astype(np.int64, copy=False)
    d = k // n_in
    s = d * n_in
    np.subtract(k, s, out=s)
    return torch.from_numpy(s), torch.from_numpy(d)


def linear_keys(src: torch.Tensor, dst: torch.Tensor, n_in: int) -> torch.Tensor:
    """int64 keys ``dst * n_in + src`` of CPU index rows of any integer dtype, written once into a new array.

    numpy's multiply-add is 2-4x faster than torch's on CPU (no dispatch, no temporary), and an int32
    ``edge_index`` needs no int64 copy of its rows first.

    Examples
    --------
    >>> linear_keys(torch.tensor([1, 0], dtype=torch.int32), torch.tensor([0, 2], dtype=torch.int32), 3).tolist()
    [1, 6]
    """
    k = np.multiply(_np(dst), n_in, dtype=np.int64)
    k += _np(src)
    return torch.from_numpy(k)


def split_into(keys: torch.Tensor, n_in: int, src: torch.Tensor, dst: torch.Tensor) -> None:
    """Write ``src``/``dst`` (1-D, any integer dtype wide enough) of the strictly increasing CPU ``keys``.

    Examples
    --------
    >>> s, d = torch.empty(3, dtype=torch.int32), torch.empty(3, dtype=torch.int32)
    >>> split_into(torch.tensor([1, 5, 7]), 3, s, d)
    >>> s.tolist(), d.tolist()
    ([1, 2, 1], [0, 1, 2])
    """
    k = _np(keys).astype(np.int64, copy=False)
    if compiled() and src.is_contiguous() and dst.is_contiguous():
        _kernels()["split_sorted"](k, np.int64(n_in), src.numpy(), dst.numpy())
        return
    s, d = src.numpy(), dst.numpy()
    step = 1 << 20  # in chunks: no int64 temporaries of the layer's size
    for lo in range(0, k.size, step):
        q = k[lo:lo + step] // n_in
        d[lo:lo + step] = q
        q *= n_in
        np.subtract(k[lo:lo + step], q, out=q)
        s[lo:lo + step] = q


def edge_list(keys: torch.Tensor, n_in: int) -> torch.Tensor:
    """The ``[2, k]`` int64 edge list (row 0 ``src``, row 1 ``dst``) of keys ``dst * n_in + src``, built in place.

    Examples
    --------
    >>> edge_list(torch.tensor([1, 7]), 3).tolist()
    [[1, 1], [0, 2]]
    """
    if not _cpu(keys):
        return torch.stack(split_keys(keys, n_in))
    k = _np(keys).astype(np.int64, copy=False)
    out = np.empty((2, k.size), dtype=np.int64)
    np.floor_divide(k, n_in, out=out[1])
    np.multiply(out[1], n_in, out=out[0])
    np.subtract(k, out[0], out=out[0])
    return torch.from_numpy(out)


def compact(tensors: list[torch.Tensor], drop: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor (1-D, same length, any dtype) without the entries at the increasing, unique positions ``drop``.

    Examples
    --------
    >>> [t.tolist() for t in compact([torch.tensor([1, 2, 3]), torch.tensor([.5, .25, .75])], torch.tensor([1]))]
    [[1, 3], [0.5, 0.75]]
    """
    if not tensors:
        return []
    n = tensors[0].numel()
    keep = np.ones(n, dtype=np.uint8)
    keep[_np(drop.cpu()).astype(np.int64, copy=False)] = 0
    out = []
    for t in tensors:
        if _cpu(t) and not t.dtype.is_complex and compiled():
            buf = empty(n - drop.numel() + 1, t.dtype)
            _kernels()["compact"](_raw(t), keep, _raw(buf))
            out.append(buf[:-1])
        elif _cpu(t) and not t.dtype.is_complex:
            out.append(torch.from_numpy(_raw(t)[keep.view(bool)]).view(t.dtype))
        else:
            out.append(t[torch.from_numpy(keep.view(bool)).to(t.device)])
    return out


def match(src: torch.Tensor, dst: torch.Tensor, n_in: int, new_keys: torch.Tensor) -> torch.Tensor:
    """For each edge ``(src, dst)`` of a layer in key order, its position in the sorted ``new_keys``, or -1.

    ``src``/``dst`` may be int32 (a ``SparseLinear.edge_index``): the keys are formed on the fly.
    """
    e = src.numel()
    if new_keys.numel() == 0:
        return torch.full((e,), -1, dtype=torch.int64)
    if compiled() and _cpu(src, dst, new_keys):
        out = np.empty(e, dtype=np.int64)
        _kernels()["match"](_np(src), _np(dst), np.int64(n_in), _np(new_keys).astype(np.int64, copy=False), out)
        return torch.from_numpy(out)
    old = dst.cpu().to(torch.int64) * n_in + src.cpu().to(torch.int64)
    new_keys = new_keys.cpu()
    pos = locate(new_keys, old)
    p = pos.numpy()
    hit = new_keys.numpy()[np.minimum(p, new_keys.numel() - 1)] == old.numpy()
    p[~hit] = -1
    return pos


def carry(old_to_new: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> bool:
    """``new[old_to_new[i]] = old[i]`` for every ``old_to_new[i] >= 0``, in place, if a kernel can do it.

    Returns ``False`` (nothing done) where it cannot: off CPU, different dtypes, no numba.
    """
    if not (compiled() and _cpu(old_to_new, old, new) and old.dtype == new.dtype and new.is_contiguous()
            and old.dim() == 1 and new.dim() == 1 and not old.dtype.is_complex):
        return False
    _kernels()["carry"](_np(old_to_new).astype(np.int64, copy=False), _raw(old.detach()), _raw(new))
    return True


def apply(keys: torch.Tensor, dead: torch.Tensor, born: torch.Tensor) -> torch.Tensor | None:
    """Sorted ``keys`` minus the sorted ``dead`` plus the sorted ``born`` in one walk, or ``None`` when a
    death is not among ``keys``, a birth repeats or is alive (or no kernel is there): the caller checks."""
    if not (compiled() and _cpu(keys, dead, born)):
        return None
    out = np.empty(keys.numel() - dead.numel() + born.numel(), dtype=np.int64)
    n = _kernels()["apply"](_np(keys), _np(dead), _np(born), out)
    return torch.from_numpy(out) if n == out.size else None


def insert(graph_keys: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, values: torch.Tensor | None,
           new_keys: torch.Tensor, new_edges: torch.Tensor, new_values: torch.Tensor | None,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """Merge sorted ``new_keys`` (none among the sorted ``graph_keys``; ``new_edges`` their ``[2, k]``
    list) into a layer's edges ``(graph_keys, src, dst, values)``, all four in one walk.

    Returns the merged ``(keys, src, dst, values)`` (``values`` ``None`` when ``values`` is), or
    ``None`` where no kernel applies (then :func:`merge` and :func:`interleave` do it).
    """
    parts = [graph_keys, src, dst, new_keys, new_edges]
    if not compiled() or not _cpu(*parts) or any(t.dtype != torch.int64 for t in parts) \
            or (values is None) != (new_values is None):
        return None
    if values is not None and new_values is not None and (
            not _cpu(values, new_values) or values.dtype != new_values.dtype or values.dtype.is_complex):
        return None
    at_b = locate(graph_keys, new_keys)
    at_b.numpy()[:] += np.arange(new_keys.numel())
    n = graph_keys.numel() + new_keys.numel()
    out = [empty(n, torch.int64) for _ in range(3)]
    if values is None:  # unweighted: the kernel moves one-byte dummies, dropped after
        a_val = np.zeros(max(graph_keys.numel(), 1), np.int8)
        b_val = np.zeros(max(new_keys.numel(), 1), np.int8)
        val, out_val = np.empty(n, np.int8), None
    else:
        assert new_values is not None  # checked above
        out_val = empty(n, values.dtype)
        a_val, b_val, val = _raw(values), _raw(new_values), _raw(out_val)
    _kernels()["insert"](_np(graph_keys), _np(src), _np(dst), a_val, _np(new_keys), _np(new_edges[0]),
                         _np(new_edges[1]), b_val, _np(at_b), *(o.numpy() for o in out), val)
    return out[0], out[1], out[2], out_val


def transpose(src: torch.Tensor, dst: torch.Tensor, n_in: int,
              dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(crow_t, perm, col_t)`` of the transpose of a layer whose edges are in ``(dst, src)`` order.

    ``perm[t]`` is the edge at position ``t`` of the ``(src, dst)`` order (what
    ``torch.sort(src, stable=True).indices`` gives), ``col_t = dst[perm]`` and ``crow_t`` the
    row pointer over the ``n_in`` sources, all in ``dtype``: one counting sort, ``O(E + n_in)``.
    ``None`` where no kernel applies (the caller sorts).
    """
    if not compiled() or not _cpu(src, dst) or dtype not in (torch.int32, torch.int64):
        return None
    e = src.numel()
    crow_t, perm, col_t = empty(n_in + 1, dtype), empty(e, dtype), empty(e, dtype)
    _kernels()["transpose"](_np(src), _np(dst), crow_t.numpy(), perm.numpy(), col_t.numpy())
    return crow_t, perm, col_t
