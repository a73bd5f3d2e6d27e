"""``SparseDAE``: a truly sparse denoising autoencoder (the model behind QuickSelection).

``input → hidden → input`` through two :class:`~topo.nn.SparseLinear` layers, as
in Atashgahi et al.'s QuickSelection (Machine Learning 2022): additive Gaussian
input noise (``x + noise · N(0, 1)``, training only), a sigmoid hidden layer,
dropout on it, and a linear (or sigmoid) output. :class:`topo.Evolver` evolves
both layers like an MLP's; :meth:`SparseDAE.input_strength` is the
QuickSelection score ``s_i = Σ_j |W¹_ij|`` of every input neuron.

Noise and dropout draw from torch's global RNG, like ``nn.Dropout`` (``torch.manual_seed``
makes them repeatable; :class:`topo.feature_selection.QuickSelection` forks the
RNG so it leaves the caller's untouched).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError
from ..graph.generators import erdos_renyi
from ..graph.layer import LayerGraph, _check_size
from ..graph.sampling import make_generator
from ..graph.topology import Topology
from .dropout import Dropout
from .init import check_init
from .linear import SparseLinear

__all__ = ["SparseDAE"]

_OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid}


class SparseDAE(nn.Module):
    """A sparse denoising autoencoder ``n_features → n_hidden → n_features``.

    Parameters
    ----------
    n_features, n_hidden : int
    epsilon, density : float, optional
        SET's ``ε`` of both layers (QuickSelection uses 13), or a density; default ``epsilon=13``.
    noise : float
        Standard deviation of the additive Gaussian input noise in training (QuickSelection: 0.2).
    dropout : float
        Dropout on the hidden layer in training (QuickSelection: 0.2).
    output : {"linear", "sigmoid"}
        Output activation (linear for standardised data, sigmoid for data in [0, 1]).
    init, regrow_init : str or ("normal", sigma)
        Initial and regrown values (:mod:`topo.nn.init`); default ``N(0, 0.1²)`` (the
        ``randn()/10`` of QuickSelection's code) and zeros.
    backend, seed, device, dtype
        As for :class:`~topo.nn.SparseLinear`; ``seed`` gives the edges and values.

    Examples
    --------
    >>> import torch, topo
    >>> dae = topo.nn.SparseDAE(20, 30, epsilon=2, seed=0)
    >>> dae(torch.randn(4, 20)).shape, dae.input_strength().shape
    (torch.Size([4, 20]), torch.Size([20]))
    """

    def __init__(self, n_features: int, n_hidden: int = 1000, *, epsilon: float | None = None,
                 density: float | None = None, noise: float = 0.2, dropout: float = 0.2, output: str = "linear",
                 init=("normal", 0.1), regrow_init="zeros", backend: str = "auto", seed=None, device=None,
                 dtype=None) -> None:
        super().__init__()
        n, h = _check_size(n_features, "n_features"), _check_size(n_hidden, "n_hidden")
        for name, v, top in (("noise", noise, None), ("dropout", dropout, 1.0)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (top is not None and v >= top):
                raise ParameterError(f"{name} must be a number >= 0{' and < 1' if top else ''}, got {v!r}")
        if output not in _OUTPUTS:
            raise ParameterError(f"output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
        if epsilon is None and density is None:
            epsilon = 13.0
        gen = make_generator(int(torch.randint(0, 2**62, (1,))) if seed is None else seed)
        t = erdos_renyi([n, h, n], epsilon=epsilon, density=density, seed=gen)
        kw = {"backend": backend, "seed": gen, "init": init, "device": device, "dtype": dtype}
        self.encoder = SparseLinear(n, h, True, layer=t.layers[0], **kw)
        self.decoder = SparseLinear(h, n, True, layer=t.layers[1], **kw)
        self.drop = Dropout(float(dropout))
        self.out_act = _OUTPUTS[output]()
        self.n_features, self.n_hidden, self.noise, self.output = n, h, float(noise), output
        self.regrow_init = check_init(regrow_init)

    @property
    def sparse_layers(self) -> list[SparseLinear]:
        return [self.encoder, self.decoder]

    @property
    def num_edges(self) -> int:
        return self.encoder.num_edges + self.decoder.num_edges

    def topology(self) -> Topology:
        """The weighted ``input → hidden → output`` topology."""
        return Topology([self.encoder.layer_graph(), self.decoder.layer_graph()])

    def rewire(self, k: int, graph: LayerGraph, keep: str = "matching", init=None, generator=None) -> torch.Tensor:
        """Replace the edges of layer ``k`` (0 encoder, 1 decoder); births get ``init`` or :attr:`regrow_init`."""
        if k not in (0, 1):
            raise ParameterError(f"a SparseDAE has sparse layers 0 and 1, got {k}")
        return self.sparse_layers[k].rewire(graph, keep=keep, init=self.regrow_init if init is None else init,
                                            generator=generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden representation ``sigmoid(W¹x + b¹)`` (no noise, no dropout)."""
        return torch.sigmoid(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        h = self.drop(torch.sigmoid(self.encoder(x)))
        return self.out_act(self.decoder(h))

    def input_strength(self) -> torch.Tensor:
        """``s_i = Σ_j |W¹_ij|`` of every input neuron (QuickSelection's feature score), CPU float64."""
        enc = self.encoder
        src = enc.edge_index[0].cpu()
        return torch.bincount(src, weights=enc.weight.detach().abs().cpu().double(), minlength=self.n_features)

    def extra_repr(self) -> str:
        return (f"n_features={self.n_features}, n_hidden={self.n_hidden}, noise={self.noise}, "
                f"edges={self.num_edges}, output={self.output!r}")
