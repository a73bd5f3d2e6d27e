"""A drop-in ``nn.Dropout`` whose CPU mask is a hash of the element's position, drawn in one pass.

On CPU, ``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``
(≈ 9 ns per element here), single-threaded, then multiplies; at the sizes of a
sparse MLP the draw is a large share of a training step (issue 4 measured 28 %).
:class:`Dropout` instead keeps element ``i`` (its row-major position) when the
high 32 bits of ``splitmix64(seed + (i + 1)·γ)`` reach ``p·2³²`` — a counter-based
Bernoulli(1 − p) stream, SplitMix64 (Steele, Lea & Flood 2014) — and writes
``x·keep/(1 − p)`` in the same parallel numba pass. Backward regenerates the mask
from the seed, so nothing but the seed is saved, and the mask does not depend on
the tensors' memory layout. The seed is one draw from torch's global generator per
call, so ``torch.manual_seed`` makes masks repeatable as with ``nn.Dropout``.
Without numba, on CUDA, in eval mode, for ``p = 0`` and for float16/bfloat16 it is
``x * (rand >= p) / (1 − p)`` or plain ``nn.Dropout``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import kernels

__all__ = ["Dropout"]

_compiled = None


def _build():
    import numba
    from numba import njit, prange

    serial = dict(fastmath=True, boundscheck=False, cache=True, nogil=True)
    opts = dict(serial, parallel=True)
    gamma, m1, m2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    s30, s27, s31, s32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)

    @njit(**serial)
    def _kept(seed, i, thr):
        # all uint64: numba would promote a uint64/int64 mix to float64
        z = seed + np.uint64(i + 1) * gamma
        z = (z ^ (z >> s30)) * m1
        z = (z ^ (z >> s27)) * m2
        return ((z ^ (z >> s31)) >> s32) >= thr

    @njit(**opts)
    def _flat(x, out, seed, thr, scale, zero, n_chunks):
        # x, out: 1-D; element i is logical position i
        n = x.size
        step = (n + n_chunks - 1) // n_chunks
        for c in prange(n_chunks):
            for i in range(c * step, min(n, (c + 1) * step)):
                out[i] = x[i] * (scale if _kept(seed, i, thr) else zero)  # a select, not a branch

    @njit(**opts)
    def _transposed(xt, out_t, seed, thr, scale, zero):
        # xt, out_t: (n1, n0) storage of a (n0, n1) tensor x; x[b, j] = xt[j, b] is logical position b·n1 + j
        n1, n0 = xt.shape
        for j in prange(n1):
            for b in range(n0):
                out_t[j, b] = xt[j, b] * (scale if _kept(seed, b * n1 + j, thr) else zero)

    return numba, _flat, _transposed


def _kernels():
    global _compiled
    if _compiled is None:
        kernels._kernels()  # numba's thread pool started the way topo.nn.kernels starts it
        _compiled = _build()
    return _compiled


def _masked(t: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """``t · keep / (1 − p)`` with the position-hash mask of ``seed``; same layout as ``t`` where it can."""
    numba, flat, transposed = _kernels()
    thr, scale = np.uint64(round(p * 2.0**32)), 1.0 / (1.0 - p)
    dt = np.float32 if t.dtype == torch.float32 else np.float64
    s = np.uint64(seed)
    threads = kernels._threads(numba)
    if t.dim() == 2 and not t.is_contiguous() and t.t().is_contiguous():
        out_t = torch.empty_like(t.t())
        transposed(kernels._np(t.t()), out_t.numpy(), s, thr, dt(scale), dt(0))
        return out_t.t()
    t = t.contiguous()
    out = torch.empty_like(t)
    flat(kernels._np(t).reshape(-1), out.numpy().reshape(-1), s, thr, dt(scale), dt(0),
         max(1, min(t.numel() // 16384, 4 * threads)))
    return out


class _HashDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
        ctx.p, ctx.seed = p, seed
        return _masked(x, p, seed)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return _masked(g, ctx.p, ctx.seed), None, None


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper CPU mask: ``x · keep / (1 − p)``, ``keep`` hashed from the position.

    Draws one seed per call from torch's global RNG, like ``nn.Dropout`` draws its mask
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
        if x.dtype in (torch.float32, torch.float64) and kernels.enabled() and x.numel() > 0:
            seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
            return _HashDropout.apply(x, float(self.p), seed)
        keep = torch.rand_like(x) >= self.p
        scale = keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x.mul_(scale) if self.inplace else x * scale
