"""The numba kernels behind :mod:`topo.graph.keyset`: walks over sorted key arrays.

Each is a single pass (or a galloping search) with sequential memory access; where the
outcome of a comparison is random, it is added rather than branched on. Compiled on first
use and cached on disk (``cache=True``); ``None`` without numba.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

__all__ = ["kernels"]


@functools.cache
def kernels():
    """The numba kernels, compiled on first use (and cached on disk), or ``None`` without numba."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        from numba import njit
    except Exception:  # noqa: BLE001 - a numba that does not import: numpy does the same work
        return None
    opts = dict(cache=True, nogil=True, boundscheck=False)

    @njit(**opts)
    def locate(keys, queries, out):  # pragma: no cover - compiled
        # out[j] = first i with keys[i] >= queries[j]; queries non-decreasing, so i only moves forward.
        n = keys.shape[0]
        m = queries.shape[0]
        if 4 * m >= n:
            # Dense queries: a branch-free merge (the comparison's outcome is added, not branched on:
            # random outcomes would mispredict about every other step).
            i = 0
            j = 0
            while i < n and j < m:
                t = keys[i] < queries[j]
                out[j] = i
                i += t
                j += 1 - t
            while j < m:
                out[j] = n
                j += 1
            return
        i = 0
        for j in range(m):
            q = queries[j]
            if i < n and keys[i] < q:
                lo, step = i, 1  # keys[lo] < q: gallop to a bound hi with keys[hi] >= q (or hi = n)
                hi = i + 1
                while hi < n and keys[hi] < q:
                    lo = hi
                    step *= 2
                    hi = lo + step
                if hi > n:
                    hi = n
                lo += 1
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if keys[mid] < q:
                        lo = mid + 1
                    else:
                        hi = mid
                i = lo
            out[j] = i

    @njit(**opts)
    def interleave(a, b, at_b, out):  # pragma: no cover - compiled
        # out[at_b[j]] = b[j] (at_b increasing), the other slots take a in order.
        i = 0
        j = 0
        m = at_b.shape[0]
        for p in range(out.shape[0]):
            if j < m and at_b[j] == p:
                out[p] = b[j]
                j += 1
            else:
                out[p] = a[i]
                i += 1

    @njit(**opts)
    def compact(a, keep, out):  # pragma: no cover - compiled
        # out = a where keep (uint8); branch-free: every entry is written, the cursor advances by keep[i]
        # (out has one spare slot for the write after the last kept entry).
        o = 0
        for i in range(a.shape[0]):
            out[o] = a[i]
            o += keep[i]

    @njit(**opts)
    def match(src, dst, n_in, new_keys, out):  # pragma: no cover - compiled
        # out[i] = position of key dst[i] * n_in + src[i] in new_keys, or -1 (both in increasing key order).
        p = 0
        n = new_keys.shape[0]
        for i in range(src.shape[0]):
            k = np.int64(dst[i]) * n_in + np.int64(src[i])
            while p < n and new_keys[p] < k:
                p += 1
            out[i] = p if p < n and new_keys[p] == k else -1

    @njit(**opts)
    def carry(old_to_new, old, new):  # pragma: no cover - compiled
        for i in range(old_to_new.shape[0]):
            j = old_to_new[i]
            if j >= 0:
                new[j] = old[i]

    @njit(**opts)
    def apply(keys, dead, born, out):  # pragma: no cover - compiled
        # keys minus dead plus born, all increasing, in one walk; returns the output length, or -1 when
        # a death is not in keys or a birth is repeated or alive (the caller then finds and names it).
        i = j = b = o = 0
        n, nd, nb, cap = keys.shape[0], dead.shape[0], born.shape[0], out.shape[0]
        while i < n or b < nb:
            if b < nb and (i == n or born[b] < keys[i]):
                if (b and born[b] == born[b - 1]) or o == cap:
                    return -1
                out[o] = born[b]
                o += 1
                b += 1
                continue
            k = keys[i]
            if j < nd and dead[j] < k:
                return -1
            if j < nd and dead[j] == k:
                j += 1  # dies; a birth of the same key (reborn) is emitted by the next turn
            elif (b < nb and born[b] == k) or o == cap:
                return -1  # a birth that is alive, or more kept than sized for: some death was not there
            else:
                out[o] = k
                o += 1
            i += 1
        return o if j == nd else -1

    @njit(**opts)
    def insert(a_keys, a_src, a_dst, a_val, b_keys, b_src, b_dst, b_val, at_b, keys, src, dst,
               val):  # pragma: no cover - compiled
        # interleave() of keys, src, dst and values at once: one branch per edge moves all four.
        i = 0
        j = 0
        m = at_b.shape[0]
        for p in range(keys.shape[0]):
            if j < m and at_b[j] == p:
                keys[p] = b_keys[j]
                src[p] = b_src[j]
                dst[p] = b_dst[j]
                val[p] = b_val[j]
                j += 1
            else:
                keys[p] = a_keys[i]
                src[p] = a_src[i]
                dst[p] = a_dst[i]
                val[p] = a_val[i]
                i += 1

    @njit(**opts)
    def split_sorted(keys, n_in, src, dst):  # pragma: no cover - compiled
        # Increasing keys dst * n_in + src into index rows of any integer dtype: dst only grows, so the
        # next row is a step of the row bound and a division is paid only where rows are skipped (a
        # division per edge costs more than the rest of the walk; stepping over all empty rows could
        # take up to n_out steps in a sparse key space).
        d = 0
        hi = n_in
        for i in range(keys.shape[0]):
            k = keys[i]
            if k >= hi:
                if k - hi < n_in:  # k >= hi, so no overflow
                    d += 1
                    hi += n_in
                else:
                    d = k // n_in
                    hi = (d + 1) * n_in
            src[i] = k - (hi - n_in)
            dst[i] = d

    @njit(**opts)
    def transpose(src, dst, crow_t, perm, col_t):  # pragma: no cover - compiled
        # The (src, dst) order of edges given in (dst, src) order: a stable counting sort by src, so each
        # source's edges keep their increasing dst. crow_t: row pointer of the transpose (n_in + 1).
        n_in = crow_t.shape[0] - 1
        crow_t[:] = 0
        for i in range(src.shape[0]):
            crow_t[src[i] + 1] += 1
        for j in range(n_in):
            crow_t[j + 1] += crow_t[j]
        cur = crow_t[:-1].copy()
        for i in range(src.shape[0]):
            s = src[i]
            q = cur[s]
            cur[s] = q + 1
            perm[q] = i
            col_t[q] = dst[i]

    return {"locate": locate, "interleave": interleave, "compact": compact, "match": match, "carry": carry,
            "apply": apply, "insert": insert, "split_sorted": split_sorted, "transpose": transpose}
