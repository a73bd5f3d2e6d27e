"""Carry optimizer state across a rewire of a :class:`~topo.nn.SparseLinear`."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError

__all__ = ["remap_optimizer_state"]


def remap_optimizer_state(optimizer: torch.optim.Optimizer, layer, old_to_new: torch.Tensor) -> int:
    """Re-index the optimizer state of ``layer.weight`` after ``layer.rewire(...)``.

    Every per-edge state tensor (first dimension = the old edge count: SGD's
    ``momentum_buffer``, Adam/AdamW's ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq``, Adagrad's ``sum``, …) is rebuilt for the new edges:
    surviving edges keep their state exactly, new edges start at zero (as SET
    does). Scalars such as Adam's ``step`` and entries that are ``None`` stay as they
    are; the state of other parameters is untouched.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    layer : SparseLinear or nn.Parameter
        The rewired layer (already rewired: its weight has the new edge count), or its weight.
    old_to_new : int64 tensor ``[old_num_edges]``
        As returned by ``rewire``: new index of each old edge, or -1.

    Returns
    -------
    int
        How many state tensors were remapped (0 if the optimizer held no state yet).

    Examples
    --------
    >>> import torch, topo
    >>> lin = topo.nn.SparseLinear(8, 4, density=0.5, seed=0)
    >>> opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    >>> lin(torch.randn(2, 8)).sum().backward(); opt.step()
    >>> g = topo.erdos_renyi([8, 4], density=0.25, seed=1).layers[0]
    >>> m = lin.rewire(g)
    >>> remap_optimizer_state(opt, lin, m)
    1
    >>> opt.state[lin.weight]["momentum_buffer"].shape
    torch.Size([8])
    """
    param = layer if isinstance(layer, nn.Parameter) else getattr(layer, "weight", None)
    if not isinstance(param, nn.Parameter):
        raise ParameterTypeError(f"expected a SparseLinear or its weight Parameter, got {type(layer).__name__}")
    if not any(p is param for group in optimizer.param_groups for p in group["params"]):
        raise ParameterError("the layer's weight is not among this optimizer's parameters; "
                             "build the optimizer from model.parameters() (rewire keeps the same Parameter)")
    old_to_new = torch.as_tensor(old_to_new)
    if old_to_new.dim() != 1 or old_to_new.dtype not in (torch.int64, torch.int32):
        raise ParameterError(f"old_to_new must be a 1-D integer tensor, got shape {tuple(old_to_new.shape)} "
                             f"dtype {old_to_new.dtype}")
    old_e, new_e = old_to_new.numel(), param.numel()
    if old_e and int(old_to_new.max()) >= new_e:
        raise ParameterError(f"old_to_new points at edge {int(old_to_new.max())} but the layer has {new_e} "
                             f"edges; call remap_optimizer_state after layer.rewire")
    state = optimizer.state.get(param)
    if not state:
        return 0
    keep = old_to_new >= 0
    count = 0
    for key, value in list(state.items()):
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != old_e:
            continue
        dev_keep = keep.to(value.device)
        out = value.new_zeros((new_e,) + tuple(value.shape[1:]))
        out[old_to_new[keep].to(value.device)] = value[dev_keep]
        state[key] = out
        count += 1
    return count
