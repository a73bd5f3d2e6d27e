"""The ``k`` float32 weights nearest zero, per sign or overall, in three passes (a radix select).

Magnitude pruning needs the positions of the ``k`` smallest ``|w|`` among the
non-negative weights and among the negative ones (SET), or overall (RigL),
ties to the lower position: the set a stable sort's first ``k`` gives. Here the
``|w|`` bits of a float32 (non-negative floats order as their bit patterns) go
through two 16-bit histograms, which find the ``k``-th value exactly, and one
branch-free pass writes the selected positions in increasing order. Unlike a
partition (``np.partition``: 3-10x slower when many weights tie, as the zeros of
just-born edges do) the cost does not depend on the values.

A numba kernel (:func:`topo.graph.keyset.compiled` switches it with the other
walks); without it :func:`smallest` returns ``None`` and the caller takes its
numpy path.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..graph.keyset import compiled

__all__ = ["smallest"]


@functools.cache
def _kernel():
    from numba import njit

    @njit(cache=True, nogil=True, boundscheck=False)
    def select(bits, per_sign, k, out):  # pragma: no cover - compiled
        # Class of each weight: 0 non-negative (-0.0 included), 1 negative (NaN: in neither). Without
        # per_sign every weight is class 0. The class is computed, not branched on: signs are random.
        # Returns the count written, or -1 on a NaN without per_sign (the caller then ranks by a sort,
        # which puts NaN last).
        n = bits.shape[0]
        sign = np.uint32(1 if per_sign else 0)
        hist = np.zeros(2 * 65536, dtype=np.int32)
        nans = 0
        for i in range(n):
            b = bits[i]
            a = b & np.uint32(0x7FFFFFFF)
            c = (b >> np.uint32(31)) & np.uint32(a != 0) & sign
            ok = a <= np.uint32(0x7F800000)
            nans += 1 - ok
            hist[(c << np.uint32(16)) | (a >> np.uint32(16))] += ok
        if nans and not per_sign:
            return -1
        hi = np.full(2, -1, dtype=np.int64)
        need = np.zeros(2, dtype=np.int64)  # how many to take from the threshold's high bin
        for c in range(2):
            if k[c] <= 0:
                continue
            acc = 0
            for h in range(65536):
                if acc + hist[c * 65536 + h] >= k[c]:
                    hi[c] = h
                    need[c] = k[c] - acc
                    break
                acc += hist[c * 65536 + h]
        low = np.zeros(2 * 65536, dtype=np.int32)
        for i in range(n):
            b = bits[i]
            a = b & np.uint32(0x7FFFFFFF)
            c = (b >> np.uint32(31)) & np.uint32(a != 0) & sign
            hit = (np.int64(a >> np.uint32(16)) == hi[c]) & (a <= np.uint32(0x7F800000))
            low[(c << np.uint32(16)) | (a & np.uint32(0xFFFF))] += hit
        thr = np.full(2, -1, dtype=np.int64)  # the k-th value's bits; -1: take none
        ties = np.zeros(2, dtype=np.int64)  # how many weights equal to the threshold are taken
        for c in range(2):
            if hi[c] < 0:
                continue
            acc = 0
            for lo in range(65536):
                if acc + low[c * 65536 + lo] >= need[c]:
                    thr[c] = (hi[c] << 16) | lo
                    ties[c] = need[c] - acc
                    break
                acc += low[c * 65536 + lo]
        o = 0
        for i in range(n):
            b = bits[i]
            a = np.int64(b & np.uint32(0x7FFFFFFF))
            c = (b >> np.uint32(31)) & np.uint32(a != 0) & sign
            t = thr[c]
            eq = (a == t) & (ties[c] > 0)
            take = ((a < t) | eq) & (a <= 0x7F800000)
            ties[c] -= eq
            out[o] = i
            o += take
        return o

    return select


def smallest(weight: torch.Tensor, per_sign: bool, k_pos: int, k_neg: int = 0) -> torch.Tensor | None:
    """Increasing positions of the ``k_pos`` smallest non-negative weights and the ``k_neg`` negative
    ones closest to zero (``per_sign``), or of the ``k_pos`` smallest ``|w|`` (not ``per_sign``), ties
    to the lower position; ``None`` where no kernel applies (not float32 on CPU, no numba, or NaN
    weights without ``per_sign``).

    Examples
    --------
    >>> w = torch.tensor([0.1, 0.2, 0.3, -0.9, -0.8])
    >>> smallest(w, True, 1, 1).tolist(), smallest(w, False, 2).tolist()
    ([0, 4], [0, 1])
    """
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or weight.dim() != 1 or not compiled():
        return None
    try:
        kernel = _kernel()
    except ImportError:
        return None
    bits = np.ascontiguousarray(weight.detach().numpy()).view(np.uint32)
    out = np.empty(k_pos + k_neg + 1, dtype=np.int64)  # a spare slot: the kernel writes before it decides
    n = kernel(bits, bool(per_sign), np.array([k_pos, k_neg if per_sign else 0], dtype=np.int64), out)
    if n < 0:
        return None
    if n != k_pos + (k_neg if per_sign else 0):
        raise AssertionError(f"magnitude selection wrote {n} positions, expected {k_pos + k_neg}")
    return torch.from_numpy(out[:n])
