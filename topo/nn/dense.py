"""Dense copies of sparse models: plain ``nn.Linear`` / ``nn.Sequential`` modules with identical outputs.

For deployment where a sparse kernel is not available (ONNX runtimes, TorchScript
consumers, other frameworks) or as a reference in tests. A dense copy allocates
``n_in · n_out`` per layer; the sparse model is left untouched.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, cast, overload

import torch
from torch import nn

from ..errors import ParameterTypeError

if TYPE_CHECKING:
    from .linear import SparseLinear
    from .mlp import SparseMLP

__all__ = ["to_dense", "linear_from_sparse"]


def linear_from_sparse(layer) -> nn.Linear:
    """An ``nn.Linear`` equal to a :class:`~topo.nn.SparseLinear` (zeros off its edges), same device and dtype."""
    w = layer.weight.detach()
    lin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device=w.device,
                    dtype=w.dtype)
    with torch.no_grad():
        lin.weight.copy_(layer.to_dense())
        if layer.bias is not None:
            lin.bias.copy_(layer.bias.detach())
    lin.weight.requires_grad_(layer.weight.requires_grad)
    return lin.train(layer.training)


def _dropout_p(model: SparseMLP, k: int) -> float:
    return cast(nn.Dropout, model.dropouts[k]).p  # SparseMLP.dropouts holds Dropout modules only


@overload
def to_dense(model: SparseLinear) -> nn.Linear: ...
@overload
def to_dense(model: SparseMLP) -> nn.Sequential: ...
@overload
def to_dense(model: nn.Module) -> nn.Module: ...


def to_dense(model: nn.Module) -> nn.Module:
    """A dense copy of ``model`` whose outputs equal the sparse model's.

    * a :class:`~topo.nn.SparseLinear` → ``nn.Linear``;
    * a :class:`~topo.nn.SparseMLP` → ``nn.Sequential(Linear, activation, Dropout, ..., Linear)``
      (the dropout is ``nn.Dropout`` with the same ``p``: identical outputs in eval mode);
    * any other module → a deep copy in which every SparseLinear is an ``nn.Linear`` under the
      same name (e.g. a CNN passed through :func:`topo.sparsify`).

    Examples
    --------
    >>> import torch, topo
    >>> model = topo.compile(topo.erdos_renyi([6, 8, 3], density=0.5, seed=0), seed=0).eval()
    >>> dense = topo.nn.to_dense(model)
    >>> [type(m).__name__ for m in dense]
    ['Linear', 'ReLU', 'Dropout', 'Linear']
    >>> x = torch.randn(5, 6)
    >>> torch.allclose(dense(x), model(x), atol=1e-6)
    True
    """
    from .linear import SparseLinear
    from .mlp import SparseMLP

    if not isinstance(model, nn.Module):
        raise ParameterTypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, SparseLinear):
        return linear_from_sparse(model)
    if isinstance(model, SparseMLP):
        mods: list[nn.Module] = []
        layers = model.layers
        for k, layer in enumerate(layers):
            mods.append(linear_from_sparse(layer) if isinstance(layer, SparseLinear) else copy.deepcopy(layer))
            if k < len(layers) - 1:
                mods += [copy.deepcopy(model.activations[k]), nn.Dropout(_dropout_p(model, k))]
        return nn.Sequential(*mods).train(model.training)
    # Swap every SparseLinear of a copy for its dense twin, under the same name.
    out = copy.deepcopy(model)
    twins: dict[int, nn.Linear] = {}  # a layer shared under several names stays shared
    for name, m in list(out.named_modules(remove_duplicate=False)):
        if isinstance(m, SparseLinear) and name:
            parent, _, child = name.rpartition(".")
            twin = twins.setdefault(id(m), linear_from_sparse(m))
            setattr(out.get_submodule(parent) if parent else out, child, twin)
    return out
