"""Edge scores for growth and pruning without ever holding an ``n_in × n_out`` matrix.

Both score families used by the rules are bilinear: the score of the pair
(input ``i``, output ``j``) is ``|⟨a[:, i], b[:, j]⟩|`` for two sample matrices
``a`` (``[S, n_in]``) and ``b`` (``[S, n_out]``):

* cosine (Pieterse & Mocanu 2019, CTRE): ``a``, ``b`` are the post-activation
  values of the pre- and postsynaptic neurons over ``S`` samples, each column
  scaled to unit norm (a dead, all-zero neuron keeps a zero column: cos = 0);
* gradient (RigL): ``a`` is the layer input ``X``, ``b`` the gradient of the
  loss with respect to the layer output ``dY``, since ``dL/dW[j, i] = Σ_s
  dY[s, j]·X[s, i]``.

:class:`PairScores` ranks non-edges either exactly, in blocks of output rows
bounded by ``block_bytes`` with a running top-k; approximately, by a
similarity search for the best candidates followed by their exact scores
(``"approx"``, :mod:`topo.rules.search`); or as "best of a random pool"
(``"pool"``, ``"pool-uniform"``), scoring a random sample of candidate
non-edges with a sampled dense-dense product in ``O(pool · S)``. Ties are
broken towards the smaller edge key (``dst * n_in + src``) in every mode, so
results do not depend on the block size.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch

from ..errors import ParameterError, TopologyError
from ..graph.layer import LayerGraph
from ..graph.sampling import sample_keys

#: Ranking modes of :meth:`PairScores.top_nonedges` (``"approx-uniform"`` is the old name of ``"pool-uniform"``).
MODES = ("exact", "approx", "pool", "pool-uniform", "approx-uniform")
_Mode = Literal["exact", "approx", "pool", "pool-uniform", "approx-uniform"]

__all__ = ["MODES", "PairScores", "cosine_scores", "gradient_scores", "topk_by_key", "in_sorted", "DEFAULT_BLOCK_BYTES"]

#: ``mode="approx"`` with per-neuron lists scores exactly this many candidates per edge to grow, the best estimates.
RESCORE = 3

#: ``mode="approx"``'s threshold search (the default) scores this many per edge to grow (at most ``pool_factor``).
THRESHOLD_RESCORE = 2

#: Values of ``search_backend``; ``"auto"`` is ``"threshold"``.
SEARCH_BACKENDS = ("auto", "threshold", "torch", "faiss")

#: Upper bound on the bytes of one block of scores (and of one gather chunk).
DEFAULT_BLOCK_BYTES = 64 * 2 ** 20


def topk_by_key(values: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest ``values`` with their ``keys``; ties go to the smaller key.

    Returns ``(values, keys)`` ordered by decreasing value, then increasing key.

    Examples
    --------
    >>> v, k = topk_by_key(torch.tensor([1., 3., 3., 2.]), torch.tensor([9, 7, 4, 1]), 2)
    >>> v.tolist(), k.tolist()
    ([3.0, 3.0], [4, 7])
    """
    k = min(int(k), values.numel())
    if k <= 0:
        return values[:0], keys[:0]
    if k < values.numel():
        # Keep everything tied with the k-th value, then sort that short list exactly.
        thr = torch.topk(values, k, sorted=False).values.min()
        sel = (values >= thr).nonzero().squeeze(1)
        values, keys = values[sel], keys[sel]
    o = torch.argsort(keys)
    values, keys = values[o], keys[o]
    o = torch.argsort(values, descending=True, stable=True)[:k]
    return values[o], keys[o]


def in_sorted(values: torch.Tensor, sorted_keys: torch.Tensor) -> torch.Tensor:
    """Mask of ``values`` present in ``sorted_keys``, ``O(len(values) · log len(sorted_keys))``.

    Examples
    --------
    >>> in_sorted(torch.tensor([3, 4, 9]), torch.tensor([1, 3, 9])).tolist()
    [True, False, True]
    """
    if sorted_keys.numel() == 0:
        return torch.zeros(values.shape, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, values).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == values


def _block_scores(bT_rows: torch.Tensor, aT: torch.Tensor) -> torch.Tensor:
    """Scores of a block of output rows (``bT_rows [rows, S]``) against every input (``aT [n_in, S]``)."""
    return (bT_rows @ aT.T).abs_()


class PairScores:
    """Scores ``|⟨a[:, i], b[:, j]⟩|`` of (input ``i``, output ``j``) pairs.

    Parameters
    ----------
    a : Tensor ``[S, n_in]``
        One row per sample, one column per input neuron.
    b : Tensor ``[S, n_out]``
        Same samples, one column per output neuron.

    Both are kept transposed (``[n, S]``, contiguous): the layout in which the
    blockwise products and the sampled products read memory in order.

    Examples
    --------
    >>> s = PairScores(torch.tensor([[1., 0.], [0., 2.]]), torch.tensor([[3.], [1.]]))
    >>> s.pairs(torch.tensor([0, 1]), torch.tensor([0, 0])).tolist()
    [3.0, 2.0]
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
            raise ParameterError(f"scores need a [S, n_in] and b [S, n_out] with the same S, "
                                 f"got {tuple(a.shape)} and {tuple(b.shape)}")
        if not a.is_floating_point():
            a = a.to(torch.get_default_dtype())
        b = b.to(device=a.device, dtype=a.dtype)
        self.aT, self.bT = a.detach().T.contiguous(), b.detach().T.contiguous()

    @classmethod
    def _transposed(cls, aT: torch.Tensor, bT: torch.Tensor) -> PairScores:
        self = object.__new__(cls)
        self.aT, self.bT = aT.contiguous(), bT.to(device=aT.device, dtype=aT.dtype).contiguous()
        return self

    @property
    def a(self) -> torch.Tensor:
        """``[S, n_in]`` view."""
        return self.aT.T

    @property
    def b(self) -> torch.Tensor:
        """``[S, n_out]`` view."""
        return self.bT.T

    @property
    def n_in(self) -> int:
        return self.aT.shape[0]

    @property
    def n_out(self) -> int:
        return self.bT.shape[0]

    @property
    def num_samples(self) -> int:
        return self.aT.shape[1]

    def _check(self, graph: LayerGraph) -> None:
        if (graph.n_in, graph.n_out) != (self.n_in, self.n_out):
            raise TopologyError(f"scores are for a {self.n_in}->{self.n_out} layer, "
                                f"the graph is {graph.n_in}->{graph.n_out}")

    def pairs(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Scores of the given (input, output) pairs, ``O(pairs · S)``, on the CPU.

        A sampled dense-dense product (``torch.sparse.sampled_addmm``) computes
        only the requested entries of ``bᵀa``; nothing of size ``n_in · n_out``
        is formed.
        """
        src = torch.as_tensor(src, dtype=torch.int64).reshape(-1).cpu()
        dst = torch.as_tensor(dst, dtype=torch.int64).reshape(-1).cpu()
        if src.shape != dst.shape:
            raise TopologyError(f"src and dst differ in length: {src.numel()} vs {dst.numel()}")
        if src.numel() == 0:
            return torch.empty(0, dtype=self.aT.dtype)
        if int(src.min()) < 0 or int(src.max()) >= self.n_in or int(dst.min()) < 0 or int(dst.max()) >= self.n_out:
            raise TopologyError(f"pairs out of range for a {self.n_in}->{self.n_out} layer")
        keys, inverse = torch.unique(dst * self.n_in + src, return_inverse=True)
        rows = torch.div(keys, self.n_in, rounding_mode="floor")
        crow = torch.cat([rows.new_zeros(1), torch.cumsum(torch.bincount(rows, minlength=self.n_out), 0)])
        dev = self.aT.device
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            pattern = torch.sparse_csr_tensor(crow.to(dev), (keys % self.n_in).to(dev),
                                              torch.zeros(keys.numel(), dtype=self.aT.dtype, device=dev),
                                              size=(self.n_out, self.n_in))
            vals = torch.sparse.sampled_addmm(pattern, self.bT, self.aT.T, beta=0.0).values()
        return vals.abs().cpu()[inverse]

    def edges(self, graph: LayerGraph) -> torch.Tensor:
        """Scores of the existing edges of ``graph``, aligned with its edge order."""
        self._check(graph)
        return self.pairs(graph.src, graph.dst)

    def top_nonedges(self, graph: LayerGraph, k: int, exclude: torch.Tensor | None = None, *,
                     mode: _Mode = "exact", pool_factor: float = 10.0,
                     generator: torch.Generator | None = None,
                     block_bytes: int = DEFAULT_BLOCK_BYTES, search_dim: int = 128,
                     search_backend: str = "auto") -> torch.Tensor:
        """Keys of the ``k`` best-scoring pairs that are neither edges of ``graph`` nor in ``exclude``.

        Parameters
        ----------
        graph : LayerGraph
            Its edges are never returned.
        k : int
            How many to return; at most the number of free pairs.
        exclude : Tensor, optional
            Sorted, unique keys that are never returned either.
        mode : {"exact", "approx", "pool", "pool-uniform"}
            ``"exact"`` ranks every free pair, ``block_bytes`` of scores at a
            time. ``"approx"`` projects the activations on a
            ``search_dim``-dimensional subspace, finds the ``⌈min(pool_factor,
            2)·k⌉`` free pairs of best subspace estimates and ranks those by
            their exact scores (:mod:`topo.rules.search`): sub-quadratic in
            ``S``, high recall of the exact top ``k``. ``search_backend``
            ``"auto"``/``"threshold"`` finds them by one pass over blocks of
            estimates, keeping those above a global threshold (first guessed
            from a random sample of pairs, then raised as a running top-``m``
            fills); ``"torch"`` instead takes each output's ``m_out =
            ⌈pool_factor·k / n_out + taken / n_out⌉`` and each input's
            ``m_in`` best partners (blocked products with per-row and
            per-column top-``m``) and rescores the ``3·k`` best estimates;
            ``"faiss"`` finds the same lists with a FAISS IVF index. On
            20000→20000 the threshold search recalls 0.99 of the exact top
            ``k`` at 12–13× less time, the lists 1.00 at 3–4× (ε = 20)
            (``docs/benchmarks.md``). ``"pool-uniform"`` (formerly
            ``"approx-uniform"``) ranks a uniform pool of ``ceil(pool_factor·k)``
            free pairs, drawn with ``generator`` and scored by a sampled
            product. ``"pool"`` ranks a pool of the same size made of ``G``
            blocks: rows and columns are randomly permuted and cut into ``G``
            groups, block ``g`` pairs row group ``g`` with column group ``g``.
            Every pair is in the pool with the same probability, every neuron
            gets the same number of candidates (fewer in a last, partial
            group), and each block is one dense product, so the pool costs
            about as many memory reads as the activations themselves. Pools
            are "best of a random sample", not approximations of the top
            ``k``: on 20000→20000 they recall about 2 % of it
            (``docs/benchmarks.md``).
        search_dim : int
            Subspace dimension of ``"approx"`` (no projection when ``S ≤
            search_dim``: the estimates are then exact).
        search_backend : {"auto", "threshold", "torch", "faiss"}
            How ``"approx"`` finds its candidates (see ``mode``).

        Returns
        -------
        Tensor
            ``k`` sorted int64 keys ``dst * n_in + src``.
        """
        self._check(graph)
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}, got {mode!r}")
        exclude = _sorted_keys(exclude)
        if exclude.numel():
            exclude = exclude[~in_sorted(exclude, graph.keys())]
        space = graph.n_in * graph.n_out
        free = space - graph.num_edges - exclude.numel()
        k = int(k)
        if k < 0 or k > free:
            raise TopologyError(f"cannot choose {k} new edges among {free} free positions")
        if k == 0:
            return torch.empty(0, dtype=torch.int64)
        if mode != "exact":
            if not pool_factor >= 1:
                raise ParameterError(f"pool_factor must be >= 1, got {pool_factor!r}")
            if generator is None:
                raise ParameterError(f"mode {mode!r} needs a torch.Generator for its random choices")
            taken = torch.sort(torch.cat([graph.keys(), exclude])).values
            if mode == "approx":
                return self._search_top(graph, k, exclude, taken, pool_factor, generator, block_bytes,
                                        search_dim, search_backend)
            if mode == "pool":
                from .pools import block_pool_top

                return block_pool_top(self, graph, k, exclude, taken, math.ceil(k * pool_factor), generator,
                                      block_bytes)
            pool = sample_keys(space, min(free, math.ceil(k * pool_factor)), generator, exclude=taken)
            vals = self.pairs(pool % graph.n_in, pool // graph.n_in)
            return torch.sort(topk_by_key(vals, pool, k)[1]).values
        return self._exact_top(graph, k, exclude, block_bytes)

    def _exact_top(self, graph: LayerGraph, k: int, exclude: torch.Tensor, block_bytes: int) -> torch.Tensor:
        n_in, n_out = graph.n_in, graph.n_out
        aT = self.aT
        crow = graph.crow_indices()
        rows = max(1, block_bytes // (n_in * aT.element_size()))
        best_v = torch.empty(0, dtype=aT.dtype)
        best_k = torch.empty(0, dtype=torch.int64)
        for r0 in range(0, n_out, rows):
            r1 = min(r0 + rows, n_out)
            block = _block_scores(self.bT[r0:r1], aT)
            lo, hi = int(crow[r0]), int(crow[r1])
            block[(graph.dst[lo:hi] - r0).to(block.device), graph.src[lo:hi].to(block.device)] = -torch.inf
            e0, e1 = torch.searchsorted(exclude, torch.tensor([r0 * n_in, r1 * n_in])).tolist()
            flat = block.view(-1)
            if e1 > e0:
                flat[(exclude[e0:e1] - r0 * n_in).to(flat.device)] = -torch.inf
            if flat.numel() - (hi - lo) - (e1 - e0) == 0:
                continue
            idx = _candidates(flat, float(best_v[-1]) if best_k.numel() == k else -math.inf, k)
            best_v, best_k = topk_by_key(torch.cat([best_v, flat[idx].cpu()]),
                                         torch.cat([best_k, idx.cpu() + r0 * n_in]), k)
            del block, flat, idx
        return torch.sort(best_k).values

    def _search_top(self, graph: LayerGraph, k: int, exclude: torch.Tensor, taken: torch.Tensor,
                    pool_factor: float, generator: torch.Generator, block_bytes: int, dim: int,
                    backend: str) -> torch.Tensor:
        from .search import neighbour_pairs, threshold_pairs

        n_in, n_out = graph.n_in, graph.n_out
        if backend not in SEARCH_BACKENDS:
            raise ParameterError(f"search_backend must be one of {SEARCH_BACKENDS}, got {backend!r}")
        if backend in ("auto", "threshold"):
            cand = threshold_pairs(self.aT, self.bT, math.ceil(min(pool_factor, THRESHOLD_RESCORE) * k), taken,
                                   dim=dim, generator=generator, block_bytes=block_bytes)[0]
            return self._rescored_top(cand, k, n_in, block_bytes)
        m_out = min(n_in, math.ceil((pool_factor * k + taken.numel()) / n_out))
        m_in = min(n_out, math.ceil((pool_factor * k + taken.numel()) / n_in))
        cand, est = neighbour_pairs(self.aT, self.bT, m_out, m_in, dim=dim, generator=generator,
                                    backend=backend, block_bytes=block_bytes)
        free = ~in_sorted(cand, taken)
        cand, est = cand[free], est[free]
        if cand.numel() < k:  # nearly dense layer: not enough free candidates found, rank them all
            return self._exact_top(graph, k, exclude, block_bytes)
        # Exact scores for the best estimates only: reading an activation row per candidate is the cost.
        cand = topk_by_key(est, cand, min(cand.numel(), RESCORE * k))[1]
        return self._rescored_top(cand, k, n_in, block_bytes)

    def _rescored_top(self, cand: torch.Tensor, k: int, n_in: int, block_bytes: int) -> torch.Tensor:
        """The ``k`` of the free candidate keys ``cand`` with the best exact scores, sorted."""
        vals = torch.cat([self.pairs(c % n_in, torch.div(c, n_in, rounding_mode="floor"))
                          for c in cand.split(max(1, block_bytes // 64))])
        return torch.sort(topk_by_key(vals, cand, k)[1]).values

    def __repr__(self) -> str:
        return f"PairScores({self.n_in}->{self.n_out}, samples={self.num_samples})"


def _candidates(flat: torch.Tensor, cut: float, k: int) -> torch.Tensor:
    """Positions in ``flat`` that may enter a running top-``k`` whose ``k``-th value is ``cut``.

    Blocks come in increasing key order, so a later value tied with ``cut``
    loses to the earlier key and only values ``> cut`` qualify. Masked pairs
    hold ``-inf`` and never qualify. When more than ``k`` qualify, the block's
    own ``k``-th value raises the cut, so the index list stays near ``k``
    long instead of the block's size.
    """
    above = flat > cut
    if int(torch.count_nonzero(above)) > k:
        above = flat >= _kth_largest(flat, k)
    return above.nonzero().squeeze(1)


def _kth_largest(flat: torch.Tensor, k: int, piece: int = 1 << 20) -> torch.Tensor:
    """The ``k``-th largest value of ``flat`` (``k <= flat.numel()``), in pieces.

    ``torch.topk`` on the CPU works on a copy of (value, index) pairs, 4x the
    scores; pieces of a million values keep that scratch at 16 MB.
    """
    parts = flat.split(piece)  # at least one piece, even of an empty tensor
    best = torch.topk(parts[0], min(k, parts[0].numel()), sorted=False).values
    for part in parts[1:]:
        part = torch.cat([best, part])
        best = torch.topk(part, min(k, part.numel()), sorted=False).values
    return best.min()


def _sorted_keys(keys) -> torch.Tensor:
    if keys is None:
        return torch.empty(0, dtype=torch.int64)
    keys = torch.as_tensor(keys, dtype=torch.int64).reshape(-1).cpu()
    return torch.unique(keys)  # sorted and deduplicated


def _unit_columns_T(x: torch.Tensor) -> torch.Tensor:
    """``x [S, n]`` with each column scaled to unit norm, returned transposed ``[n, S]`` (one copy)."""
    x = torch.as_tensor(x).detach()
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    # clone, not contiguous(): a caller's transposed view would otherwise be scaled in place.
    xT = torch.nan_to_num_(x.T.clone(memory_format=torch.contiguous_format), nan=0.0, posinf=0.0, neginf=0.0)
    # Norms accumulated in float64 so huge activations do not overflow; zero columns stay zero (cos = 0).
    norm = torch.linalg.vector_norm(xT, dim=1, dtype=torch.float64)
    scale = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm)).to(xT.dtype)
    return xT.mul_(scale[:, None])


def cosine_scores(pre: torch.Tensor, post: torch.Tensor) -> PairScores:
    """Scores ``|cos(pre[:, i], post[:, j])|`` from activations ``pre [S, n_in]``, ``post [S, n_out]``.

    Examples
    --------
    >>> s = cosine_scores(torch.tensor([[1., 0.], [1., 0.]]), torch.tensor([[2.], [2.]]))
    >>> [round(x, 6) for x in s.pairs(torch.tensor([0, 1]), torch.tensor([0, 0])).tolist()]
    [1.0, 0.0]
    """
    pre, post = torch.as_tensor(pre), torch.as_tensor(post)
    if pre.dim() != 2 or post.dim() != 2 or pre.shape[0] != post.shape[0]:
        raise ParameterError(f"activations must be [S, n_in] and [S, n_out] with the same S, "
                             f"got {tuple(pre.shape)} and {tuple(post.shape)}")
    return PairScores._transposed(_unit_columns_T(pre), _unit_columns_T(post))


def gradient_scores(x: torch.Tensor, grad_out: torch.Tensor) -> PairScores:
    """Scores ``|dL/dW[j, i]| = |Σ_s grad_out[s, j] · x[s, i]|`` (RigL) from a layer's input and output gradient."""
    x, grad_out = torch.as_tensor(x), torch.as_tensor(grad_out)
    return PairScores(torch.nan_to_num(x.detach()), torch.nan_to_num(grad_out.detach()))
