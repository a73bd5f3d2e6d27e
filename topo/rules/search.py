"""Sub-quadratic candidate search for bilinear growth scores (``mode="approx"``).

The best free pairs by ``|⟨a_i, b_j⟩|`` (cosine or gradient scores, see
:mod:`topo.rules.scores`) are found in three steps, none of which holds an
``n_in × n_out`` matrix:

1. **Subspace.** A randomized range finder (Halko, Martinsson & Tropp 2011,
   alg. 4.4, with ``power`` subspace iterations) on up to 4096 of the
   stacked vectors ``[aᵀ; bᵀ]`` gives an orthonormal basis ``Q`` (``S × d``)
   of their dominant directions; inner products are approximated by
   ``⟨Qᵀa_i, Qᵀb_j⟩``. Projecting costs ``O((n_in + n_out) · S · d)`` time
   and ``O((n_in + n_out) · d)`` memory.
2. **Candidates.** By default (:func:`threshold_pairs`) the ``m`` free
   pairs of largest ``|⟨Qᵀa_i, Qᵀb_j⟩|`` over the whole layer: one pass over
   blocks of output rows of the subspace scores (``O(n_in · n_out · d)``
   multiply-adds, ``S / d`` times fewer than exact ranking, at GEMM speed)
   keeps the entries at or above a threshold, guessed from a random grid of
   pairs and raised as a running top-``m`` fills; a numba kernel
   (:mod:`topo.rules._survivors`) finds them in two reads of a block, with no per-row
   top-k and no deduplication. Alternatively (:func:`neighbour_pairs`), for
   every output ``j`` the ``m_out`` inputs of largest estimate and for every
   input the ``m_in`` best outputs, by blocked products or with a FAISS
   inner-product inverted-file index (``IndexIVFFlat``, Jégou et al.) over
   ``±Qᵀa`` (the ``faiss`` extra).
3. **Exact rescoring.** The free candidates with the ``rescore · k`` best
   estimates (``rescore = 2`` for the threshold search, 3 for the lists) are
   scored exactly with the full ``S`` samples (:meth:`PairScores.pairs`,
   ``O(rescore · k · S)``), so what is returned is
   ranked by its true score; only recall is approximate.

Every random choice draws from the caller's ``torch.Generator`` (FAISS's
k-means gets a seed drawn from it).
"""

from __future__ import annotations

import math

import torch

from ._survivors import above
from .scores import _kth_largest, in_sorted, topk_by_key

__all__ = ["subspace", "neighbour_pairs", "threshold_pairs", "faiss_available"]


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package (``pip install topo[faiss]``, i.e. ``faiss-cpu``) imports."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def subspace(aT: torch.Tensor, bT: torch.Tensor, dim: int, generator: torch.Generator, power: int = 2,
             rows: int = 4096) -> torch.Tensor | None:
    """Orthonormal ``[S, d]`` basis of the dominant directions of the rows of ``aT`` and ``bT``; ``None`` if ``d ≥ S``.

    The range finder runs on at most ``rows`` rows drawn at random from both
    (the directions shared by many neurons show in any large sample of
    them), so its cost does not grow with the layer.
    """
    S = aT.shape[1]
    d = min(int(dim), S)
    if d >= S:
        return None
    n_a, n = aT.shape[0], aT.shape[0] + bT.shape[0]
    pick = torch.randperm(n, generator=generator)[:max(rows, 2 * d)].sort().values
    m = torch.cat([aT[pick[pick < n_a].to(aT.device)], bT[(pick[pick >= n_a] - n_a).to(bT.device)]])
    g = torch.randn(m.shape[0], d, generator=generator, dtype=aT.dtype).to(aT.device)
    q = _orthonormal(m.T @ g)
    for _ in range(power):
        q = _orthonormal(m.T @ (m @ q))
    return q


def _orthonormal(y: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the columns of ``y`` (``[S, d]``, full column rank expected).

    CholeskyQR2 in float64 (two rounds of ``y · R⁻¹`` with ``R`` the Cholesky
    factor of ``yᵀy``): GEMMs and ``d × d`` factorisations only. torch's
    LAPACK QR of the same ``4096 × 64`` matrix took 0.15–0.3 s with two
    threads on the development VM (4 ms on a quiet single thread); a
    rank-deficient ``y`` falls back to it.
    """
    q = y.double()
    for _ in range(2):
        r, info = torch.linalg.cholesky_ex(q.T @ q, upper=True)
        if int(info) != 0:
            return torch.linalg.qr(y.double()).Q.to(y.dtype)
        q = torch.linalg.solve_triangular(r, q, upper=True, left=False)
    return q.to(y.dtype)


def _faiss_search(base: torch.Tensor, queries: torch.Tensor, m: int, seed: int,
                  nprobe_frac: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``[n_q, m']`` into ``base`` of the largest ``|⟨base_i, q⟩|`` per query and those values (FAISS IVF)."""
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
    xb = base.detach().to("cpu", torch.float32).contiguous().numpy()
    xb = np.ascontiguousarray(np.concatenate([xb, -xb]))  # |⟨x, q⟩| = max over ±x of ⟨x, q⟩
    n, d = xb.shape
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))  # FAISS wants >= 39 training points per list
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(xb)
    index.add(xb)
    index.nprobe = max(1, math.ceil(nlist * nprobe_frac))
    xq = queries.detach().to("cpu", torch.float32).contiguous().numpy()
    dist, found = index.search(xq, min(2 * m, n))
    ids = torch.from_numpy(found)
    ids = torch.where(ids >= 0, ids % base.shape[0], ids)
    return ids, torch.from_numpy(dist)  # ids may hold -1 (fewer found) and an input twice (±): deduplicated later


def _blocked_search(ra: torch.Tensor, rb: torch.Tensor, m_out: int, m_in: int,
                    block_bytes: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Exact top-``m_out`` inputs per output and top-``m_in`` outputs per input of ``|⟨ra_i, rb_j⟩|``, with values.

    One pass over blocks of outputs (``O(n_in · n_out · d)``): each block's
    rows give the outputs' lists, and a running top-``m_in`` per column the inputs'.
    """
    n_in, n_out = ra.shape[0], rb.shape[0]
    m_out, m_in = min(m_out, n_in), min(m_in, n_out)
    rows = max(1, block_bytes // (4 * n_in))
    out_ids = torch.empty(n_out, m_out, dtype=torch.int64)
    out_v = torch.empty(n_out, m_out, dtype=ra.dtype)
    col_v = torch.empty(0, n_in, dtype=ra.dtype)
    col_i = torch.empty(0, n_in, dtype=torch.int64)
    for r0 in range(0, n_out, rows):
        scores = (rb[r0:r0 + rows] @ ra.T).abs_()
        if m_out:
            v, i = torch.topk(scores, m_out, dim=1, sorted=False)
            out_ids[r0:r0 + rows], out_v[r0:r0 + rows] = i.cpu(), v.cpu()
        if m_in:
            v, i = torch.topk(scores, min(m_in, scores.shape[0]), dim=0, sorted=False)
            col_v, col_i = torch.cat([col_v, v.cpu()]), torch.cat([col_i, i.cpu() + r0])
            if col_v.shape[0] > m_in:
                v, sel = torch.topk(col_v, m_in, dim=0, sorted=False)
                col_v, col_i = v, torch.gather(col_i, 0, sel)
    return (out_ids, out_v), (col_i.T.contiguous(), col_v.T.contiguous())


def neighbour_pairs(aT: torch.Tensor, bT: torch.Tensor, m_out: int, m_in: int, *, dim: int = 128,
                    generator: torch.Generator, backend: str = "auto", nprobe_frac: float = 0.125,
                    block_bytes: int = 64 * 2 ** 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate keys ``j * n_in + i`` (sorted, unique) and their estimated scores.

    The candidates are each output's ``m_out`` and each input's ``m_in`` best
    partners in the subspace; the estimate is ``|⟨Qᵀa_i, Qᵀb_j⟩|``.

    Parameters
    ----------
    aT, bT : Tensor ``[n_in, S]``, ``[n_out, S]``
        The score factors (unit columns for cosine).
    m_out, m_in : int
        Neighbours searched per output and per input.
    dim : int
        Dimension of the subspace searched in (step 1 of the module notes).
    backend : {"auto", "faiss", "torch"}
        ``"auto"`` is ``"torch"``, blocked products in the subspace: on a
        20000 → 20000 layer they measured 3× faster than FAISS's IVF index,
        whose k-means training dominates at that size
        (``docs/benchmarks.md``); ``"faiss"`` uses the index.
    """
    if backend not in ("auto", "faiss", "torch"):
        raise ValueError(f"backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    use_faiss = backend == "faiss"
    q = subspace(aT, bT, dim, generator)
    ra, rb = (aT, bT) if q is None else (aT @ q, bT @ q)
    n_in, n_out = aT.shape[0], bT.shape[0]
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
    outs: tuple[torch.Tensor, torch.Tensor] | None
    ins: tuple[torch.Tensor, torch.Tensor] | None
    if use_faiss and min(n_in, n_out) >= 64:
        outs = _faiss_search(ra, rb, m_out, seed, nprobe_frac) if m_out > 0 else None
        ins = _faiss_search(rb, ra, m_in, seed, nprobe_frac) if m_in > 0 else None
    else:
        outs, ins = _blocked_search(ra.float(), rb.float(), max(m_out, 0), max(m_in, 0), block_bytes)
    key_parts: list[torch.Tensor] = []
    val_parts: list[torch.Tensor] = []
    for found, out_side in ((outs, True), (ins, False)):
        if found is None or found[0].numel() == 0:
            continue
        ids, v = found
        who = torch.arange(ids.shape[0]).unsqueeze(1).expand_as(ids)
        ok = ids >= 0
        ids, who = ids[ok], who[ok]
        key_parts.append(who * n_in + ids if out_side else ids * n_in + who)
        val_parts.append(v[ok].float().abs())
    if not key_parts:
        return torch.empty(0, dtype=torch.int64), torch.empty(0)
    keys, vals = torch.cat(key_parts), torch.cat(val_parts)
    # One entry per pair (found from both sides or as ±x), keeping its largest estimate.
    order = torch.argsort(vals, descending=True, stable=True)
    keys, vals = keys[order], vals[order]
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.int64).scatter_reduce_(
        0, inverse, torch.arange(keys.numel()), "amin")
    return uniq, vals[first]


#: Sampled pairs whose estimates must lie above the first guess of the threshold for it to be trusted.
_MIN_ABOVE = 32


def _first_threshold(ra: torch.Tensor, rb: torch.Tensor, want: float, taken: torch.Tensor,
                     generator: torch.Generator, block_bytes: int, above: int = 256) -> tuple[torch.Tensor, int]:
    """Estimates of a random ``R × C`` grid of free pairs, sorted descending, and the grid's size.

    The ``j``-th largest of ``P`` sampled estimates is an unbiased guess of
    the ``want``-th largest of all when ``j = want · P / (n_in · n_out)``; the
    grid is sized so that about ``above`` sampled pairs lie above it.
    """
    n_in, n_out = ra.shape[0], rb.shape[0]
    space = n_in * n_out
    p = min(space // 4, block_bytes // 8, math.ceil(above * space / max(want, 1.0)))
    if p < 1:
        return ra.new_empty(0), 0
    r = max(1, min(n_out, math.ceil(math.sqrt(p * n_out / n_in))))
    c = max(1, min(n_in, p // r))
    rows = torch.randperm(n_out, generator=generator)[:r].sort().values
    cols = torch.randperm(n_in, generator=generator)[:c].sort().values
    est = (rb[rows.to(rb.device)] @ ra[cols.to(ra.device)].T).abs_().reshape(-1).cpu()
    # Only the top of the sample matters: drop the taken pairs among it (existing edges may be the best ones).
    top = min(est.numel(), 4 * math.ceil(want * est.numel() / space) + 4 * _MIN_ABOVE)
    v, at = torch.topk(est, top)
    keys = rows[torch.div(at, c, rounding_mode="floor")] * n_in + cols[at % c]
    return v[~in_sorted(keys, taken)], est.numel()


def threshold_pairs(aT: torch.Tensor, bT: torch.Tensor, m: int, taken: torch.Tensor, *, dim: int = 64,
                    generator: torch.Generator, block_bytes: int = 64 * 2 ** 20,
                    margin: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys ``j * n_in + i`` (sorted) of the ``m`` free pairs of largest estimate ``|⟨Qᵀa_i, Qᵀb_j⟩|``, and those.

    A global search: one pass over blocks of output rows of the subspace
    scores keeps the entries at or above a threshold ``τ`` (a compare and a
    ``nonzero``, no per-row top-k), so the candidates are unique by
    construction. ``τ`` starts at the sampled guess of the ``margin · m``-th
    largest free estimate and rises, as a running top-``m`` fills, to the
    ``m``-th largest seen so far; if the guess was too high (fewer than ``m``
    survive) the pass is repeated with a lower one. The result is exactly
    the ``m`` best estimates (ties to any of them).

    Parameters
    ----------
    aT, bT : Tensor ``[n_in, S]``, ``[n_out, S]``
        The score factors.
    m : int
        How many to return (at most the number of free pairs).
    taken : Tensor
        Sorted keys that are never returned (edges and excluded pairs).
    dim : int
        Dimension of the subspace (:func:`subspace`; none if ``dim ≥ S``).
    block_bytes : int
        Upper bound on the bytes of one block of estimates.
    margin : float
        Over-estimate of the first guess's count, so that one pass suffices.
    """
    n_in, n_out = aT.shape[0], bT.shape[0]
    m = min(int(m), n_in * n_out - taken.numel())
    if m <= 0:
        return torch.empty(0, dtype=torch.int64), torch.empty(0)
    q = subspace(aT, bT, dim, generator)
    ra, rb = ((aT, bT) if q is None else (aT @ q, bT @ q))
    ra, rb = ra.float().contiguous(), rb.float().contiguous()
    sample, size = _first_threshold(ra, rb, margin * m, taken.cpu(), generator, block_bytes)
    rows = max(1, min(n_out, block_bytes // (4 * n_in)))
    buf = ra.new_empty(rows, n_in)  # reused: a fresh 64 MB block per product costs its page faults
    taken_dev = taken.to(ra.device)
    scale = margin
    while True:
        j = math.ceil(scale * m * size / (n_in * n_out))
        tau = float(sample[j - 1]) if _MIN_ABOVE <= j <= sample.numel() else 0.0
        keys, vals, n_kept = [], [], 0
        for r0 in range(0, n_out, rows):
            r1 = min(r0 + rows, n_out)
            block = buf[:r1 - r0]
            torch.matmul(rb[r0:r1], ra.T, out=block)
            e0, e1 = torch.searchsorted(taken_dev, torch.tensor([r0 * n_in, r1 * n_in], device=ra.device)).tolist()
            block.view(-1)[taken_dev[e0:e1] - r0 * n_in] = math.nan  # taken pairs never pass
            idx, v = above(block, tau)
            keys.append(idx.to(ra.device) + r0 * n_in)
            vals.append(v.to(ra.device))
            n_kept += idx.numel()
            if n_kept > 2 * m:  # the running top-m: raise τ to its m-th value
                v, kk = torch.cat(vals), torch.cat(keys)
                tau = float(_kth_largest(v, m))
                sel = (v >= tau).nonzero().squeeze(1)
                keys, vals, n_kept = [kk[sel]], [v[sel]], sel.numel()
        if n_kept >= m or tau <= 0.0:
            break
        scale *= 4  # the guess was too high: lower it and search again
    v, kk = topk_by_key(torch.cat(vals).cpu(), torch.cat(keys).cpu(), m)
    o = torch.argsort(kk)
    return kk[o], v[o]
