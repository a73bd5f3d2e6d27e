"""Entries of a score block at or above a threshold, in one read of the block (``mode="approx"`` growth).

``torch`` needs three passes over a block for this (``abs_``, ``ge``,
``nonzero``, about 55 ms for a 64 MB block on the 2-core development VM);
the numba kernel here counts the survivors of each row, then writes their
flat positions and ``|value|`` (two reads, no temporaries). NaN entries (the
masked pairs) never pass. Without numba, or with ``TOPO_CPU_KERNELS=torch``,
and for tensors off the CPU, the torch ops run instead; both give the same
positions in the same (row-major) order.
"""

from __future__ import annotations

import numpy as np
import torch

from ..nn import kernels

__all__ = ["above"]

_compiled = None


def _build():
    import numba
    from numba import njit, prange

    opts = dict(boundscheck=False, cache=True, nogil=True, parallel=True)  # no fastmath: NaN must fail `>=`

    @njit(**opts)
    def _count(x, tau, counts):
        rows, n = x.shape
        for r in prange(rows):
            c = 0
            for i in range(n):
                c += abs(x[r, i]) >= tau
            counts[r] = c

    @njit(**opts)
    def _collect(x, tau, starts, pos, val):
        rows, n = x.shape
        for r in prange(rows):
            p = starts[r]
            for i in range(n):
                v = abs(x[r, i])
                if v >= tau:
                    pos[p] = r * n + i
                    val[p] = v
                    p += 1

    return numba, _count, _collect


def _kernels():
    global _compiled
    if _compiled is None:
        threads = torch.get_num_threads()
        built = _build()
        built[0].get_num_threads()  # starting numba's OpenMP pool resets torch's thread count: put it back
        torch.set_num_threads(threads)
        _compiled = built
    return _compiled


def above(block: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions (int64, increasing) of the entries of ``block`` with ``|x| ≥ tau``, and those ``|x|``.

    Parameters
    ----------
    block : Tensor ``[rows, n]``
        Contiguous floating-point scores; NaN entries never pass.
    tau : float
        The threshold.

    Examples
    --------
    >>> pos, val = above(torch.tensor([[0.5, -2.0], [float("nan"), 1.0]]), 1.0)
    >>> pos.tolist(), val.tolist()
    ([1, 3], [2.0, 1.0])
    """
    if block.device.type != "cpu" or not block.is_contiguous() or block.dim() != 2 \
            or block.dtype not in (torch.float32, torch.float64) or not kernels.enabled():
        flat = block.reshape(-1).abs()
        pos = torch.ge(flat, tau).nonzero().squeeze(1)  # NaN >= tau is False
        return pos, flat[pos]
    numba, count, collect = _kernels()
    kernels._threads(numba)
    x = block.detach().numpy()
    counts = np.empty(x.shape[0], np.int64)
    count(x, x.dtype.type(tau), counts)
    starts = np.zeros(x.shape[0], np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    total = int(counts.sum())
    where = np.empty(total, np.int64)
    val = np.empty(total, x.dtype)
    if total:
        collect(x, x.dtype.type(tau), starts, where, val)
    return torch.from_numpy(where), torch.from_numpy(val)
