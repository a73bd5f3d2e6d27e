"""Carry optimizer state across a rewire of a :class:`~topo.nn.SparseLinear`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..graph.alloc import zeros
from ..graph.keyset import carry

__all__ = ["remap_optimizer_state", "Moves"]


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
    moves = Moves(old_to_new)
    if old_e and moves.max_target >= new_e:
        raise ParameterError(f"old_to_new points at edge {moves.max_target} but the layer has {new_e} "
                             f"edges; call remap_optimizer_state after layer.rewire")
    state = optimizer.state.get(param)
    if not state:
        return 0
    count = 0
    for key, value in list(state.items()):
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != old_e:
            continue
        shape = (new_e,) + tuple(value.shape[1:])
        state[key] = moves.carry(value, zeros(shape, value.dtype) if value.device.type == "cpu"
                                 else value.new_zeros(shape))
        count += 1
    return count


#: dtypes whose per-edge copies go through numpy on CPU (its fancy indexing is 2-5x torch's there).
_NUMPY_DTYPES = (torch.float16, torch.float32, torch.float64, torch.int32, torch.int64)


class Moves:
    """Where each old edge goes after a rewire (``old_to_new``, ``-1`` = removed), ready to move values.

    The survivors' old and new positions are found once and reused for the weight, its gradient
    and every optimizer state tensor.

    Examples
    --------
    >>> m = Moves(torch.tensor([1, -1, 2]))
    >>> m.carry(torch.tensor([5., 6., 7.]), torch.zeros(4)).tolist()
    [0.0, 5.0, 7.0, 0.0]
    """

    def __init__(self, old_to_new: torch.Tensor) -> None:
        self.old_to_new = old_to_new.detach().cpu().to(torch.int64)
        o = self.old_to_new.numpy()
        self.max_target = int(o.max()) if o.size else -1
        self._index: tuple | None = None
        self._dev: dict = {}

    def carry(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """``new[target] = old[source]`` in place; returns ``new``."""
        if old.dim() == 1 and carry(self.old_to_new, old, new):  # one walk, no index arrays
            return new
        if self._index is None:
            o = self.old_to_new.numpy()
            source = np.flatnonzero(o >= 0)
            self._index = (source, o[source])
        source, target = self._index
        if old.device.type == "cpu" and new.device.type == "cpu" and old.dtype == new.dtype \
                and old.dtype in _NUMPY_DTYPES and new.is_contiguous():
            new.numpy()[target] = old.detach().numpy()[source]
            return new
        dev = new.device
        if dev not in self._dev:
            self._dev[dev] = (torch.from_numpy(source).to(dev), torch.from_numpy(target).to(dev))
        src, dst = self._dev[dev]
        new[dst] = old.detach()[src.to(old.device)].to(new.dtype)
        return new
