"""Autograd functions of a sparse linear layer, one per backend.

Every function computes ``y = x · Wᵀ + b`` for a weight ``W`` of shape
``(n_out, n_in)`` given only by its edge values (``values``, aligned with a
:class:`~topo.LayerGraph`'s ``(dst, src)`` order) and a cached edge structure.

* :func:`csr_linear` — CSR products: topo's own kernels on CPU
  (:mod:`topo.nn.kernels`, torch's MKL ops as the fallback), cuSPARSE on CUDA. Backward
  computes ``dx`` through the transposed structure (a cached permutation of the
  values, no re-sort per step) and ``dvalues`` by a sampled dense-dense product
  at the edges only. Nothing of size ``n_in · n_out`` is allocated.
* :func:`dense_linear` — scatter the values into a dense matrix and call
  :func:`torch.nn.functional.linear`; the reference, and fast for small layers.
* :func:`torch_sparse_linear` — ``torch_sparse.SparseTensor`` products, when the
  optional extra is installed.

Layout: :func:`csr_linear` works on transposed operands (``xᵀ`` of shape
``(n_in, batch)``, row-major), which is what MKL/cuSPARSE run fastest, and returns
``y`` as a transposed *view* of a contiguous ``(n_out, batch)`` result. Element-wise
ops keep that layout, so in a stack of layers the next layer's ``xᵀ`` is already
contiguous and no transpose copy is paid; gradients flow back the same way.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

from ..graph.keyset import transpose
from . import kernels

if TYPE_CHECKING:
    import numpy as np

    _Host = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

__all__ = ["CsrStructure", "csr_linear", "dense_linear", "torch_sparse_linear", "index_dtype_for",
           "LOW_PRECISION"]

_INT32_MAX = 2**31 - 1
# CPU only: once the dense operand of a CSR product outgrows the caches, MKL's random row reads
# miss; multiplying 32 batch columns at a time keeps each block's rows cached (measured 1.8x at
# 20000 -> 20000, batch 128; no gain below ~8 MiB, so smaller operands run in one call).
# Single-threaded only: with two MKL threads the 32-column blocks are too thin to split and the
# blocked product ran 4x slower than one call (156 ms vs 38 ms at 20000 -> 20000).
_BLOCK_BYTES = 8 * 2**20
_BLOCK_COLS = 32


def index_dtype_for(n_in: int, n_out: int, num_edges: int) -> torch.dtype:
    """int32 where every index and row pointer fits (half the memory of int64), else int64."""
    return torch.int32 if max(n_in, n_out, num_edges) < _INT32_MAX else torch.int64


_beta_notice_seen = False


def _csr(crow, col, values, shape):
    # check_invariants=False: the structure is built by us from a validated LayerGraph;
    # checking it every step would cost a pass over the indices.
    global _beta_notice_seen
    if _beta_notice_seen:
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)
    # torch prints a one-time "beta" notice at the process's first CSR tensor (every CSR op used here
    # is stable API): silence that one call only, never the user's warning filters.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state",
                                category=UserWarning)
        out = torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)
    _beta_notice_seen = True
    return out


class CsrStructure:
    """The CSR structure of one layer and of its transpose, on one device.

    Built once per topology (and device); per training step only the values are
    permuted (``values[perm]`` gives the values of ``Wᵀ`` in CSR order).

    Parameters
    ----------
    src, dst : int64 tensors
        Edge endpoints sorted by ``(dst, src)`` (a LayerGraph's order).
    n_in, n_out : int
    index_dtype : torch.dtype, optional
        int32 or int64; default :func:`index_dtype_for`.
    """

    __slots__ = ("n_in", "n_out", "num_edges", "device", "crow", "col", "perm", "crow_t", "col_t",
                 "src", "dst", "_ts_base", "_host")

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, n_in: int, n_out: int,
                 index_dtype: torch.dtype | None = None) -> None:
        e = int(src.numel())
        idt = index_dtype or index_dtype_for(n_in, n_out, e)
        self.n_in, self.n_out, self.num_edges, self.device = n_in, n_out, e, src.device
        self.src, self.dst = src, dst
        zero = torch.zeros(1, dtype=torch.int64, device=src.device)
        self.crow = torch.cat([zero, torch.cumsum(torch.bincount(dst, minlength=n_out), 0)]).to(idt)
        self.col = src.to(idt)
        # Wᵀ in CSR order = edges sorted by (src, dst). The perm is kept in the index dtype too
        # (index_select takes int32): an int64 permutation would cost 4 more bytes per edge for the
        # model's whole life (issue 8, memory-lean large models).
        fast = transpose(src, dst, n_in, idt)  # one counting sort by src: O(E), ~3x the sort below
        if fast is not None:
            self.crow_t, self.perm, self.col_t = fast
        else:
            perm = torch.sort(src, stable=True).indices  # stable: each source keeps its dst ascending
            self.crow_t = torch.cat([zero, torch.cumsum(torch.bincount(src, minlength=n_in), 0)]).to(idt)
            self.col_t = dst[perm].to(idt)
            self.perm = perm.to(idt)
        self._ts_base: Any = None  # torch_sparse.SparseTensor (the optional extra ships no types)
        self._host: _Host | None = None

    def host(self) -> _Host:
        """numpy views of ``(crow, col, crow_t, col_t, perm)`` for the CPU kernels, made once."""
        if self._host is None:
            self._host = (self.crow.numpy(), self.col.numpy(), self.crow_t.numpy(), self.col_t.numpy(),
                          self.perm.numpy())
        return self._host

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """``W`` as a CSR tensor of shape ``(n_out, n_in)``."""
        return _csr(self.crow, self.col, values, (self.n_out, self.n_in))

    def matrix_t(self, values: torch.Tensor) -> torch.Tensor:
        """``Wᵀ`` as a CSR tensor of shape ``(n_in, n_out)``."""
        return _csr(self.crow_t, self.col_t, values.index_select(0, self.perm), (self.n_in, self.n_out))


def _spmm(w: torch.Tensor, dense: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``w @ dense (+ bias[:, None])`` for a CSR ``w`` and a row-major ``dense``; cache-blocked on CPU."""
    cols = dense.shape[1]
    if (dense.device.type != "cpu" or cols <= _BLOCK_COLS or torch.get_num_threads() > 1
            or dense.numel() * dense.element_size() <= _BLOCK_BYTES):
        out = w @ dense
    else:
        out = dense.new_empty(w.shape[0], cols)
        for j in range(0, cols, _BLOCK_COLS):
            out[:, j:j + _BLOCK_COLS] = w @ dense[:, j:j + _BLOCK_COLS]  # strided view, read in place
    # A separate in-place add (one pass over the output) instead of addmm's broadcast input:
    # same speed on CPU, and no reliance on broadcasting inside the CUDA sparse addmm.
    return out.add_(bias.unsqueeze(1)) if bias is not None else out


def _edge_grad(st: CsrStructure, values: torch.Tensor, gyt: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    """dW at the edges only, ``(dyᵀ · x)[dst, src]``, through torch's ``sampled_addmm``."""
    # mat2 = x as a column-major view (rows of xᵀ contiguous) makes every edge's dot product run over
    # contiguous memory. Writing into `out=` (a fresh zeroed value buffer; beta=0 still reads it) skips
    # the copy of the structure that sampled_addmm makes otherwise, and hands autograd a plain tensor.
    gv = torch.zeros_like(values)
    s = _csr(st.crow, st.col, gv, (st.n_out, st.n_in))
    torch.sparse.sampled_addmm(s, gyt, xt.t(), beta=0.0, out=s)
    return gv


#: Parameter/input dtypes that are multiplied in float32 (no CPU kernel, no MKL/cuSPARSE CSR product
#: reads them, and their 8-bit mantissas would lose most of a layer's sums).
LOW_PRECISION = (torch.float16, torch.bfloat16)


def _up(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in LOW_PRECISION else t


class _CsrLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None, st: CsrStructure,
                out_dtype: torch.dtype | None) -> torch.Tensor:
        # float16/bfloat16 operands are read into float32 and the products accumulate in float32;
        # only the result is rounded to out_dtype (the parameters stay in their own dtype).
        ctx.dtypes = (x.dtype, values.dtype, bias.dtype if bias is not None else None)
        x, values, bias = _up(x), _up(values), None if bias is None else _up(bias)
        fast = kernels.supports(x, values)
        if fast:  # any layout of x: a transposed view is free, a row-major x is transposed in the same call
            crow, col = st.host()[:2]
            yt, xt = kernels.spmm_with_rows(crow, col, values, x.t(), bias)
        else:
            xt = x.t().contiguous()                   # free when x is a transposed view
            yt = _spmm(st.matrix(values), xt, bias)
        ctx.st = st
        ctx.has_bias = bias is not None
        # The input gradient is returned in the input's own layout, so neither autograd's
        # AccumulateGrad (for a leaf x) nor the op that made x has to copy it into shape.
        ctx.x_row_major = x.stride(-1) == 1 and not x.t().is_contiguous()
        ctx.save_for_backward(xt, values)
        y = yt.t()
        return y if out_dtype is None or y.dtype == out_dtype else y.to(out_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xt, values = ctx.saved_tensors
        st: CsrStructure = ctx.st
        gy = gy.to(xt.dtype)                          # a float16/bfloat16 upstream gradient, in float32
        fast = kernels.supports(gy, xt, values)
        gx = gv = gb = None
        if ctx.needs_input_grad[0]:
            if fast:  # Wᵀ · dYᵀ reading W's values through the cached permutation, in place; a row-major
                # gy is transposed in the same kernel call (free when gy is a transposed view)
                crow_t, col_t, perm = st.host()[2:]
                gx, gyt = kernels.spmm_with_rows(crow_t, col_t, values, gy.t(), perm=perm,
                                                 transpose_out=ctx.x_row_major)
                gx = gx.t()
            else:
                gyt = gy.t().contiguous()
                gx = _spmm(st.matrix_t(values), gyt).t()
        else:
            gyt = kernels.contiguous_rows(gy.t()) if fast else gy.t().contiguous()
        if ctx.needs_input_grad[1]:
            gv = kernels.sddmm(*st.host()[:2], gyt, xt) if fast else _edge_grad(st, values, gyt, xt)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gyt.sum(1)
        dx, dv, db = ctx.dtypes
        return (gx.to(dx) if gx is not None else None, gv.to(dv) if gv is not None else None,
                gb.to(db) if gb is not None else None, None, None)


def csr_linear(x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None,
               structure: CsrStructure, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x · Wᵀ + b`` with ``W`` in CSR form; ``x`` is ``(batch, n_in)`` in any layout.

    Returns a ``(batch, n_out)`` tensor that is a transposed view (see module doc).
    float16/bfloat16 ``x``, ``values`` or ``bias`` are multiplied in float32; the
    result has ``out_dtype`` (default: the dtype of ``x``), each gradient the dtype
    of its input.
    """
    return _CsrLinear.apply(x, values, bias, structure, out_dtype or x.dtype)


def dense_linear(x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None,
                 src: torch.Tensor, dst: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """Masked-dense reference: scatter ``values`` into a dense ``(n_out, n_in)`` matrix, then ``F.linear``.

    Autograd of the scatter gathers the dense weight gradient back at the edges, so
    entries off the edges never receive a value. Allocates ``n_in · n_out``.
    """
    w = values.new_zeros(n_out, n_in).index_put((dst, src), values)
    return torch.nn.functional.linear(x, w, bias)


def torch_sparse_linear(x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None,
                        structure: CsrStructure) -> torch.Tensor:
    """``x · Wᵀ + b`` with ``torch_sparse.matmul`` (needs the ``torch-sparse`` extra).

    The ``SparseTensor`` (with its transposed-structure cache) is built once per
    structure; each call only swaps in the current values.
    """
    with warnings.catch_warnings():
        # torch_sparse warns whenever a storage is built without a layout, which its own SparseTensor
        # constructor and set_value never pass; it says nothing about this use.
        warnings.filterwarnings("ignore", message="`layout` argument unset", category=UserWarning)
        base = structure._ts_base
        if base is None:
            from torch_sparse import SparseTensor

            base = SparseTensor(rowptr=structure.crow.to(torch.int64), col=structure.col.to(torch.int64),
                                value=None, sparse_sizes=(structure.n_out, structure.n_in), is_sorted=True,
                                trust_data=True)
            base.fill_cache_()
            structure._ts_base = base
        w = base.set_value(values)  # values are in row-major (CSR) order already
        yt = w.matmul(x.t().contiguous())  # free when x is a transposed view
    if bias is not None:
        yt = yt + bias.unsqueeze(1)
    return yt.t()
