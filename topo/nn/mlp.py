"""``SparseMLP`` and :func:`compile`: a topology as a stack of truly sparse layers."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..graph.layer import LayerGraph
from ..graph.sampling import make_generator
from ..graph.topology import Topology
from .activations import ACTIVATIONS, make_activation
from .backends import check_backend
from .dropout import Dropout
from .init import check_init
from .linear import SparseLinear

__all__ = ["SparseMLP", "compile", "ACTIVATIONS"]



def _activation(spec, position: int = 0) -> nn.Module:
    """The activation module of hidden layer ``position`` (``allrelu`` alternates its slope by position).

    A module is deep-copied, so modules with parameters stay untied between positions.
    """
    return make_activation(spec, allow="module", position=position)


class SparseMLP(nn.Module):
    """A multilayer perceptron whose layers are the :class:`SparseLinear` of a topology.

    ``SparseLinear → activation → dropout`` for every layer but the last, which
    returns logits (no activation). Weighted topologies keep their weights.

    Parameters
    ----------
    topology : Topology
    activation : str or nn.Module
        ``relu``, ``tanh``, ``sigmoid``, ``gelu``, ``identity``, ``leaky_relu``, ``elu``,
        ``silu``, or a module (copied per position).
    dropout : float
        Dropout probability after each hidden activation (:class:`topo.nn.dropout.Dropout`:
        ``nn.Dropout`` with a cheaper CPU mask).
    backend : str
        Backend of every sparse layer (see :mod:`topo.nn.backends`).
    output_dense : bool
        Make the last layer an ordinary ``nn.Linear`` (SET's reference code keeps the
        output layer dense). It is then not in :attr:`sparse_layers`, cannot be
        rewired, and :meth:`topology` reports it as a complete bipartite layer
        carrying its dense weights, so sizes and analyses stay whole.
    bias : bool
    init : str or ("normal", sigma)
        Initial values of unweighted layers (:mod:`topo.nn.init`): He-uniform with the
        effective fan-in by default; ``"xavier_uniform_dense"`` is SET's Keras init
        (Glorot on the dense layer's fans), under which SET's rewiring moves more
        edges and beats the static topology (docs/results.md §1).
    regrow_init : str or ("normal", sigma)
        Default ``init`` of new edges in :meth:`rewire`: ``"zeros"``, as SET's reference
        (Keras) code and RigL do. New edges then start where magnitude pruning is
        weakest and must earn their size from the gradient; regrowing at He scale
        instead floods sparse layers with large random weights (at ε = 1 SET on
        COIL20 reached 10.3 % validation accuracy with He-uniform regrowth against
        75.9 % with zeros; docs/results.md).
    seed : int or torch.Generator, optional
        Initial values (and the dense output layer); ``None`` uses torch's global RNG.
    device, dtype : optional

    Attributes
    ----------
    sparse_layers : nn.ModuleList of SparseLinear
    output_layer : nn.Linear or None
        The dense output layer when ``output_dense``.

    Examples
    --------
    >>> import torch, topo
    >>> model = topo.compile(topo.erdos_renyi([16, 32, 4], epsilon=4, seed=0), dropout=0.1)
    >>> model(torch.randn(8, 16)).shape
    torch.Size([8, 4])
    >>> model.topology().sizes
    (16, 32, 4)
    """

    def __init__(self, topology: Topology, activation="relu", dropout: float = 0.0, backend: str = "auto",
                 output_dense: bool = False, bias: bool = True, init="kaiming_uniform",
                 regrow_init="zeros", seed=None, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(topology, Topology):
            raise ParameterTypeError(f"expected a Topology, got {type(topology).__name__}")
        check_backend(backend)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout!r}")
        self.regrow_init = check_init(regrow_init)
        gen = make_generator(int(torch.randint(0, 2**62, (1,))) if seed is None else seed)
        graphs = list(topology.layers)
        last_dense = graphs.pop() if output_dense else None
        self.sparse_layers = nn.ModuleList(
            SparseLinear(g.n_in, g.n_out, bias, layer=g, backend=backend, seed=gen, init=init,
                         device=device, dtype=dtype) for g in graphs)
        self.output_layer = None
        if last_dense is not None:
            self.output_layer = _dense_output(last_dense, bias, gen, device, dtype)
        n_hidden = len(topology) - 1
        self.activations = nn.ModuleList(_activation(activation, k) for k in range(n_hidden))
        self.dropouts = nn.ModuleList(Dropout(float(dropout)) for _ in range(n_hidden))
        self._sizes = topology.sizes

    @property
    def sizes(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def layers(self) -> list[nn.Module]:
        """All weight layers in order (the sparse ones, then the dense output layer if any)."""
        return list(self.sparse_layers) + ([self.output_layer] if self.output_layer is not None else [])

    #: Recompute each hidden block (layer, activation, dropout) in backward instead of keeping its
    #: activations (``torch.utils.checkpoint``; dropout masks are replayed exactly). Saves memory with
    #: dropout, where a block keeps its activation, mask and output; costs one more forward. Off by default.
    checkpoint_activations: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = self.layers
        recompute = self.checkpoint_activations and self.training and torch.is_grad_enabled()
        for k, layer in enumerate(layers):
            if k == len(layers) - 1:
                x = layer(x)
            elif recompute:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(self._block, k, x, use_reentrant=False)
            else:
                x = self._block(k, x)
        return x

    def _block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return self.dropouts[k](self.activations[k](self.layers[k](x)))

    def topology(self) -> Topology:
        """The current edges and weights as a :class:`~topo.Topology` (CPU tensors)."""
        graphs = [cast(SparseLinear, layer).layer_graph() for layer in self.sparse_layers]  # SparseLinear only
        if self.output_layer is not None:
            w = self.output_layer.weight.detach().cpu()
            n_out, n_in = w.shape
            dst, src = torch.meshgrid(torch.arange(n_out), torch.arange(n_in), indexing="ij")
            graphs.append(LayerGraph(n_in, n_out, src.reshape(-1), dst.reshape(-1), w.reshape(-1).clone()))
        return Topology(graphs)

    def rewire(self, layer_index: int, new_graph: LayerGraph, keep: str = "matching", init=None,
               generator=None) -> torch.Tensor:
        """Rewire sparse layer ``layer_index`` in place (see :meth:`SparseLinear.rewire`); ``init=None`` uses
        :attr:`regrow_init`. Returns ``old_to_new``."""
        n = len(self.sparse_layers)
        if isinstance(layer_index, bool) or not isinstance(layer_index, int) or not -n <= layer_index < n:
            extra = " (the dense output layer cannot be rewired)" if self.output_layer is not None else ""
            raise ParameterError(f"layer_index {layer_index!r} out of range for {n} sparse layers{extra}")
        return cast(SparseLinear, self.sparse_layers[layer_index]).rewire(
            new_graph, keep=keep, init=self.regrow_init if init is None else init, generator=generator)

    def to_dense(self) -> nn.Sequential:
        """A plain ``nn.Sequential`` of ``nn.Linear`` layers with identical outputs (:func:`topo.nn.to_dense`)."""
        from .dense import to_dense

        return to_dense(self)

    def extra_repr(self) -> str:
        return f"sizes={list(self._sizes)}, output_dense={self.output_layer is not None}"


def _dense_output(g: LayerGraph, bias: bool, gen: torch.Generator, device, dtype) -> nn.Linear:
    lin = nn.Linear(g.n_in, g.n_out, bias=bias, dtype=dtype)
    with torch.no_grad():
        if g.weight is not None and g.num_edges == g.n_in * g.n_out:
            lin.weight.copy_(g.to_dense())
        else:
            # nn.Linear's own init, but from our generator so the seed decides it.
            bound = 1.0 / g.n_in ** 0.5
            lin.weight.uniform_(-bound, bound, generator=gen)
        if bias:
            bound = 1.0 / g.n_in ** 0.5
            lin.bias.uniform_(-bound, bound, generator=gen)
    return lin.to(device)


def compile(topology: Topology, activation="relu", dropout: float = 0.0, backend: str = "auto",
            device=None, output_dense: bool = False, **kwargs) -> SparseMLP:
    """Compile a topology into a trainable :class:`SparseMLP` of truly sparse layers.

    ``kwargs`` go to :class:`SparseMLP` (``bias``, ``init``, ``regrow_init``, ``seed``, ``dtype``).

    Examples
    --------
    >>> import torch, topo
    >>> model = topo.compile(topo.erdos_renyi([8, 16, 3], epsilon=2, seed=0), backend="csr")
    >>> [type(m).__name__ for m in model.sparse_layers]
    ['SparseLinear', 'SparseLinear']
    """
    return SparseMLP(topology, activation=activation, dropout=dropout, backend=backend,
                     output_dense=output_dense, device=device, **kwargs)
