"""The SET step as topo ran it before the sorted-key rewrite (commit 5ee8685), kept as a timing baseline.

``topo bench setstep`` times this next to today's :class:`~topo.Evolver` step on the
same layer, optimizer state and seed, and checks that both give the same edges,
values and momentum. It is the old code path, condensed to the case the benchmark
runs (``SET(ζ)`` at constant edge count, no regrowth of pruned edges, ``"zeros"``
births, an SGD momentum buffer, a History without weights): full sorts and
argsorts of the weights and keys, ``torch.searchsorted`` membership tests,
``torch.unique`` per sampling round, the validating (and sorting) ``LayerGraph``
constructor, torch index scatters, and the History's re-sorted deaths and births.
Not for use outside the benchmark.
"""

from __future__ import annotations

import torch

from ..graph.layer import LayerGraph
from ..rules.base import count_for

__all__ = ["reference_step", "reference_history_keys"]


def _ascending(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    return positions[torch.argsort(values, stable=True)]


def _in_sorted(values: torch.Tensor, sorted_keys: torch.Tensor) -> torch.Tensor:
    if sorted_keys.numel() == 0:
        return torch.zeros(values.shape, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, values).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == values


def _from_keys(n_in: int, n_out: int, keys: torch.Tensor, weight=None) -> LayerGraph:
    return LayerGraph(n_in, n_out, keys % n_in, torch.div(keys, n_in, rounding_mode="floor"), weight)


def _sample_keys(space: int, m: int, generator: torch.Generator, exclude: torch.Tensor) -> torch.Tensor:
    n_ex = exclude.numel()
    if not bool((exclude[1:] > exclude[:-1]).all()):
        raise ValueError("exclude must be sorted")
    if m + n_ex > 0.25 * space:
        raise ValueError("the reference step covers sparse layers only (the rejection sampler)")
    keys = torch.empty(0, dtype=torch.int64)
    while keys.numel() < m:
        need = m - keys.numel()
        draw = torch.randint(0, space, (int(need * 1.1) + 16,), generator=generator, dtype=torch.int64)
        if n_ex:
            draw = torch.sort(draw).values
            pos = torch.searchsorted(exclude, draw).clamp_(max=n_ex - 1)
            draw = draw[exclude[pos] != draw]
        keys = torch.unique(torch.cat([keys, draw]))
    if keys.numel() > m:
        keys = torch.sort(keys[torch.randperm(keys.numel(), generator=generator)[:m]]).values
    return keys


def _rule(graph: LayerGraph, zeta: float, generator: torch.Generator) -> tuple[LayerGraph, torch.Tensor,
                                                                                  torch.Tensor]:
    """The old ``SET(zeta)(graph)``: ``(new graph, births [2, k], deaths [2, k])``."""
    n_in, n_out, e = graph.n_in, graph.n_out, graph.num_edges
    w = graph.weight.detach().cpu()
    pos, neg = (w >= 0).nonzero().squeeze(1), (w < 0).nonzero().squeeze(1)
    drop = torch.cat([_ascending(w[pos], pos)[:count_for(zeta, pos.numel())],
                      _ascending(-w[neg], neg)[:count_for(zeta, neg.numel())]])
    drop = torch.sort(drop).values
    drop = _ascending(w[drop].abs(), drop)[:n_in * n_out - e]
    alive = torch.ones(e, dtype=torch.bool)
    alive[drop] = False
    if e - int(alive.sum()) != drop.numel():
        raise RuntimeError("repeated positions")
    keys = graph.dst * n_in + graph.src
    order = torch.argsort(keys[drop])
    dead = keys[drop][order]
    kept = LayerGraph(n_in, n_out, graph.src[alive], graph.dst[alive], w[alive])
    # GrowCriterion.__call__ and RandomGrow.select
    exclude = torch.unique(dead)
    kept_keys = kept.dst * n_in + kept.src
    exclude = exclude[~_in_sorted(exclude, kept_keys)]
    taken = torch.sort(torch.cat([kept_keys, exclude])).values
    born = torch.sort(_sample_keys(n_in * n_out, drop.numel(), generator, taken)).values
    if bool((born[1:] == born[:-1]).any()) or bool(_in_sorted(born, kept_keys).any()) \
            or bool(_in_sorted(born, dead).any()):
        raise RuntimeError("bad births")
    values = torch.cat([kept.weight, kept.weight.new_zeros(born.numel())])
    new = _from_keys(n_in, n_out, torch.cat([kept_keys, born]), values)

    def edges(k):
        return torch.stack([k % n_in, torch.div(k, n_in, rounding_mode="floor")])

    return new, edges(born), edges(dead)


def _match(old_keys: torch.Tensor, new_keys: torch.Tensor) -> torch.Tensor:
    pos = torch.searchsorted(new_keys, old_keys)
    hit = pos < new_keys.numel()
    hit &= new_keys[pos.clamp(max=new_keys.numel() - 1)] == old_keys
    return torch.where(hit, pos, torch.full_like(pos, -1))


def _history_apply(keys: torch.Tensor, births: torch.Tensor, deaths: torch.Tensor, n_in: int,
                   n_out: int) -> torch.Tensor:
    """The old ``History.record``'s per-layer work: copies, deaths out, births merged, a new LayerGraph."""
    births, deaths = births.clone(), deaths.clone()
    for e, n in ((births[0], n_in), (births[1], n_out), (deaths[0], n_in), (deaths[1], n_out)):
        if int(e.min()) < 0 or int(e.max()) >= n:
            raise RuntimeError("index out of range")
    dk = torch.sort(deaths[1] * n_in + deaths[0]).values
    pos = torch.searchsorted(keys, dk)
    if not bool((keys[pos.clamp(max=keys.numel() - 1)] == dk).all()):
        raise RuntimeError("death not alive")
    keep = torch.ones(keys.numel(), dtype=torch.bool)
    keep[pos] = False
    keys = keys[keep]
    bk = torch.sort(births[1] * n_in + births[0]).values
    pos = torch.searchsorted(keys, bk)
    if bool((keys[pos.clamp(max=keys.numel() - 1)] == bk).any()):
        raise RuntimeError("birth clash")
    merged = torch.empty(keys.numel() + bk.numel(), dtype=torch.int64)
    at = pos + torch.arange(bk.numel())
    merged[at] = bk
    rest = torch.ones(merged.numel(), dtype=torch.bool)
    rest[at] = False
    merged[rest] = keys
    g = _from_keys(n_in, n_out, merged)
    return g.dst * n_in + g.src  # what the old History kept: the graph; its keys for the next step


def reference_history_keys(layer) -> torch.Tensor:
    """The keys the old History held for ``layer`` (a SparseLinear) before the step."""
    ei = layer.edge_index.detach().cpu().to(torch.int64)
    return ei[1] * layer.in_features + ei[0]


def reference_step(layer, optimizer: torch.optim.Optimizer, zeta: float, generator: torch.Generator,
                   history_keys: torch.Tensor) -> torch.Tensor:
    """One old SET step of ``layer`` in place (edges, values, gradient, momentum); returns the History's keys."""
    n_in, n_out = layer.in_features, layer.out_features
    ei = layer.edge_index.detach().cpu().to(torch.int64)
    graph = LayerGraph(n_in, n_out, ei[0], ei[1], layer.weight.detach().cpu().clone())  # old layer_graph()
    new, births, deaths = _rule(graph, zeta, generator)
    # SparseLinear.rewire(keep="matching", init="zeros")
    old_to_new = _match(ei[1] * n_in + ei[0], new.dst * n_in + new.src)
    w, e_new = layer.weight, new.num_edges
    survive = old_to_new >= 0
    values = torch.zeros(e_new, dtype=w.dtype)
    values[old_to_new[survive]] = w.detach()[survive]
    with torch.no_grad():
        if w.grad is not None:
            g = w.grad.new_zeros(e_new)
            g[old_to_new[survive]] = w.grad[survive]
            w.grad = None
            w.data = values
            w.grad = g
        else:
            w.data = values
    layer.edge_index = torch.stack([new.src, new.dst]).to(layer.edge_index.dtype)
    layer._invalidate()
    # remap_optimizer_state
    state = optimizer.state.get(w, {})
    for key, value in list(state.items()):
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == old_to_new.numel():
            out = value.new_zeros((e_new,) + tuple(value.shape[1:]))
            out[old_to_new[survive]] = value[survive]
            state[key] = out
    return _history_apply(history_keys, births, deaths, n_in, n_out)
