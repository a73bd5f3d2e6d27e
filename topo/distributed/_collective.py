"""Collectives for data-parallel training: gradient all-reduce, model broadcast, metric sums, sharding.

Why an explicit all-reduce instead of ``DistributedDataParallel``: DDP registers
its buckets on the parameters' shapes when it wraps the model, and a rewire
changes the edge count of a :class:`~topo.nn.SparseLinear`'s ``weight``; DDP
would have to be torn down and rebuilt after every evolution step. An explicit
all-reduce after ``backward()`` costs one pass over the gradients, handles any
shape, any parameter set and any module, and lets the caller weight ranks by
their share of the batch so uneven shards still give the exact global mean.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ParameterError, TopologyError

__all__ = ["allreduce_gradients", "broadcast_model", "allreduce_sum", "shard", "comm_device", "agree"]

#: Gradients are concatenated into buckets of at most this many bytes per all-reduce call.
DEFAULT_BUCKET_BYTES = 32 * 2**20


def _dist():
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist


def comm_device() -> torch.device:
    """The device collectives run on: the current CUDA device under NCCL, else the CPU."""
    dist = _dist()
    if dist is not None and str(dist.get_backend()) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _params(params) -> list[nn.Parameter]:
    if isinstance(params, nn.Module):
        params = params.parameters()
    out = [p for p in params if isinstance(p, torch.Tensor) and p.requires_grad]
    return out


def allreduce_gradients(params: nn.Module | Iterable[torch.Tensor], weight: float | None = None,
                        bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> int:
    """Combine the ``.grad`` of every parameter across ranks, in place.

    Without ``weight`` the result is the mean over ranks (DDP's convention).
    With ``weight`` each rank's gradient is multiplied by it before summing:
    pass ``n_local / n_global`` (this rank's share of the global batch) and the
    result is the exact gradient of the global batch mean even when the shards
    differ in size, or a rank has no samples (``weight=0``).

    A parameter whose gradient is ``None`` on this rank but not on another gets
    a zero gradient first (as DDP does), so all ranks reduce the same tensors.
    Gradients are concatenated into buckets of ``bucket_bytes`` per call;
    larger gradients are reduced in place on their own. Outside a process
    group of more than one rank this only applies ``weight``.

    Returns
    -------
    int
        Number of gradient elements reduced.
    """
    params = _params(params)
    dist = _dist()
    world = 1 if dist is None else dist.get_world_size()
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0):
        raise ParameterError(f"weight must be a non-negative number, got {weight!r}")
    if world == 1:
        if weight is not None and weight != 1:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(weight)
        return sum(p.grad.numel() for p in params if p.grad is not None)
    dev = comm_device()
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=dev)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    grads = []
    for p, f in zip(params, flags.tolist()):
        if f and p.grad is None:
            p.grad = torch.zeros_like(p)
        if f:
            if p.grad.is_sparse:
                raise ParameterError("allreduce_gradients handles dense gradients only")
            grads.append(p.grad)
    scale_before = 1.0 if weight is None else float(weight)
    scale_after = 1.0 / world if weight is None else 1.0
    bucket: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        nonlocal bucket, size
        if not bucket:
            return
        flat = torch.cat([g.reshape(-1) for g in bucket]).to(dev)
        _reduce(dist, flat, scale_before, scale_after)
        off = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[off:off + n].view_as(g))
            off += n
        bucket, size = [], 0

    for g in grads:
        nbytes = g.numel() * g.element_size()
        if nbytes >= bucket_bytes or (g.device != dev):
            t = g if g.is_contiguous() and g.device == dev else g.contiguous().to(dev)
            _reduce(dist, t, scale_before, scale_after)
            if t is not g:
                g.copy_(t)
            continue
        if bucket and (g.dtype != bucket[0].dtype or size + nbytes > bucket_bytes):
            flush()
        bucket.append(g)
        size += nbytes
    flush()
    return sum(g.numel() for g in grads)


def _reduce(dist, t: torch.Tensor, before: float, after: float) -> None:
    if before != 1.0:
        t.mul_(before)
    dist.all_reduce(t)
    if after != 1.0:
        t.mul_(after)


def agree(fn, *args, what: str = "a step", ranks: str = "all", **kwargs):
    """Run ``fn`` (on every rank, or on rank 0 with ``ranks="main"``) and fail on all ranks if it failed on any.

    Without this, an error on one rank (a run directory refused, a checkpoint
    that cannot be written) would leave the other ranks waiting in their next
    collective until the timeout. The rank that failed re-raises its own
    exception; the others raise a :class:`~topo.errors.TopologyError` naming it.
    Outside a process group this is ``fn(*args, **kwargs)``.

    Returns
    -------
    ``fn``'s return value (``None`` on ranks that did not run it).
    """
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return fn(*args, **kwargs)
    rank = dist.get_rank()
    result, error = None, None
    if ranks == "all" or rank == 0:
        try:
            result = fn(*args, **kwargs)
        except Exception as err:  # reported to every rank below, then re-raised here
            error = err
    flags = torch.zeros(dist.get_world_size(), dtype=torch.int32, device=comm_device())
    flags[rank] = error is not None
    dist.all_reduce(flags)
    failed = flags.nonzero().reshape(-1).tolist()
    if error is not None:
        raise error
    if failed:
        raise TopologyError(f"{what} failed on rank(s) {failed}; see the error there")
    return result


def allreduce_sum(values) -> torch.Tensor:
    """Element-wise sum over ranks of a list of numbers (float64, on the CPU); identity without a group.

    Examples
    --------
    >>> allreduce_sum([1.5, 2]).tolist()   # outside a process group
    [1.5, 2.0]
    """
    t = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return t
    t = t.to(comm_device())
    dist.all_reduce(t)
    return t.cpu()


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s part of ``indices``: every ``world_size``-th element from position ``rank``.

    Applied to each global batch of a shuffled permutation (the same on every
    rank), the ranks' parts are disjoint, cover the batch, and differ in size
    by at most one.

    Examples
    --------
    >>> shard(torch.arange(7), 1, 3).tolist()
    [1, 4]
    """
    if not 0 <= rank < world_size:
        raise ParameterError(f"rank {rank} out of range for world_size {world_size}")
    return indices[rank::world_size]


def broadcast_model(module: nn.Module, src: int = 0) -> None:
    """Make every rank's parameters and buffers equal to rank ``src``'s, in place.

    Tensors whose shape already agrees are received straight into this rank's
    storage; others (a :class:`~topo.nn.SparseLinear` with another edge count)
    are received into new tensors. The result is then loaded with
    ``load_state_dict``, which resizes such layers and drops their cached CSR
    structures. Optimizer state is not touched: call this before the
    first step, or load the same checkpoint on every rank.
    """
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return
    dev = comm_device()
    state = module.state_dict(keep_vars=False)
    meta = [[(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]]
    dist.broadcast_object_list(meta, src=src, device=dev if dev.type == "cuda" else None)
    mine = dist.get_rank() == src
    replaced: dict[str, torch.Tensor] = {}
    for key, shape, dtype in meta[0]:
        dtype = getattr(torch, dtype)
        own = state.get(key)
        fits = own is not None and tuple(own.shape) == shape and own.dtype == dtype
        if mine:
            buf = own
        elif fits:
            buf = own
        else:
            buf = torch.empty(shape, dtype=dtype, device=own.device if own is not None else "cpu")
        wire = buf if buf.device == dev and buf.is_contiguous() and buf.dtype != torch.bool else None
        if wire is None:
            wire = buf.contiguous().to(dev)
            wire = wire.view(torch.uint8) if wire.dtype == torch.bool else wire
        dist.broadcast(wire, src=src)
        if not mine:
            if wire.dtype != buf.dtype:
                wire = wire.view(torch.bool)
            if wire.data_ptr() != buf.data_ptr():
                buf.copy_(wire.to(buf.device))
            if not fits:
                replaced[key] = buf
    if not mine:
        if set(replaced) - set(state):
            raise TopologyError(f"rank {dist.get_rank()}'s model lacks {sorted(set(replaced) - set(state))} "
                                f"that rank {src} has: build the same model on every rank")
        state.update(replaced)
        # Also when every tensor arrived in place: loading is what tells modules that cache derived
        # structures (SparseLinear's CSR) that their buffers changed.
        module.load_state_dict(state)
