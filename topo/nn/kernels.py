"""topo's own CPU kernels for the two CSR products a sparse layer needs.

torch runs CSR products on CPU through MKL, which dispatches to generic code on
non-Intel CPUs and multiplies at 20–40 GFLOP/s on the development machine (an
AVX-512 AMD EPYC), a fifth of its dense GEMM. The kernels here are compiled by
numba (LLVM) for the host CPU and run the same products 1.4–2x faster:

* :func:`spmm` — ``out[r, :] = bias[r] + Σ_k values[k] · dense[col[k], :]`` for the
  rows ``r`` of a CSR matrix; with ``perm`` the values are read as
  ``values[perm[k]]``, so ``Wᵀ · G`` reads ``W``'s values in place (no permuted copy).
* :func:`sddmm` — ``out[k] = a[r, :] · b[col[k], :]`` at the stored entries only
  (the weight gradient of a sparse layer).

Both keep the batch dimension contiguous (``dense`` is ``(n, batch)`` row-major),
so every stored entry is one vectorised AXPY or dot over the batch; four entries
are folded per pass to cut loads and stores of the output row. Rows are split
into chunks of equal *edge* count, not equal row count, so evolved layers with
hub neurons still keep every thread busy. Threads follow
:func:`torch.get_num_threads`. Row-major operands (a lone layer's input and upstream
gradient) are transposed in 64-byte register tiles (:mod:`topo.nn._simd`) within the
product's own call (:func:`spmm_with_rows`); a row-major input gradient is stored the same way.

The kernels are optional: without numba (or with ``TOPO_CPU_KERNELS=torch`` in
the environment, or :func:`set_enabled` ``(False)``) the ``"csr"`` backend runs
torch's own CSR ops. Results agree to float rounding either way.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
import warnings

import numpy as np
import torch

_FLOATS = (torch.float32, torch.float64)

__all__ = ["available", "enabled", "set_enabled", "supports", "contiguous_rows", "spmm", "spmm_with_rows", "sddmm"]

_ENABLED = os.environ.get("TOPO_CPU_KERNELS", "numba").lower() != "torch"
_compiled = None


@functools.cache
def available() -> bool:
    """Whether numba imports (the kernels can be compiled); checked once per process."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        import numba  # noqa: F401
    except Exception as exc:  # e.g. a numba built for another numpy: fall back to torch's ops
        warnings.warn(f"numba is installed but does not import ({exc}); topo's csr backend uses torch's "
                      f"CSR ops instead", RuntimeWarning, stacklevel=2)
        return False
    return True


def enabled() -> bool:
    """Whether the ``"csr"`` backend uses these kernels on CPU (numba present and not switched off)."""
    return _ENABLED and available()


def set_enabled(flag: bool) -> bool:
    """Switch the kernels on or off for this process; return the previous setting.

    Examples
    --------
    >>> previous = set_enabled(False)     # torch's CSR ops from here on
    >>> _ = set_enabled(previous)
    """
    global _ENABLED
    previous, _ENABLED = _ENABLED, bool(flag)
    return previous


def supports(*tensors: torch.Tensor) -> bool:
    """Whether :func:`spmm`/:func:`sddmm` can run on these tensors (CPU, float32/float64, kernels on)."""
    return enabled() and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
                             for t in tensors)


def _build():
    import numba
    from numba import njit, prange

    from ._simd import tile_transpose

    serial = dict(fastmath=True, boundscheck=False, cache=True, nogil=True)
    opts = dict(serial, parallel=True)

    @njit(**serial)
    def _chunks(crow, n_chunks):
        # Row boundaries that give every chunk about the same number of stored entries.
        n, nnz = crow.size - 1, crow[-1]
        bounds = np.empty(n_chunks + 1, np.int64)
        for c in range(n_chunks + 1):
            bounds[c] = np.searchsorted(crow, nnz * c // n_chunks, side="left")
        bounds[0], bounds[n_chunks] = 0, n
        for c in range(1, n_chunks + 1):
            bounds[c] = min(max(bounds[c], bounds[c - 1]), n)
        return bounds

    @njit(**opts)
    def _spmm(crow, col, values, perm, use_perm, dense, bias, use_bias, out, out_t, trans, n_chunks, zero):
        # trans: write row r into column r of the (batch, rows) array out_t instead of out[r] (the
        # caller's row-major layout). Rows are summed into an L1 scratch tile of t rows, which is
        # stored by register-tile transposes; chunks start on tile rows, so no two threads store
        # into one cache line of out_t.
        bounds = _chunks(crow, n_chunks)
        width = dense.shape[1]
        t = 64 // dense.itemsize
        if trans:
            for c in range(1, n_chunks):
                bounds[c] = bounds[c] // t * t
        for c in prange(n_chunks):
            lo, hi = bounds[c], bounds[c + 1]
            scratch = np.empty((t if trans else 0, width), dense.dtype)
            for r in range(lo, hi):
                o = scratch[(r - lo) % t] if trans else out[r]
                b0 = bias[r] if use_bias else zero
                for j in range(width):
                    o[j] = b0
                k, end = crow[r], crow[r + 1]
                while k + 4 <= end:
                    if use_perm:
                        w0, w1, w2, w3 = values[perm[k]], values[perm[k + 1]], values[perm[k + 2]], values[perm[k + 3]]
                    else:
                        w0, w1, w2, w3 = values[k], values[k + 1], values[k + 2], values[k + 3]
                    x0, x1, x2, x3 = dense[col[k]], dense[col[k + 1]], dense[col[k + 2]], dense[col[k + 3]]
                    for j in range(width):
                        o[j] += w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
                    k += 4
                while k < end:
                    w = values[perm[k]] if use_perm else values[k]
                    x = dense[col[k]]
                    for j in range(width):
                        o[j] += w * x[j]
                    k += 1
                if trans and ((r - lo) % t == t - 1 or r == hi - 1):
                    g = r - (r - lo) % t          # first row of this tile
                    j = 0
                    if r - g + 1 == t:
                        while j + t <= width:
                            tile_transpose(scratch, 0, j, out_t, j, g)
                            j += t
                    for jj in range(j, width):
                        for i in range(r - g + 1):
                            out_t[jj, g + i] = scratch[i, jj]

    @njit(**opts)
    def _transpose(src, dst):
        # dst (m, n) = src (n, m)ᵀ in 64-byte register tiles (16 x 16 float32, 8 x 8 float64)
        # transposed by vector shuffles (topo.nn._simd). Each task takes one band of t rows of
        # src and a band of its columns, so every thread reads src as t sequential streams
        # (prefetch-friendly when src is not in cache); ragged edges are copied element-wise.
        n, m = src.shape
        t = 64 // src.itemsize
        bands = max(1, min(8, m // 1000))
        band = ((m + bands - 1) // bands + t - 1) // t * t
        for task in prange(((n + t - 1) // t) * bands):
            i0 = (task // bands) * t
            i1 = min(n, i0 + t)
            ja = (task % bands) * band
            je = min(m, ja + band)
            j0 = ja
            if i1 - i0 == t:
                while j0 + t <= je:
                    tile_transpose(src, i0, j0, dst, j0, i0)
                    j0 += t
            for j in range(j0, je):
                for i in range(i0, i1):
                    dst[j, i] = src[i, j]

    @njit(**opts)
    def _sddmm(crow, col, a, b, out, n_chunks, zero):
        # `zero` carries the dtype: a literal 0.0 (or ar[0] * 0) would make the sums float64.
        bounds = _chunks(crow, n_chunks)
        width = a.shape[1]
        for c in prange(n_chunks):
            for r in range(bounds[c], bounds[c + 1]):
                ar = a[r]
                k, end = crow[r], crow[r + 1]
                while k + 2 <= end:
                    x0, x1 = b[col[k]], b[col[k + 1]]
                    s0 = s1 = zero
                    for j in range(width):
                        s0 += ar[j] * x0[j]
                        s1 += ar[j] * x1[j]
                    out[k], out[k + 1] = s0, s1
                    k += 2
                if k < end:
                    x0 = b[col[k]]
                    s0 = zero
                    for j in range(width):
                        s0 += ar[j] * x0[j]
                    out[k] = s0

    @njit(**serial)  # the two kernels it calls run in parallel
    def _spmm_of_transposed(src, dense, crow, col, values, perm, use_perm, bias, use_bias, out, out_t, trans,
                            n_chunks, zero):
        # dense = srcᵀ, then the product: one dispatch from Python instead of two (≈ 10 µs each).
        _transpose(src, dense)
        _spmm(crow, col, values, perm, use_perm, dense, bias, use_bias, out, out_t, trans, n_chunks, zero)

    return numba, _spmm, _sddmm, _transpose, _spmm_of_transposed


def _kernels():
    global _compiled
    if _compiled is None:
        threads = torch.get_num_threads()
        built = _build()
        # Starting numba's OpenMP pool (get_num_threads starts it) resets the process's OpenMP
        # thread count, which torch reads as its own: start it now, then put back the user's setting.
        built[0].get_num_threads()
        torch.set_num_threads(threads)
        _compiled = built
    return _compiled


_thread_setting = threading.local()  # per calling thread: (torch's count when last set, count used)


def lazily(build):
    """A function that returns ``build()``, run on its first call after topo's numba thread pool has
    started (:func:`_kernels`); how the other kernel modules compile their kernels once."""
    built: list = []

    def get():
        if not built:
            _kernels()
            built.append(build())
        return built[0]
    return get


def _threads(numba) -> int:
    # numba's thread count is per calling thread; set it only when torch's count has changed
    # since this thread last set it (a numba.get_num_threads() call costs ≈ 1 µs of every kernel call).
    asked = torch.get_num_threads()
    last = getattr(_thread_setting, "last", None)
    if last is None or last[0] != asked:
        n = max(1, min(asked, numba.config.NUMBA_NUM_THREADS))
        if numba.get_num_threads() != n:
            numba.set_num_threads(n)
        _thread_setting.last = last = (asked, n)
    return last[1]


def _n_chunks(threads: int, rows: int) -> int:
    # A few chunks per thread absorb uneven row costs (cache misses, hubs) without tiny tasks.
    return max(1, min(rows, 4 * threads if threads > 1 else 1))


#: An index array of the kernels: a CPU tensor or a numpy array (CsrStructure.host()).
_Index = torch.Tensor | np.ndarray


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    # Index arrays may come as numpy views already (CsrStructure caches them: no per-call conversion).
    if isinstance(t, np.ndarray):
        return t
    return (t.detach() if t.requires_grad else t).numpy()


_EMPTY: dict[object, np.ndarray] = {}  # 1-element placeholders, keyed by dtype (1-D) or (dtype, 2) (2-D)


def _empty2(dtype) -> np.ndarray:
    if (dtype, 2) not in _EMPTY:
        _EMPTY[dtype, 2] = np.zeros((1, 1), dtype)
    return _EMPTY[dtype, 2]


@functools.cache
def _zero(dtype) -> np.generic:
    # The kernels' accumulator start, in the output's dtype (a Python 0.0 would type them float64).
    return dtype.type(0)


def _empty(dtype) -> np.ndarray:
    if dtype not in _EMPTY:
        _EMPTY[dtype] = np.zeros(1, dtype)
    return _EMPTY[dtype]


def _transposable(d: torch.Tensor) -> bool:
    # A (non-contiguous) 2-D transposed view of a row-major float CPU array, which the tile kernel reads.
    n, m = d.shape
    s0, s1 = d.stride()
    return (s0 == 1 and s1 >= n and n > 1 and m > 1 and d.dtype in _FLOATS and d.device.type == "cpu"
            and enabled())


def contiguous_rows(d: torch.Tensor) -> torch.Tensor:
    """``d`` as a tensor of the same shape whose rows are contiguous (what the kernels read).

    A contiguous ``d`` is returned as is. A transposed view of a row-major array
    (``x.t()`` for a ``(batch, n)`` input: the layout every caller of ``nn.Linear``
    passes) is transposed by a parallel register-tile kernel, 2–4x faster than
    torch's single-threaded transposing copy; any other layout (column slices, broadcast
    gradients such as ``y.sum()``'s) is copied by torch.

    Examples
    --------
    >>> x = torch.arange(6.).reshape(2, 3)
    >>> contiguous_rows(x.t()).is_contiguous(), torch.equal(contiguous_rows(x.t()), x.t())
    (True, True)
    """
    if d.is_contiguous() or d.dim() != 2:
        return d.contiguous()
    n, m = d.shape
    if _transposable(d):
        numba, _, _, k_transpose = _kernels()[:4]
        out = torch.empty((n, m), dtype=d.dtype)
        _threads(numba)
        k_transpose(_np(d.t()), out.numpy())
        return out
    return d.contiguous()


def spmm(crow: _Index, col: _Index, values: torch.Tensor, dense: torch.Tensor,
         bias: torch.Tensor | None = None, perm: _Index | None = None,
         transpose_out: bool = False) -> torch.Tensor:
    """``W @ dense (+ bias[:, None])`` for a CSR ``W`` given by ``crow``/``col``/``values``.

    ``dense`` is ``(n_cols, batch)`` in any layout (see :func:`contiguous_rows`);
    returns a new ``(n_rows, batch)`` tensor, contiguous, or with ``transpose_out``
    the transposed view of a contiguous ``(batch, n_rows)`` tensor (the kernel
    writes that layout directly: no transposing copy). With ``perm``, entry ``k``
    of ``W`` has value ``values[perm[k]]``. The index arrays (``crow``, ``col``,
    ``perm``) may be CPU tensors or numpy arrays.

    Examples
    --------
    >>> crow, col = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1])
    >>> spmm(crow, col, torch.tensor([2., 3., 4.]), torch.eye(2))
    tensor([[0., 2.],
            [3., 4.]])
    """
    return spmm_with_rows(crow, col, values, dense, bias, perm, transpose_out)[0]


def spmm_with_rows(crow: _Index, col: _Index, values: torch.Tensor, dense: torch.Tensor,
                   bias: torch.Tensor | None = None, perm: _Index | None = None,
                   transpose_out: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`spmm`, also returning ``contiguous_rows(dense)``: ``(product, rows)``.

    A transposed view of a row-major ``dense`` (a layer's ``x.t()``) is transposed
    and multiplied in one kernel call; a layer saves ``rows`` for its backward pass.

    Examples
    --------
    >>> x = torch.tensor([[1., 2.], [3., 4.], [5., 6.]])     # (batch 3, n_cols 2), row-major
    >>> out, rows = spmm_with_rows(torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1]), torch.ones(3), x.t())
    >>> out.tolist(), torch.equal(rows, x.t()), rows.is_contiguous()
    ([[2.0, 4.0, 6.0], [3.0, 7.0, 11.0]], True, True)
    """
    numba, k_spmm, _, _, k_fused = _kernels()
    rows, width = len(crow) - 1, dense.shape[1]
    out_t = torch.empty((width, rows) if transpose_out else (rows, width), dtype=dense.dtype)
    out = out_t.t() if transpose_out else out_t
    src = None
    if dense.is_contiguous():
        pass
    elif rows and width and dense.dim() == 2 and _transposable(dense):
        # a transposed row-major dense: transposed into `dense` by the fused kernel below
        src, dense = _np(dense.t()), torch.empty(dense.shape, dtype=dense.dtype)
    else:
        dense = contiguous_rows(dense)
    if rows == 0 or width == 0:
        return out, dense
    o = out_t.numpy()
    crow, col = _np(crow), _np(col)
    dummy = _empty2(o.dtype)
    args = (crow, col, _np(values), _np(perm) if perm is not None else _empty(crow.dtype), perm is not None,
            _np(dense), _np(bias) if bias is not None else _empty(o.dtype), bias is not None,
            dummy if transpose_out else o, o if transpose_out else dummy, transpose_out,
            _n_chunks(_threads(numba), rows), _zero(o.dtype))
    if src is None:
        k_spmm(*args)
    else:
        k_fused(src, *args[5:6], *args[:5], *args[6:])
    return out, dense


def sddmm(crow: _Index, col: _Index, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a @ bᵀ)`` sampled at the stored entries of a CSR structure, in CSR order.

    ``a`` is ``(n_rows, batch)``, ``b`` is ``(n_cols, batch)``, in any layout (see
    :func:`contiguous_rows`); returns a vector of one value per stored entry.

    Examples
    --------
    >>> crow, col = torch.tensor([0, 1, 3]), torch.tensor([1, 0, 1])
    >>> sddmm(crow, col, torch.tensor([[1., 2.], [3., 4.]]), torch.tensor([[1., 0.], [0., 1.]]))
    tensor([2., 3., 4.])
    """
    numba, _, k_sddmm = _kernels()[:3]
    a = a if a.is_contiguous() else contiguous_rows(a)
    b = b if b.is_contiguous() else contiguous_rows(b)
    out = torch.empty(len(col), dtype=a.dtype)
    if len(col) == 0:
        return out
    if a.shape[1] == 0:
        return out.zero_()
    o = out.numpy()
    k_sddmm(_np(crow), _np(col), _np(a), _np(b), o, _n_chunks(_threads(numba), len(crow) - 1), _zero(o.dtype))
    return out
