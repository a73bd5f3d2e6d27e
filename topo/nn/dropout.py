"""A drop-in ``nn.Dropout`` whose CPU mask is a hash of the element's position, drawn in one pass.

On CPU, ``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``
(≈ 9 ns per element here), single-threaded, then multiplies; at the sizes of a
sparse MLP the draw is a large share of a training step (issue 4 measured 28 %).
:class:`Dropout` instead keeps element ``i`` (its row-major position) when its
uniform in topo's counter-based stream (:mod:`topo.nn._counter_rng`, the one the
fused RBM kernels sample with) is at least ``p``, and writes ``x·keep/(1 − p)`` in
the same parallel numba pass. Backward regenerates the mask from the stream's two
keys, so nothing else is saved, and the mask does not depend on the tensors' memory
layout. The keys are drawn from torch's global generator per call, so
``torch.manual_seed`` makes masks repeatable as with ``nn.Dropout``.
Without numba, on CUDA, in eval mode, for ``p = 0`` and for float16/bfloat16 it is
``x * (rand >= p) / (1 − p)`` or plain ``nn.Dropout``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import kernels
from .cd_kernels import keys_from

__all__ = ["Dropout"]


def _build():
    from numba import njit, prange

    from ._counter_rng import uniform

    opts = dict(parallel=True, fastmath=True, boundscheck=False, cache=True, nogil=True)
    U = np.uint32

    @njit(**opts)
    def _flat(x, out, k0, k1, p, scale, zero, n_chunks):
        # x, out: 1-D; element i is logical position i
        n = x.size
        step = (n + n_chunks - 1) // n_chunks
        for c in prange(n_chunks):
            for i in range(c * step, min(n, (c + 1) * step)):
                out[i] = x[i] * (scale if uniform(U(i), k0, k1) >= p else zero)  # a select, not a branch

    @njit(**opts)
    def _transposed(xt, out_t, k0, k1, p, scale, zero):
        # xt, out_t: (n1, n0) storage of a (n0, n1) tensor x; x[b, j] = xt[j, b] is logical position b·n1 + j
        n1, n0 = xt.shape
        for j in prange(n1):
            for b in range(n0):
                out_t[j, b] = xt[j, b] * (scale if uniform(U(b * n1 + j), k0, k1) >= p else zero)

    return _flat, _transposed


_kernels = kernels.lazily(_build)


def _masked(t: torch.Tensor, p: float, keys: np.ndarray) -> torch.Tensor:
    """``t · keep / (1 − p)`` with the mask of stream ``keys``; same layout as ``t`` where it can."""
    flat, transposed = _kernels()
    dt = np.float32 if t.dtype == torch.float32 else np.float64
    k0, k1, scale, zero = keys[0], keys[1], dt(1.0 / (1.0 - p)), dt(0)
    threads = kernels._threads(kernels._kernels()[0])
    if t.dim() == 2 and not t.is_contiguous() and t.t().is_contiguous():
        out_t = torch.empty_like(t.t())
        transposed(kernels._np(t.t()), out_t.numpy(), k0, k1, np.float32(p), scale, zero)
        return out_t.t()
    t = t.contiguous()
    out = torch.empty_like(t)
    flat(kernels._np(t).reshape(-1), out.numpy().reshape(-1), k0, k1, np.float32(p), scale, zero,
         max(1, min(t.numel() // 16384, 4 * threads)))
    return out


class _HashDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float, keys: np.ndarray) -> torch.Tensor:
        ctx.p, ctx.keys = p, keys
        return _masked(x, p, keys)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return _masked(g, ctx.p, ctx.keys), None, None


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper CPU mask: ``x · keep / (1 − p)``, ``keep`` hashed from the position.

    Draws two stream keys per call from torch's global RNG, like ``nn.Dropout`` draws its mask
    (``torch.manual_seed`` makes it repeatable); ``inplace=True`` is honoured on the
    paths that keep torch's ops and otherwise returns a new tensor.

    Examples
    --------
    >>> import torch
    >>> d = Dropout(0.5)
    >>> y = d(torch.ones(1000))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or not x.is_floating_point():
            return super().forward(x)
        if self.p == 1.0:
            return x * 0.0
        if x.dtype in (torch.float32, torch.float64) and kernels.enabled() and 0 < x.numel() < 2**32:
            return _HashDropout.apply(x, float(self.p), keys_from(None, 1))
        keep = torch.rand_like(x) >= self.p
        scale = keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x.mul_(scale) if self.inplace else x * scale
