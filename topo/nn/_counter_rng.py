"""topo's counter-based uniform stream for numba kernels: ``uniform(i, k0, k1)`` in ``[0, 1)``.

The uniform of element ``i`` is a keyed 32-bit hash of ``i`` (two rounds of Wellons'
``lowbias32`` mixer, each after XOR with one of two 32-bit keys), its top 24 bits scaled
to ``[0, 1)``: any element's value is known without a sequential state, so parallel
kernels give the same numbers whatever the thread count, and the uint32 arithmetic
vectorises. Used by the fused CD kernels (:mod:`topo.nn.cd_kernels`) and by
:class:`topo.nn.Dropout`; imported only where they compile, so numba stays optional.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["uniform"]

F, U = np.float32, np.uint32
_inline: dict[str, Any] = dict(fastmath={"nnan", "ninf", "nsz", "contract", "reassoc", "afn"}, error_model="numpy",
               inline="always", boundscheck=False, cache=True)


@njit(**_inline)
def _mix(x):
    x = U(x ^ (x >> U(16)))
    x = U(x * U(0x21F0AAAD))
    x = U(x ^ (x >> U(15)))
    x = U(x * U(0x735A2D97))
    return U(x ^ (x >> U(15)))


@njit(**_inline)
def uniform(i, k0, k1):
    """The uniform of element ``i`` (uint32) of the stream keyed ``(k0, k1)``."""
    return F(_mix(U(_mix(U(i ^ k0)) ^ k1)) >> U(8)) * F(5.9604644775390625e-08)  # 2**-24
