"""Identical topologies on every rank: evolution decided on one rank and broadcast, and a hash check.

Evolution runs on rank 0 only (its rule, its generator, its scores); the other
ranks receive what changed — per sparse layer the *positions* of the edges
that died (in the pre-step edge order every rank shares) and the *keys* and
values of the edges born — and apply it with ``rewire(keep="matching")`` plus
:func:`topo.nn.remap_optimizer_state`, exactly the bookkeeping rank 0's
evolver did. The payload is ``O(ζ·E)`` per layer, not the whole edge set.

:func:`check_consistent` then compares per-layer sha256 digests of every rank
with rank 0's (one ``all_gather`` of 32 bytes per layer) and raises
:class:`~topo.errors.TopologyMismatchError` on *every* rank if any differ, so no
rank is left waiting in a later collective.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import TopoError, TopologyError, TopologyMismatchError
from ._collective import _dist, comm_device

__all__ = ["sparse_layers", "layer_digests", "check_consistent", "broadcast_evolution"]


def sparse_layers(model: nn.Module) -> list[nn.Module]:
    """The model's :class:`~topo.nn.SparseLinear` layers in a fixed order (``sparse_layers`` if it has one)."""
    from ..nn import SparseLinear

    if isinstance(model, SparseLinear):
        return [model]
    own = getattr(model, "sparse_layers", None)
    if isinstance(own, nn.ModuleList):
        return list(own)
    return [m for m in model.modules() if isinstance(m, SparseLinear)]


def _keys(layer) -> torch.Tensor:
    ei = layer.edge_index.detach()
    return (ei[1].to(torch.int64) * layer.in_features + ei[0]).cpu()


def _hash_values(h, tensors) -> None:
    for t in tensors:
        if t is not None:
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())


def layer_digests(model: nn.Module, values: bool = False) -> list[bytes]:
    """sha256 per sparse layer of its shape and edge structure (and its values and bias if ``values``).

    Equal edge sets give equal digests on any machine (little-endian int64 keys,
    like :meth:`topo.Topology.fingerprint`). With ``values``, one more digest
    covers every parameter outside the sparse layers (e.g. a dense output layer),
    if the model has any.
    """
    out = []
    layers = sparse_layers(model)
    for layer in layers:
        h = hashlib.sha256()
        h.update(f"{layer.in_features}->{layer.out_features}:{layer.num_edges}".encode())
        h.update(_keys(layer).numpy().astype("<i8", copy=False).tobytes())
        if values:
            _hash_values(h, (layer.weight, layer.bias))
        out.append(h.digest())
    if values:
        inside = {id(p) for layer in layers for p in layer.parameters()}
        others = [p for p in model.parameters() if id(p) not in inside]
        if others:
            h = hashlib.sha256(b"other parameters")
            _hash_values(h, others)
            out.append(h.digest())
    return out


def check_consistent(model: nn.Module, values: bool = False, where: str = "") -> str:
    """Raise :class:`~topo.errors.TopologyMismatchError` unless every rank's sparse layers equal rank 0's.

    Every rank must call it (it is a collective). With ``values=True`` the edge
    values and biases must be bit-identical too, as they are after
    :func:`~topo.distributed.allreduce_gradients` and identical optimizer steps.

    Parameters
    ----------
    model : nn.Module
    values : bool
        Compare values as well as structure.
    where : str
        Appended to the error message (e.g. ``"after the evolution step of epoch 3"``).

    Returns
    -------
    str
        Hex sha256 over this rank's layer digests (equal on all ranks on success).
    """
    digests = layer_digests(model, values)
    total = hashlib.sha256(b"".join(digests)).hexdigest()
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return total
    world, rank, dev = dist.get_world_size(), dist.get_rank(), comm_device()
    what = "values" if values else "topology"
    suffix = f" {where}" if where else ""
    counts = [torch.zeros(1, dtype=torch.int64, device=dev) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(digests)], dtype=torch.int64, device=dev))
    counts = [int(c) for c in counts]
    odd = [r for r in range(world) if counts[r] != counts[0]]
    if odd:
        raise TopologyMismatchError(
            f"{what} mismatch{suffix}: rank(s) {odd} have {[counts[r] for r in odd]} sparse layers, "
            f"rank 0 has {counts[0]}", ranks=odd, layer=None)
    mine = torch.frombuffer(bytearray(b"".join(digests)), dtype=torch.uint8).reshape(len(digests), 32)
    gathered = [torch.zeros_like(mine, device=dev) for _ in range(world)]
    dist.all_gather(gathered, mine.to(dev))
    gathered = [g.cpu() for g in gathered]
    bad, first = [], None
    for r in range(1, world):
        differs = (gathered[r] != gathered[0]).any(dim=1).nonzero().reshape(-1)
        if differs.numel():
            bad.append(r)
            first = int(differs[0]) if first is None else min(first, int(differs[0]))
    if bad:
        me = " (this rank)" if rank in bad else ""
        n_sparse = len(sparse_layers(model))
        part = f"sparse layer {first}" if first < n_sparse else "the parameters outside the sparse layers"
        raise TopologyMismatchError(
            f"{what} mismatch{suffix}: rank(s) {bad}{me} differ from rank 0, first in {part} "
            f"(rank 0 {gathered[0][first].numpy().tobytes().hex()[:16]}…, rank {bad[0]} "
            f"{gathered[bad[0]][first].numpy().tobytes().hex()[:16]}…); every rank must hold the same {what}",
            ranks=bad, layer=first)
    return total


def _changes(layer, old_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deaths as positions in the old edge order, births as keys, and the births' current values."""
    new_keys = _keys(layer)
    pos = torch.searchsorted(new_keys, old_keys).clamp_(max=max(new_keys.numel() - 1, 0))
    alive = new_keys[pos] == old_keys if new_keys.numel() else torch.zeros_like(old_keys, dtype=torch.bool)
    deaths = (~alive).nonzero().reshape(-1)
    del pos, alive
    pos = torch.searchsorted(old_keys, new_keys).clamp_(max=max(old_keys.numel() - 1, 0))
    old = old_keys[pos] == new_keys if old_keys.numel() else torch.zeros_like(new_keys, dtype=torch.bool)
    born_at = (~old).nonzero().reshape(-1)
    return deaths, new_keys[born_at], layer.weight.detach()[born_at.to(layer.weight.device)].cpu()


def _apply(layer, deaths: torch.Tensor, births: torch.Tensor, values: torch.Tensor, optimizer) -> None:
    from ..graph.layer import LayerGraph
    from ..nn import remap_optimizer_state

    old_keys = _keys(layer)
    keep = torch.ones(old_keys.numel(), dtype=torch.bool)
    keep[deaths] = False
    graph = LayerGraph.from_keys(layer.in_features, layer.out_features, torch.cat([old_keys[keep], births]))
    del keep, old_keys
    # "zeros" draws no random numbers: this rank's RNG streams stay where rank 0's evolver left its own.
    old_to_new = layer.rewire(graph, keep="matching", init="zeros")
    at = torch.searchsorted(graph.keys(), births).to(layer.weight.device)
    with torch.no_grad():
        layer.weight[at] = values.to(device=layer.weight.device, dtype=layer.weight.dtype)
    if optimizer is not None and any(p is layer.weight for g in optimizer.param_groups for p in g["params"]):
        remap_optimizer_state(optimizer, layer, old_to_new)


def broadcast_evolution(model: nn.Module, step: Callable[[], Any] | None = None, optimizer=None, src: int = 0,
                        check: bool = True, where: str = "") -> Any:
    """Run ``step()`` (an evolution step that rewires ``model``) on rank ``src`` and replay it on every rank.

    Every rank calls this with the same ``model`` structure; only rank ``src``
    calls ``step`` (typically ``lambda: evolver.step(...)``, whose evolver owns
    rank ``src``'s optimizer-state bookkeeping). The other ranks receive, per
    sparse layer, the deaths (positions), births (keys) and the births' values,
    rewire, and remap ``optimizer``'s state like the evolver did. If ``step``
    raises on rank ``src``, every other rank raises a TopologyError too (nobody
    is left waiting). With ``check`` the result is verified with
    :func:`check_consistent` (structure).

    Returns
    -------
    The return value of ``step`` on rank ``src``, ``None`` on the other ranks.
    """
    dist = _dist()
    layers = sparse_layers(model)
    if dist is None or dist.get_world_size() == 1:
        return step() if step is not None else None
    rank, dev = dist.get_rank(), comm_device()
    result, failure, apply_error = None, None, None
    old = []
    if rank == src:
        old = [_keys(layer) for layer in layers]
        try:
            result = step() if step is not None else None
        except BaseException as err:  # the others must hear of it, then it propagates here
            failure = err
    status = torch.tensor([0 if failure is None else 1], dtype=torch.int64, device=dev)
    dist.broadcast(status, src=src)
    if int(status) != 0:
        if failure is not None:
            raise failure
        raise TopologyError(f"the evolution step failed on rank {src}; see its error")
    for k, layer in enumerate(layers):
        if rank == src:
            deaths, births, values = _changes(layer, old[k])
            old[k] = None  # stream: free each layer's snapshot as soon as it is sent
            header = torch.tensor([len(deaths), len(births), layer.num_edges], dtype=torch.int64)
        else:
            header = torch.zeros(3, dtype=torch.int64)
        header = header.to(dev)
        dist.broadcast(header, src=src)
        n_dead, n_born, _ = (int(v) for v in header.cpu())
        if rank != src:
            deaths = torch.empty(n_dead, dtype=torch.int64)
            births = torch.empty(n_born, dtype=torch.int64)
            values = torch.empty(n_born, dtype=layer.weight.dtype)
        parts = []
        for t in (deaths, births, values):
            w = t.to(dev)
            dist.broadcast(w, src=src)
            parts.append(w.cpu())
        if rank != src and (n_dead or n_born) and apply_error is None:
            try:
                _apply(layer, *parts, optimizer)
            except (TopoError, IndexError, RuntimeError) as err:
                # This rank had diverged before the step (rank 0's changes do not fit its edges).
                # Keep receiving, so that no rank waits on it, and let the check name the layer.
                apply_error = err
    if check:
        check_consistent(model, where=where or "after an evolution step")
    if apply_error is not None:
        raise TopologyMismatchError(f"rank {rank} could not replay rank {src}'s evolution step: {apply_error}",
                                    ranks=[rank], layer=None)
    return result
