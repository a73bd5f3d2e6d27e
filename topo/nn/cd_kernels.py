"""Fused CPU kernels for one contrastive-divergence step of a :class:`~topo.nn.SparseRBM`.

At SET densities the unfused CD step (five CSR products, ``torch.rand`` for every
sample, ``sigmoid_`` passes, intermediate tensors) spends most of its time on
element-wise work and on re-reading the ``(units, batch)`` states. Here a CD-1
step is three passes over the edges, with no intermediate torch tensors:

* a *hidden pass* over the CSR rows of ``W`` (hidden units ``r``): the row's
  pre-activation ``W[r] x + c[r]`` over the batch, its sigmoid, optionally a
  Bernoulli sample of it, and — while the row's source states are still in L1 —
  the edge statistics ``g[e] (+)= scale · Σ_b h[r, b] x[src(e), b]``;
* a *visible pass* over the rows of ``Wᵀ``: ``p = σ(Wᵀ[i] s + b[i])`` from the
  hidden sample ``s``, the reconstruction error against the data and a Bernoulli
  sample of ``p``.

CD-1 is hidden pass (data: statistics, sample) → visible pass → hidden pass
(reconstruction: statistics); CD-k and persistent CD chain more passes. Binary
states (every sample, and the data when it is 0/1) are stored as bytes, a
quarter of the memory traffic; the batch is padded to whole 8-lane vectors.

Samples come from a counter-based generator (:mod:`topo.nn._counter_rng`): the uniform
of element ``i`` of a pass is a keyed 32-bit hash of ``i`` (two rounds of Wellons' ``lowbias32``
mixer, each after XOR with one of the pass's two 32-bit keys), its top 24 bits
scaled to ``[0, 1)``. The keys (two per sampling pass) are drawn from the
caller's ``torch.Generator``, so the same seed gives the same step, the thread
count changes nothing (every value is computed by one thread in a fixed order),
and no global state is touched. Hash and sigmoid (range reduction + degree-7
polynomial for ``exp``, relative error < 3e-7, saturating for large ``|x|``)
are integer/float arithmetic that LLVM vectorises with AVX2 (numba without SVML
would call ``exp`` per element). Only float32 is handled; :class:`SparseRBM`
runs its unfused step otherwise.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import torch

from . import kernels

__all__ = ["CDResult", "supports", "set_enabled", "cd_step", "uniforms", "keys_from"]

_ENABLED = os.environ.get("TOPO_FUSED_CD", "1") != "0"


def _build():
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic

    from ._counter_rng import uniform

    # No 'arcp' (a reciprocal estimate would put σ(0) one ulp below 0.5); numpy's error model lets
    # LLVM vectorise divisions (no ZeroDivisionError branch).
    flags = {"nnan", "ninf", "nsz", "contract", "reassoc", "afn"}
    inline = dict(fastmath=flags, error_model="numpy", inline="always", boundscheck=False, cache=True)
    opts = dict(fastmath=flags, error_model="numpy", boundscheck=False, cache=True, nogil=True, parallel=True)
    F, I32, U = np.float32, np.int32, np.uint32

    @intrinsic
    def _as_float(typingctx, i):
        # The bits of an int32 as a float32 (what makes 2**n of the exp below).
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return types.float32(types.int32), codegen

    @njit(**inline)
    def sigmoid(a):
        t = min(max(-a, F(-87.0)), F(88.0))  # exp(t) stays a normal float32
        n = I32(I32(t * F(1.4426950408889634) + F(128.5)) - I32(128))  # round(t / ln 2): t/ln2 + 128.5 > 0
        nf = F(n)
        r = (t - nf * F(0.693359375)) - nf * F(-2.12194440e-4)  # Cody–Waite: |r| <= ln(2) / 2
        p = F(1.0) + r * (F(1.0) + r * (F(0.5) + r * (F(1.0 / 6) + r * (F(1.0 / 24) + r * (
            F(1.0 / 120) + r * (F(1.0 / 720) + r * F(1.0 / 5040)))))))
        return F(1.0) / (F(1.0) + p * _as_float(I32((n + I32(127)) << I32(23))))

    @njit(**opts)
    def _uniforms(k0, k1, out):
        for i in prange(out.size):
            out[i] = uniform(U(i), k0, k1)

    @njit(**opts)
    def binary(v):
        # Whether every value of v is 0 or 1 (then a uint8 copy holds v exactly).
        flat = v.ravel()
        bad = 0
        for i in prange(flat.size):
            a = flat[i]
            bad += 0 if (a == F(0.0)) | (a == F(1.0)) else 1
        return bad == 0

    @njit(**opts)
    def pack(v, out, sums):
        # out[i, j] = v[j, i]: the (batch, n) data transposed into (n, padded batch), padding zero, in
        # 16-column tiles (a constant trip count: LLVM keeps the tile in registers); sums[i] = Σ_j v[j, i].
        batch, n = v.shape
        width = out.shape[1]
        for blk in prange((n + 15) // 16):
            i0, i1 = blk * 16, min(n, blk * 16 + 16)
            if i1 - i0 == 16:
                for j in range(batch):
                    for i in range(16):
                        out[i0 + i, j] = v[j, i0 + i]
            else:
                for j in range(batch):
                    for i in range(i0, i1):
                        out[i, j] = v[j, i]
            for i in range(i0, i1):
                oi = out[i]
                for j in range(batch, width):
                    oi[j] = 0
                tot = F(0.0)
                for j in range(batch):
                    tot += F(oi[j])
                sums[i] = tot

    @njit(**inline)
    def _rows(crow, col, w, perm, use_perm, bias, x, r, p):
        # p = bias + Σ_k w[k] x[col[k]] over CSR row r, four entries per pass over p (x: float32 or uint8).
        width = p.size
        b0 = bias[r]
        for j in range(width):
            p[j] = b0
        e, end = crow[r], crow[r + 1]
        while e + 4 <= end:
            if use_perm:
                w0, w1, w2, w3 = w[perm[e]], w[perm[e + 1]], w[perm[e + 2]], w[perm[e + 3]]
            else:
                w0, w1, w2, w3 = w[e], w[e + 1], w[e + 2], w[e + 3]
            x0, x1, x2, x3 = x[col[e]], x[col[e + 1]], x[col[e + 2]], x[col[e + 3]]
            for j in range(width):
                p[j] += w0 * F(x0[j]) + w1 * F(x1[j]) + w2 * F(x2[j]) + w3 * F(x3[j])
            e += 4
        while e < end:
            w0 = w[perm[e]] if use_perm else w[e]
            x0 = x[col[e]]
            for j in range(width):
                p[j] += w0 * F(x0[j])
            e += 1

    @njit(**inline)
    def _activate_sample(p, n_valid, r, k0, k1, s):
        # s[j] = 1 where u(r·width + j) < p[j] and j < n_valid (the padding columns stay 0).
        width = p.size
        base = U(r * width)
        for j in range(width):
            s[j] = 1 if (uniform(U(base + U(j)), k0, k1) < p[j]) & (j < n_valid) else 0

    @njit(**opts)
    def hidden_pass(crow, col, w, c, x, n_valid, bounds, g, g_scale, g_init, stats, k0, k1, sample, s_out,
                    hsum, keep, h_out):
        # Rows r of W: p = σ(W[r] x + c[r]); hsum[r] = Σ p; with `stats` g[e] (+)= g_scale · p · x[src]
        # (2 edges per pass: the source rows were just read, so they come from L1); with `sample`
        # s_out[r] = the 0/1 sample of p. Padding columns of x are zero, so they add nothing to g.
        width = x.shape[1]
        zero = np.zeros(1, np.int64)
        for ch in prange(bounds.size - 1):
            p = np.empty(width, np.float32)
            for r in range(bounds[ch], bounds[ch + 1]):
                _rows(crow, col, w, zero, False, c, x, r, p)
                for j in range(width):
                    p[j] = sigmoid(p[j])
                tot = F(0.0)
                for j in range(n_valid):
                    tot += p[j]
                hsum[r] = tot
                if sample:
                    _activate_sample(p, n_valid, r, k0, k1, s_out[r])
                if keep:
                    h_out[r, :] = p
                if stats:
                    e, end = crow[r], crow[r + 1]
                    while e + 4 <= end:
                        x0, x1, x2, x3 = x[col[e]], x[col[e + 1]], x[col[e + 2]], x[col[e + 3]]
                        d0 = d1 = d2 = d3 = F(0.0)
                        for j in range(width):
                            pj = p[j]
                            d0 += pj * F(x0[j])
                            d1 += pj * F(x1[j])
                            d2 += pj * F(x2[j])
                            d3 += pj * F(x3[j])
                        if g_init:
                            g[e], g[e + 1], g[e + 2], g[e + 3] = d0 * g_scale, d1 * g_scale, d2 * g_scale, d3 * g_scale
                        else:
                            g[e] += d0 * g_scale
                            g[e + 1] += d1 * g_scale
                            g[e + 2] += d2 * g_scale
                            g[e + 3] += d3 * g_scale
                        e += 4
                    while e < end:
                        x0 = x[col[e]]
                        d0 = F(0.0)
                        for j in range(width):
                            d0 += p[j] * F(x0[j])
                        g[e] = d0 * g_scale if g_init else g[e] + d0 * g_scale
                        e += 1

    @njit(**opts)
    def visible_pass(crow_t, col_t, perm, w, b, hs, n_valid, bounds, v, recon, rec, k0, k1, sample, out,
                     vsum, keep, p_out):
        # Rows i of Wᵀ: p = σ(Wᵀ[i] hs + b[i]); with `recon` rec[i] = Σ_j (p − v[i])²; with `sample`
        # out[i] = the 0/1 sample of p and vsum[i] its sum.
        width = hs.shape[1]
        for ch in prange(bounds.size - 1):
            p = np.empty(width, np.float32)
            for i in range(bounds[ch], bounds[ch + 1]):
                _rows(crow_t, col_t, w, perm, True, b, hs, i, p)
                for j in range(width):
                    p[j] = sigmoid(p[j])
                if keep:
                    p_out[i, :] = p
                if recon:
                    vi = v[i]
                    acc = F(0.0)
                    for j in range(n_valid):
                        d = p[j] - F(vi[j])
                        acc += d * d
                    rec[i] = acc
                if sample:
                    oi = out[i]
                    _activate_sample(p, n_valid, i, k0, k1, oi)
                    tot = 0
                    for j in range(width):
                        tot += oi[j]
                    vsum[i] = F(tot)

    return _uniforms, hidden_pass, visible_pass, pack, binary


_kernels = kernels.lazily(_build)


def set_enabled(flag: bool) -> bool:
    """Switch the fused step on or off for this process (``TOPO_FUSED_CD=0``: off); return the previous setting.

    Off, :meth:`SparseRBM.contrastive_divergence` runs its unfused step (topo's CSR
    kernels and ``torch.rand``) for float32 too.

    Examples
    --------
    >>> previous = set_enabled(False)
    >>> _ = set_enabled(previous)
    """
    global _ENABLED
    previous, _ENABLED = _ENABLED, bool(flag)
    return previous


def supports(*tensors: torch.Tensor) -> bool:
    """Whether the fused step runs on these tensors: CPU float32, the step and topo's numba kernels enabled."""
    return _ENABLED and kernels.enabled() and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def keys_from(generator: torch.Generator | None, passes: int) -> np.ndarray:
    """``2 · passes`` uint32 keys drawn from ``generator`` (torch's global generator if None)."""
    dev = generator.device if generator is not None else "cpu"
    k = torch.randint(0, 2**32, (2 * passes,), dtype=torch.int64, generator=generator, device=dev)
    return k.cpu().numpy().astype(np.uint32)


def uniforms(k0: int, k1: int, n: int) -> np.ndarray:
    """The first ``n`` uniforms of the stream keyed ``(k0, k1)``: element ``i`` of a pass samples ``u[i] < p``.

    A pass numbers its elements ``unit · padded + column`` of its ``(units, batch)`` states,
    ``padded`` the batch rounded up to a multiple of 8 (see :func:`cd_step`).

    Examples
    --------
    >>> u = uniforms(1, 2, 1000)
    >>> u.dtype, bool((u >= 0).all() and (u < 1).all())
    (dtype('float32'), True)
    """
    gen = _kernels()[0]
    out = np.empty(int(n), np.float32)
    kernels._threads(kernels._kernels()[0])
    gen(np.uint32(k0), np.uint32(k1), out)
    return out


class CDResult(NamedTuple):
    """What :func:`cd_step` computes (gradients of ``−log p(v)``, as ``.grad`` takes them)."""

    grad_w: torch.Tensor        #: one value per edge, CSR order
    grad_hidden: torch.Tensor   #: ``mean(h_k) − mean(h_0)``
    grad_visible: torch.Tensor  #: ``mean(v_k) − mean(v)``
    recon: float                #: mean squared error of ``p(v | h_0 sample)`` against the data
    vk_t: torch.Tensor          #: the negative phase's final visible sample, ``(n_visible, chains)``
    record: dict | None         #: with ``record=True``: every probability and sample of the step


_BOUNDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _bounds(crow: np.ndarray, n_chunks: int) -> np.ndarray:
    """Row boundaries of ``n_chunks`` chunks of about equal edge count (cached per structure array)."""
    hit = _BOUNDS.get((id(crow), n_chunks))
    if hit is not None and hit[0] is crow:  # the array is kept alive with its entry: ids are not reused
        return hit[1]
    nnz, n = int(crow[-1]), crow.size - 1
    b = np.searchsorted(crow, [nnz * c // n_chunks for c in range(n_chunks + 1)], side="left").astype(np.int64)
    b[0], b[-1] = 0, n
    b = np.maximum.accumulate(np.minimum(b, n))
    if len(_BOUNDS) > 16:
        _BOUNDS.clear()
    _BOUNDS[id(crow), n_chunks] = (crow, b)
    return b


_DUMMY = np.zeros((1, 1), np.float32)
_DUMMY8 = np.zeros((1, 1), np.uint8)
_LANES = 8  # the batch is padded to whole AVX2 float32 vectors


def _padded(n: int) -> int:
    return -(-n // _LANES) * _LANES


def _pack(v: torch.Tensor, sums: np.ndarray) -> np.ndarray:
    """``v`` (batch, n) as ``(n, padded batch)``: uint8 when binary (a quarter of the bytes to read), else float32."""
    ks = _kernels()
    vn = v.detach().numpy()
    out = np.empty((vn.shape[1], _padded(vn.shape[0])), np.uint8 if ks[4](vn) else np.float32)
    ks[3](vn, out, sums)
    return out


def cd_step(structure: tuple, w: torch.Tensor, c: torch.Tensor, b: torch.Tensor, v: torch.Tensor,
            keys: np.ndarray, k: int = 1, chain: torch.Tensor | None = None, record: bool = False) -> CDResult:
    """One CD-k (or persistent CD, with ``chain``) step of a Bernoulli–Bernoulli RBM, fused.

    Parameters
    ----------
    structure : tuple of numpy index arrays
        ``(crow, col, crow_t, col_t, perm)`` of ``W`` (rows = hidden units), as
        :meth:`topo.nn.functional.CsrStructure.host` gives them.
    w : float32 tensor ``[edges]``
        Edge values in CSR order.
    c, b : float32 tensors
        Hidden and visible biases.
    v : float32 tensor ``(batch, n_visible)``, contiguous
        The data (values in ``[0, 1]``; binary data is read as bytes).
    keys : uint32 array
        Two per sampling pass (:func:`keys_from`): ``2k`` passes for CD-k, ``1 + 2k`` for PCD.
    k : int
    chain : float32 tensor ``(chains, n_visible)``, contiguous, optional
        Persistent chains.
    record : bool
        Keep every pass's probabilities and samples, ``(units, batch)`` float32 arrays (tests):
        ``"h0"``, ``"h0_sample"``, ``"p0"`` (the reconstruction), then per Gibbs step ``i`` of the
        negative phase ``"hidden{i}"``, ``"hidden{i}_sample"`` (PCD only for ``i = 0``: CD starts
        from ``h0_sample``), ``"visible{i}"``, ``"visible{i}_sample"``, and ``"hk"``.

    Notes
    -----
    Pass ``q`` (counting sampling passes from 0) samples element ``(unit, j)`` of its
    ``(units, batch)`` states with ``uniforms(keys[2q], keys[2q + 1], ·)[unit · padded + j]``,
    ``padded`` the batch rounded up to a multiple of 8.
    """
    _, hidden_pass, visible_pass = _kernels()[:3]
    threads = kernels._threads(kernels._kernels()[0])
    crow, col, crow_t, col_t, perm = structure
    n_h, n_v, batch = len(crow) - 1, len(crow_t) - 1, v.shape[0]
    chains = batch if chain is None else chain.shape[0]
    bounds, bounds_t = _bounds(crow, max(1, min(threads, n_h))), _bounds(crow_t, max(1, min(threads, n_v)))
    wn, cn, bn = w.numpy(), c.numpy(), b.numpy()
    g = np.empty(wn.size, np.float32)
    hsum0, hsumk, scratch = np.empty(n_h, np.float32), np.empty(n_h, np.float32), np.empty(n_h, np.float32)
    vsum, dsum, rec = np.empty(n_v, np.float32), np.empty(n_v, np.float32), np.empty(n_v, np.float32)
    rows: dict | None = {} if record else None
    key = iter(keys.tolist())

    def hid(x, n, stats, scale, init, sample, hsum, name):
        s_out = np.empty((n_h, x.shape[1]), np.uint8) if sample else _DUMMY8
        h_out = np.empty((n_h, x.shape[1]), np.float32) if record else _DUMMY
        k0, k1 = (next(key), next(key)) if sample else (0, 0)
        hidden_pass(crow, col, wn, cn, x, n, bounds, g, np.float32(scale), init, stats, np.uint32(k0),
                    np.uint32(k1), sample, s_out, hsum, record, h_out)
        if rows is not None:
            rows[name] = h_out[:, :n]
            if sample:
                rows[name + "_sample"] = s_out[:, :n].astype(np.float32)
        return s_out

    def vis(hs, n, data, sample, name):
        out = np.empty((n_v, hs.shape[1]), np.uint8) if sample else _DUMMY8
        p_out = np.empty((n_v, hs.shape[1]), np.float32) if record else _DUMMY
        k0, k1 = (next(key), next(key)) if sample else (0, 0)
        visible_pass(crow_t, col_t, perm, wn, bn, hs, n, bounds_t, _DUMMY if data is None else data,
                     data is not None, rec, np.uint32(k0), np.uint32(k1), sample, out, vsum, record, p_out)
        if rows is not None:
            rows[name] = p_out[:, :n]
            if sample:
                rows[name + "_sample"] = out[:, :n].astype(np.float32)
        return out

    vt = _pack(v, dsum)
    hs = hid(vt, batch, True, -1.0 / batch, True, True, hsum0, "h0")
    if chain is None:
        x = vis(hs, batch, vt, True, "p0")
    else:
        vis(hs, batch, vt, False, "p0")
        x = _pack(chain, vsum)
        x = vis(hid(x, chains, False, 0.0, False, True, scratch, "hidden0"), chains, None, True, "visible0")
    recon = float(rec.sum(dtype=np.float64)) / (n_v * batch)
    for i in range(1, k):
        x = vis(hid(x, chains, False, 0.0, False, True, scratch, f"hidden{i}"), chains, None, True, f"visible{i}")
    hid(x, chains, True, 1.0 / chains, False, False, hsumk, "hk")
    vk = torch.from_numpy(x[:, :chains]).to(torch.float32)
    grad_h = torch.from_numpy(hsumk / chains - hsum0 / batch)
    grad_v = torch.from_numpy(vsum / chains - dsum / batch)
    return CDResult(torch.from_numpy(g), grad_h, grad_v, recon, vk, rows)
