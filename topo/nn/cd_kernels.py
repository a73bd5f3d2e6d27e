"""Fused CPU kernels for one contrastive-divergence step of a :class:`~topo.nn.SparseRBM`.

At SET densities the unfused CD step (five CSR products, ``torch.rand`` for every
sample, ``sigmoid_`` passes) spends most of its time on element-wise work and on
re-reading the ``(units, batch)`` states from memory. Here a step is a few passes:

* a *hidden pass* over the CSR rows of ``W`` (hidden units): the row's
  pre-activation ``W[r] x + c[r]`` over the batch, its sigmoid, optionally a
  Bernoulli sample of it, and — while the row's source states are still in L1 —
  the edge statistics ``g[e] += scale · Σ_b h[r, b] x[src, b]`` and the scatter
  ``m[src] += W[e] · s[r]`` (the ``Wᵀ h`` product) in one loop over the row's edges;
* a *visible pass*: ``p = σ(m + b)``, the reconstruction error against the data
  and a Bernoulli sample of ``p``, written over ``m``.

CD-1 is hidden pass (data: statistics, sample, scatter) → visible pass → hidden
pass (reconstruction: statistics); CD-k and persistent CD chain more passes.

Samples come from a counter-based generator: the uniform of element ``i`` of a
pass is a keyed 32-bit hash of ``i`` (two rounds of Wellons' ``lowbias32`` with
two 32-bit keys), its top 24 bits scaled to ``[0, 1)``. The keys (two per
sampling pass) are drawn from the caller's ``torch.Generator``, so the same
seed gives the same step, the thread count does not change the samples, and no
global state is touched. Hash and sigmoid (range reduction + degree-7
polynomial for ``exp``, relative error < 2e-7) are plain integer/float
arithmetic that LLVM vectorises with AVX2 (numba without SVML would call
``exp`` per element). Only float32 states are handled; the caller falls back to
the unfused step otherwise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from . import kernels

__all__ = ["CDResult", "supports", "cd_step", "uniforms", "keys_from"]

_compiled = None


def _build():
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic

    # No 'arcp' (a reciprocal estimate would put σ(0) one ulp below 0.5); numpy's error model lets
    # LLVM vectorise divisions (no ZeroDivisionError branch).
    flags = {"nnan", "ninf", "nsz", "contract", "reassoc", "afn"}
    inline = dict(fastmath=flags, error_model="numpy", inline="always", boundscheck=False, cache=True)
    opts = dict(fastmath=flags, error_model="numpy", boundscheck=False, cache=True, nogil=True, parallel=True)
    F, I, U = np.float32, np.int32, np.uint32

    @intrinsic
    def _as_float(typingctx, i):
        # The bits of an int32 as a float32 (what makes 2**n of the exp below).
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return types.float32(types.int32), codegen

    @njit(**inline)
    def sigmoid(a):
        t = min(max(-a, F(-87.0)), F(88.0))  # exp(t) stays a normal float32
        n = I(I(t * F(1.4426950408889634) + F(128.5)) - I(128))  # round(t / ln 2): t/ln2 + 128.5 > 0
        nf = F(n)
        r = (t - nf * F(0.693359375)) - nf * F(-2.12194440e-4)  # Cody–Waite: |r| <= ln(2) / 2
        p = F(1.0) + r * (F(1.0) + r * (F(0.5) + r * (F(1.0 / 6) + r * (F(1.0 / 24) + r * (
            F(1.0 / 120) + r * (F(1.0 / 720) + r * F(1.0 / 5040)))))))
        return F(1.0) / (F(1.0) + p * _as_float(I((n + I(127)) << I(23))))

    @njit(**inline)
    def _mix(x):
        x = U(x ^ (x >> U(16)))
        x = U(x * U(0x21F0AAAD))
        x = U(x ^ (x >> U(15)))
        x = U(x * U(0x735A2D97))
        return U(x ^ (x >> U(15)))

    @njit(**inline)
    def uniform(i, k0, k1):
        return F(_mix(U(_mix(U(i ^ k0)) ^ k1)) >> U(8)) * F(5.9604644775390625e-08)  # 2**-24

    @njit(**opts)
    def _uniforms(k0, k1, out):
        for i in prange(out.size):
            out[i] = uniform(U(i), k0, k1)

    @njit(**opts)
    def hidden_pass(crow, col, w, c, x, bounds, g, g_scale, g_init, stats, k0, k1, sample, m, scatter,
                    hsum, keep, h_out, s_out):
        # One pass over the rows of W (see the module docstring). m: (chunks, n_in, width) scatter buffers,
        # one per chunk (rows of different chunks share sources); zeroed here.
        width = x.shape[1]
        for ch in prange(bounds.size - 1):
            p = np.empty(width, np.float32)
            s = np.empty(width, np.float32)
            mc = m[ch] if scatter else m[0]
            if scatter:
                mc[:] = F(0.0)
            for r in range(bounds[ch], bounds[ch + 1]):
                b0 = c[r]
                for j in range(width):
                    p[j] = b0
                e, end = crow[r], crow[r + 1]
                while e + 4 <= end:
                    w0, w1, w2, w3 = w[e], w[e + 1], w[e + 2], w[e + 3]
                    x0, x1, x2, x3 = x[col[e]], x[col[e + 1]], x[col[e + 2]], x[col[e + 3]]
                    for j in range(width):
                        p[j] += w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
                    e += 4
                while e < end:
                    w0, x0 = w[e], x[col[e]]
                    for j in range(width):
                        p[j] += w0 * x0[j]
                    e += 1
                tot = F(0.0)
                for j in range(width):
                    q = sigmoid(p[j])
                    p[j] = q
                    tot += q
                hsum[r] = tot
                if sample:
                    base = U(r * width)
                    for j in range(width):
                        s[j] = F(1.0) if uniform(U(base + U(j)), k0, k1) < p[j] else F(0.0)
                if keep:
                    h_out[r, :] = p
                    if sample:
                        s_out[r, :] = s
                start = crow[r]
                if stats and scatter:
                    for e in range(start, end):
                        xe, me, we = x[col[e]], mc[col[e]], w[e]
                        d = F(0.0)
                        for j in range(width):
                            d += p[j] * xe[j]
                            me[j] += we * s[j]
                        g[e] = d * g_scale if g_init else g[e] + d * g_scale
                elif stats:
                    for e in range(start, end):
                        xe = x[col[e]]
                        d = F(0.0)
                        for j in range(width):
                            d += p[j] * xe[j]
                        g[e] = d * g_scale if g_init else g[e] + d * g_scale
                elif scatter:
                    for e in range(start, end):
                        me, we = mc[col[e]], w[e]
                        for j in range(width):
                            me[j] += we * s[j]

    @njit(**opts)
    def visible_pass(m, n_buf, b, v, recon, rec, k0, k1, sample, vsum, keep, p_out):
        # p = σ(Σ_q m[q] + b) per visible row; rec[i] = Σ (p − v)², v's row sums; with `sample` the 0/1
        # sample of p overwrites m[0] and vsum[i] holds its row sums instead.
        n, width = m.shape[1], m.shape[2]
        n_chunks = min(n, 64)
        for ch in prange(n_chunks):
            p = np.empty(width, np.float32)
            for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
                mi = m[0, i]
                for q in range(1, n_buf):
                    mq = m[q, i]
                    for j in range(width):
                        mi[j] += mq[j]
                bi = b[i]
                for j in range(width):
                    p[j] = sigmoid(mi[j] + bi)
                if keep:
                    p_out[i, :] = p
                if recon:
                    vi = v[i]
                    acc = F(0.0)
                    for j in range(width):
                        d = p[j] - vi[j]
                        acc += d * d
                    rec[i] = acc
                if sample:
                    base = U(i * width)
                    tot = F(0.0)
                    for j in range(width):
                        sv = F(1.0) if uniform(U(base + U(j)), k0, k1) < p[j] else F(0.0)
                        mi[j] = sv
                        tot += sv
                    vsum[i] = tot

    return _uniforms, hidden_pass, visible_pass


def _kernels():
    global _compiled
    if _compiled is None:
        kernels._kernels()  # numba's thread pool started the way topo.nn.kernels starts it
        _compiled = _build()
    return _compiled


def supports(*tensors: torch.Tensor) -> bool:
    """Whether the fused step runs on these tensors: CPU float32 and topo's numba kernels enabled."""
    return kernels.enabled() and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def keys_from(generator: torch.Generator | None, passes: int) -> np.ndarray:
    """``2 · passes`` uint32 keys drawn from ``generator`` (torch's global generator if None)."""
    dev = generator.device if generator is not None else "cpu"
    k = torch.randint(0, 2**32, (2 * passes,), dtype=torch.int64, generator=generator, device=dev)
    return k.cpu().numpy().astype(np.uint32)


def uniforms(k0: int, k1: int, n: int) -> np.ndarray:
    """The first ``n`` uniforms of the stream keyed ``(k0, k1)``: element ``i`` of a pass samples ``u[i] < p``.

    A hidden pass numbers its elements ``row · batch + column`` of the ``(n_hidden, batch)`` states,
    a visible pass those of ``(n_visible, batch)``.

    Examples
    --------
    >>> u = uniforms(1, 2, 1000)
    >>> u.dtype, bool((u >= 0).all() and (u < 1).all())
    (dtype('float32'), True)
    """
    gen, _, _ = _kernels()
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


def cd_step(crow: np.ndarray, col: np.ndarray, w: torch.Tensor, c: torch.Tensor, b: torch.Tensor,
            vt: torch.Tensor, keys: np.ndarray, k: int = 1, chain_t: torch.Tensor | None = None,
            record: bool = False) -> CDResult:
    """One CD-k (or persistent CD, with ``chain_t``) step of a Bernoulli–Bernoulli RBM, fused.

    Parameters
    ----------
    crow, col : numpy index arrays
        CSR structure of ``W`` (rows = hidden units, columns = visible units).
    w : float32 tensor ``[edges]``
        Edge values in CSR order.
    c, b : float32 tensors
        Hidden and visible biases.
    vt : float32 tensor ``(n_visible, batch)``, contiguous
        The data, transposed.
    keys : uint32 array
        Two per sampling pass (:func:`keys_from`): ``2k`` passes for CD-k, ``1 + 2k`` for PCD.
    k : int
    chain_t : float32 tensor ``(n_visible, chains)``, optional
        Persistent chains, transposed.
    record : bool
        Keep every pass's probabilities and samples (tests: ``record["h0"]``, ``"h0_sample"``,
        ``"p0"``, then ``"hidden{i}"``, ``"hidden{i}_sample"``, ``"visible{i}"``, ``"visible{i}_sample"``
        for the chain's steps, and ``"hk"``).
    """
    _, hidden_pass, visible_pass = _kernels()
    numba = kernels._kernels()[0]
    threads = kernels._threads(numba)
    n_h, n_v, batch = len(crow) - 1, vt.shape[0], vt.shape[1]
    chains = batch if chain_t is None else chain_t.shape[1]
    bounds = _bounds(crow, max(1, min(threads, n_h)))
    n_chunks = bounds.size - 1
    wn, cn, bn, vn = w.numpy(), c.numpy(), b.numpy(), vt.numpy()
    g = np.empty(wn.size, np.float32)
    hsum0, hsumk = np.empty(n_h, np.float32), np.empty(n_h, np.float32)
    vsum = np.empty(n_v, np.float32)
    rec = np.empty(n_v, np.float32)
    rows: dict | None = {} if record else None
    key = iter(keys.tolist())

    def hid(x, stats, scale, init, sample, hsum, name):
        width = x.shape[1]
        m = np.empty((n_chunks if sample else 1, n_v, width if sample else 1), np.float32)
        h_out = np.empty((n_h, width), np.float32) if record else _DUMMY
        s_out = np.empty((n_h, width), np.float32) if record and sample else _DUMMY
        k0, k1 = (next(key), next(key)) if sample else (0, 0)
        hidden_pass(crow, col, wn, cn, x, bounds, g, np.float32(scale), init, stats, np.uint32(k0), np.uint32(k1),
                    sample, m, sample, hsum, record, h_out, s_out)
        if rows is not None:
            rows[name] = h_out
            if sample:
                rows[name + "_sample"] = s_out
        return m

    def vis(m, v, sample, name):
        p_out = np.empty(m.shape[1:], np.float32) if record else _DUMMY
        k0, k1 = (next(key), next(key)) if sample else (0, 0)
        visible_pass(m, m.shape[0], bn, _DUMMY if v is None else v, v is not None, rec, np.uint32(k0), np.uint32(k1), sample, vsum,
                     record, p_out)
        if rows is not None:
            rows[name] = p_out
            if sample:
                rows[name + "_sample"] = m[0].copy()
        return m[0]

    scratch = np.empty(n_h, np.float32)
    m = hid(vn, True, -1.0 / batch, True, True, hsum0, "h0")
    if chain_t is None:
        x = vis(m, vn, True, "p0")
    else:
        vis(m, vn, False, "p0")
        x = chain_t.numpy()
        m = hid(x, False, 0.0, False, True, scratch, "hidden0")
        x = vis(m, None, True, "visible0")
    recon = float(rec.sum(dtype=np.float64)) / (n_v * batch)
    for i in range(1, k):
        m = hid(x, False, 0.0, False, True, scratch, f"hidden{i}")
        x = vis(m, None, True, f"visible{i}")
    hid(x, True, 1.0 / chains, False, False, hsumk, "hk")
    vk = torch.from_numpy(x)
    grad_h = torch.from_numpy(hsumk / chains - hsum0 / batch)
    grad_v = torch.from_numpy(vsum / chains) - vt.mean(1)
    return CDResult(torch.from_numpy(g), grad_h, grad_v, recon, vk, rows)
