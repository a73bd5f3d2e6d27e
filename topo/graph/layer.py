"""One bipartite layer of a sparse network: the edge set between two neuron layers."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from ..errors import ParameterError, ParameterTypeError, TopologyError

__all__ = ["LayerGraph", "MAX_KEY_SPACE", "check_key_space"]

#: Edges are addressed by the int64 key ``dst * n_in + src`` (sorting, duplicate checks, sampling, evolution):
#: a layer needs ``n_in * n_out <= MAX_KEY_SPACE`` so that every key, up to ``n_in * n_out - 1``, is an int64.
MAX_KEY_SPACE = 2**63 - 1


def check_key_space(n_in: int, n_out: int) -> int:
    """``n_in * n_out`` if every edge key of such a layer fits int64, else a TopologyError naming the sizes.

    Examples
    --------
    >>> check_key_space(2**31, 2**31)
    4611686018427387904
    >>> check_key_space(2**32, 2**32)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    topo.errors.TopologyError: a 4294967296->4294967296 layer has ...: n_in * n_out must be below 2**63
    """
    space = int(n_in) * int(n_out)
    if space > MAX_KEY_SPACE:
        raise TopologyError(f"a {n_in}->{n_out} layer has 2**{math.log2(space):.1f} possible edges, more than "
                            f"topo's int64 edge keys (dst * n_in + src) address: n_in * n_out must be below 2**63")
    return space


def _tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x  # taken as it is, like torch does
    if isinstance(x, (list, tuple)):
        return torch.as_tensor(x)  # a new tensor; Python floats get the default dtype
    # Copy arrays: a layer must not share memory with a caller's (or pandas' read-only) numpy
    # array, which could change under it.
    return torch.from_numpy(np.array(x))


def _as_index(x, name: str) -> torch.Tensor:
    try:
        t = _tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TopologyError(f"{name} must be a 1-D array of integers ({err})") from None
    if t.dim() != 1:
        raise TopologyError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    # A bool mask or complex array is never a valid index list; casting would hide the mistake.
    if t.is_complex() or t.dtype == torch.bool or (
            t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all() and (t == t.round()).all())):
        raise TopologyError(f"{name} must hold integers, got dtype {t.dtype}")
    return t.to(torch.int64)


def _as_weight(weight) -> torch.Tensor:
    try:
        weight = _tensor(weight)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TopologyError(f"weight must be an array of numbers ({err})") from None
    if not weight.is_floating_point():
        weight = weight.to(torch.get_default_dtype())
    return weight


def _index_row(slot: str, doc: str) -> property:
    """A ``src``/``dst`` property: split from the keys on first use in a keys-only layer (both at once)."""

    def get(self) -> torch.Tensor:
        if self._src is None:
            self._split()
        return getattr(self, slot)

    def set(self, value: torch.Tensor) -> None:
        if self._src is None:
            self._split()  # the other row must exist too
        setattr(self, slot, value)

    return property(get, set, doc=doc)


class LayerGraph:
    """Edges from ``n_in`` input neurons to ``n_out`` output neurons.

    Edges are stored as two int64 tensors ``src`` (input index) and ``dst``
    (output index), sorted by ``(dst, src)`` — the row-major order of the
    ``n_out × n_in`` weight matrix, i.e. CSR order, so compiled layers need no
    re-sort. ``weight`` is an optional float tensor aligned with the edges.

    The constructor sorts unsorted input (permuting ``weight`` alongside) and
    raises :class:`~topo.errors.TopologyError` for indices out of range or
    duplicate edges.

    Examples
    --------
    >>> g = LayerGraph(3, 2, src=[2, 0, 1], dst=[1, 0, 1])
    >>> g.src.tolist(), g.dst.tolist()
    ([0, 1, 2], [0, 1, 1])
    >>> g.out_degree().tolist(), g.in_degree().tolist()
    ([1, 1, 1], [1, 2])
    """

    # ``_src``/``_dst`` may be ``None`` while ``_keys`` holds the keys alone: evolution builds layers from
    # sorted keys, and most steps never look at the index rows (16 bytes per edge saved, and their writes).
    __slots__ = ("n_in", "n_out", "_src", "_dst", "weight", "_keys")

    def __init__(self, n_in: int, n_out: int, src, dst, weight=None) -> None:
        n_in, n_out = _check_size(n_in, "n_in"), _check_size(n_out, "n_out")
        check_key_space(n_in, n_out)
        src, dst = _as_index(src, "src"), _as_index(dst, "dst")
        if src.shape != dst.shape:
            raise TopologyError(f"src and dst differ in length: {src.numel()} vs {dst.numel()}")
        if weight is not None:
            weight = _as_weight(weight)
            if weight.shape != src.shape:
                raise TopologyError(
                    f"weight has shape {tuple(weight.shape)}, expected ({src.numel()},) to match the edges")
        if src.numel():
            for t, n, name in ((src, n_in, "src"), (dst, n_out, "dst")):
                lo, hi = int(t.min()), int(t.max())
                if lo < 0 or hi >= n:
                    bad = lo if lo < 0 else hi
                    raise TopologyError(f"{name} index {bad} out of range [0, {n})")
            key = dst * n_in + src
            if key.numel() > 1 and not bool((key[1:] > key[:-1]).all()):
                key, order = torch.sort(key)
                src, dst = src[order], dst[order]
                if weight is not None:
                    weight = weight[order]
                dup = (key[1:] == key[:-1]).nonzero()
                if dup.numel():
                    i = int(dup[0, 0])
                    raise TopologyError(
                        f"duplicate edge (src={int(src[i])}, dst={int(dst[i])}) in a layer {n_in}->{n_out}")
        self.n_in, self.n_out = n_in, n_out
        self._src, self._dst, self.weight = src.contiguous(), dst.contiguous(), weight
        self._keys: tuple | None = None

    @classmethod
    def _trusted(cls, n_in: int, n_out: int, src: torch.Tensor, dst: torch.Tensor, weight=None,
                 keys: torch.Tensor | None = None) -> LayerGraph:
        """A layer from int64 ``src``/``dst`` already in range, sorted and unique; nothing is checked.

        For topo's own O(E) paths (evolution, the History), which build the edges in order by
        merging sorted keys: the checks and the sort of the constructor would cost more than the
        step. ``keys`` (``dst * n_in + src``, when the caller has them) is kept and returned by
        :meth:`keys` while ``src`` and ``dst`` stay unchanged.
        """
        g = object.__new__(cls)
        g.n_in, g.n_out, g._src, g._dst, g.weight = n_in, n_out, src, dst, weight
        g._keys = None if keys is None else (keys, src, dst, src._version, dst._version, keys._version)
        return g

    @classmethod
    def _trusted_keys(cls, n_in: int, n_out: int, keys: torch.Tensor, weight=None) -> LayerGraph:
        """A layer from strictly increasing int64 ``keys`` in range; nothing is checked, and ``src``/``dst``
        are split from the keys only when first asked for."""
        g = object.__new__(cls)
        g.n_in, g.n_out, g._src, g._dst, g.weight = n_in, n_out, None, None, weight
        g._keys = (keys,)
        return g

    src = _index_row("_src", "int64 input index of each edge, in ``(dst, src)`` order.")
    dst = _index_row("_dst", "int64 output index of each edge (non-decreasing).")

    @property
    def _keys_only(self) -> bool:
        """Whether the index rows have not been split from the keys yet."""
        return self._src is None

    def _held_keys(self) -> torch.Tensor:
        c = self._keys
        assert c is not None  # a keys-only layer always holds its keys
        return c[0]

    def _split(self) -> None:
        from .alloc import empty
        from .keyset import split_into, split_keys

        keys = self._held_keys()
        if keys.device.type == "cpu":  # sorted keys: a walk, no division per edge
            src, dst = empty(keys.numel(), torch.int64), empty(keys.numel(), torch.int64)
            split_into(keys, self.n_in, src, dst)
        else:
            src, dst = split_keys(keys, self.n_in)
        self._src, self._dst = src, dst
        self._keys = (keys, src, dst, src._version, dst._version, keys._version)

    # -- construction helpers -------------------------------------------------------
    @classmethod
    def from_keys(cls, n_in: int, n_out: int, keys: torch.Tensor, weight=None) -> LayerGraph:
        """Build from linear keys ``dst * n_in + src`` (any order, no duplicates).

        Strictly increasing keys in range are held as they are (no copy, no check beyond that; ``src``
        and ``dst`` are split from them when first read): do not modify them in place afterwards.
        """
        from .keyset import is_increasing, split_keys

        keys = torch.as_tensor(keys, dtype=torch.int64)
        n_in, n_out = _check_size(n_in, "n_in"), _check_size(n_out, "n_out")
        space = check_key_space(n_in, n_out)
        if keys.dim() == 1 and keys.numel() and is_increasing(keys) and 0 <= int(keys[0]) \
                and int(keys[-1]) < space:
            # Strictly increasing keys inside [0, n_in * n_out) are unique and in range: no sort, no checks.
            if weight is not None:
                weight = _as_weight(weight)
                if weight.shape != keys.shape:
                    raise TopologyError(f"weight has shape {tuple(weight.shape)}, expected ({keys.numel()},) "
                                        f"to match the edges")
            return cls._trusted_keys(n_in, n_out, keys, weight)
        return cls(n_in, n_out, *split_keys(keys, n_in), weight)

    @classmethod
    def from_scipy(cls, matrix) -> LayerGraph:
        """Build from a scipy sparse matrix of shape ``(n_out, n_in)``; stored values become weights."""
        coo = matrix.tocoo()
        n_out, n_in = coo.shape
        # Copy the values: tocoo() may share them with ``matrix``, and the layer must not alias it.
        return cls(n_in, n_out, torch.from_numpy(coo.col.astype(np.int64)),
                   torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(np.array(coo.data)))

    # -- structure --------------------------------------------------------------
    @property
    def num_edges(self) -> int:
        return int((self._held_keys() if self._src is None else self._src).numel())

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_out, n_in)``, the shape of the equivalent torch weight matrix."""
        return (self.n_out, self.n_in)

    @property
    def density(self) -> float:
        return self.num_edges / (self.n_in * self.n_out)

    def keys(self) -> torch.Tensor:
        """Linear edge keys ``dst * n_in + src``; strictly increasing.

        A graph built by evolution may hand out its cached key tensor: read it, do not modify it in place.
        """
        if self._src is None:
            return self._held_keys()
        c = self._keys
        if c is not None and c[1] is self.src and c[2] is self.dst and c[3:] == (
                self.src._version, self.dst._version, c[0]._version):
            return c[0]
        if self.src.device.type == "cpu" and self.src.dtype == self.dst.dtype == torch.int64:
            from .keyset import linear_keys

            return linear_keys(self.src, self.dst, self.n_in)
        return self.dst * self.n_in + self.src

    def in_degree(self) -> torch.Tensor:
        """Number of incoming edges of each output neuron, shape ``[n_out]``."""
        return torch.bincount(self.dst, minlength=self.n_out)

    def out_degree(self) -> torch.Tensor:
        """Number of outgoing edges of each input neuron, shape ``[n_in]``."""
        return torch.bincount(self.src, minlength=self.n_in)

    def strength(self, direction: Literal["in", "out"] = "out") -> torch.Tensor:
        """Sum of ``|weight|`` over each neuron's edges.

        ``"out"`` gives one value per input neuron (the QuickSelection
        importance), ``"in"`` one per output neuron. Unweighted layers count 1
        per edge, so strength equals degree.
        """
        if direction not in ("in", "out"):
            raise ParameterError(f"direction must be 'in' or 'out', got {direction!r}")
        w = self.weight.detach().abs().to(torch.float64) if self.weight is not None else None
        if direction == "in":
            return torch.bincount(self.dst, weights=w, minlength=self.n_out).to(torch.float64)
        return torch.bincount(self.src, weights=w, minlength=self.n_in).to(torch.float64)

    def crow_indices(self) -> torch.Tensor:
        """CSR row pointer of the ``n_out × n_in`` matrix (rows are output neurons)."""
        counts = self.in_degree()
        return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])

    # -- conversions ------------------------------------------------------------
    def to_scipy(self):
        """``scipy.sparse.csr_matrix`` of shape ``(n_out, n_in)``; ones where unweighted."""
        import scipy.sparse as sp

        # Copy: csr_matrix keeps the arrays it is given, so editing the matrix would edit the layer.
        data = (self.weight.detach().cpu().numpy().copy() if self.weight is not None
                else np.ones(self.num_edges, dtype=np.float32))
        return sp.csr_matrix((data, self.src.cpu().numpy().copy(), self.crow_indices().cpu().numpy()),
                             shape=(self.n_out, self.n_in))

    def to_dense(self) -> torch.Tensor:
        """Dense ``(n_out, n_in)`` matrix: weights, or a 0/1 mask when unweighted. For small layers."""
        w = self.weight.detach() if self.weight is not None else torch.ones(self.num_edges)
        out = torch.zeros(self.n_out, self.n_in, dtype=w.dtype, device=w.device)
        out[self.dst, self.src] = w
        return out

    def with_weight(self, weight) -> LayerGraph:
        """Same edges, new weights (``None`` drops them)."""
        g = self.copy()
        if weight is not None:
            weight = _as_weight(weight)
            if weight.shape != (self.num_edges,):
                raise TopologyError(f"weight has shape {tuple(weight.shape)}, expected ({self.num_edges},)")
        g.weight = weight
        return g

    def copy(self) -> LayerGraph:
        g = object.__new__(LayerGraph)
        g.n_in, g.n_out = self.n_in, self.n_out
        g.weight = None if self.weight is None else self.weight.detach().clone()
        if self._src is None:
            g._src = g._dst = None
            g._keys = (self._held_keys().clone(),)
        else:
            g._src, g._dst = self.src.clone(), self.dst.clone()
            g._keys = None
        return g

    def __eq__(self, other) -> bool:
        if not isinstance(other, LayerGraph):
            return NotImplemented
        if (self.n_in, self.n_out) != (other.n_in, other.n_out) or self.num_edges != other.num_edges:
            return False
        if not (torch.equal(self.src.cpu(), other.src.cpu()) and torch.equal(self.dst.cpu(), other.dst.cpu())):
            return False
        if (self.weight is None) != (other.weight is None):
            return False
        return self.weight is None or torch.equal(self.weight.detach().cpu(), other.weight.detach().cpu())

    __hash__ = None  # type: ignore[assignment]  # unhashable: mutable tensors inside (typeshed idiom)

    def __repr__(self) -> str:
        w = "" if self.weight is None else f", weight={self.weight.dtype}"
        return f"LayerGraph({self.n_in}->{self.n_out}, edges={self.num_edges}, density={self.density:.4g}{w})"


def _check_size(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) and not (
            isinstance(n, float) and math.isfinite(n) and n == int(n)):
        raise ParameterTypeError(f"{name} must be a positive integer, got {n!r}")
    if int(n) <= 0:
        raise ParameterError(f"{name} must be a positive integer, got {n!r}")
    return int(n)
