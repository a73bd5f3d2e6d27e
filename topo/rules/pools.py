"""``mode="pool"`` growth: the best of a pool of random row-group × column-group blocks (see
:meth:`topo.rules.PairScores.top_nonedges`)."""

from __future__ import annotations

import math

import torch

from ..graph.layer import LayerGraph
from .scores import PairScores, in_sorted, topk_by_key

__all__ = ["block_pool_top"]


def block_pool_top(scores: PairScores, graph: LayerGraph, k: int, exclude: torch.Tensor, taken: torch.Tensor,
                   pool: int, generator: torch.Generator, block_bytes: int) -> torch.Tensor:
    """The ``k`` best of a block pool of about ``pool`` free pairs (``mode="pool"``, see
    :meth:`PairScores.top_nonedges`), sorted; ``scores`` is the :class:`PairScores`."""
    n_in, n_out, dev = graph.n_in, graph.n_out, scores.aT.device
    space = n_in * n_out
    # Enough cells that about `pool` of them are free; G blocks of r x c cells.
    cells = min(space, math.ceil(pool * space / max(1, space - taken.numel())))
    groups = max(1, min(n_in, n_out, space // cells))
    r, c = -(-n_out // groups), -(-n_in // groups)

    def split(n: int, width: int) -> torch.Tensor:
        idx = torch.full((groups * width,), -1, dtype=torch.int64)  # -1 pads the last groups
        idx[:n] = torch.randperm(n, generator=generator)
        return idx.view(groups, width)

    rows, cols = split(n_out, r), split(n_in, c)
    per = max(1, block_bytes // ((r + c) * scores.num_samples * scores.aT.element_size() + r * c * 16))
    best_v = torch.empty(0, dtype=scores.aT.dtype)
    best_k = torch.empty(0, dtype=torch.int64)
    for g0 in range(0, groups, per):
        rr, cc = rows[g0:g0 + per], cols[g0:g0 + per]
        sc = torch.bmm(scores.bT[rr.clamp(min=0).to(dev)], scores.aT[cc.clamp(min=0).to(dev)].transpose(1, 2))
        keys = (rr[:, :, None] * n_in + cc[:, None, :]).reshape(-1)
        cell = ((rr[:, :, None] >= 0) & (cc[:, None, :] >= 0)).reshape(-1).nonzero().squeeze(1)
        cell = cell[~in_sorted(keys[cell], taken)]
        best_v, best_k = topk_by_key(torch.cat([best_v, sc.reshape(-1).cpu()[cell].abs_()]),
                                     torch.cat([best_k, keys[cell]]), k)
    if best_k.numel() < k:  # a pool short of free pairs (nearly dense layer): rank them all
        return scores._exact_top(graph, k, exclude, block_bytes)
    return torch.sort(best_k).values
