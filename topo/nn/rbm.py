"""``SparseRBM``: a truly sparse restricted Boltzmann machine (SET-RBM, Mocanu et al. 2018).

The visible→hidden weights are a :class:`~topo.nn.SparseLinear` (one value per
edge, ``in_features = n_visible``, ``out_features = n_hidden``, its bias the
hidden bias), so the same CSR products run every direction of a Gibbs step:

* ``p(h | v)``: ``W v + c`` — the layer's own CSR product (``topo.nn.kernels`` on CPU,
  cuSPARSE on CUDA);
* ``p(v | h)``: ``Wᵀ h + b`` — the transposed structure the layer caches for its backward;
* the CD statistics ``⟨v h⟩`` — a sampled dense–dense product at the edges only.

Nothing of size ``n_visible · n_hidden`` is ever allocated (except on the
``"dense"`` reference backend). Every state is kept transposed (``(units, batch)``,
row-major) inside a step, the layout those products run fastest on.

Energies (σ = 1 for Gaussian visible units; standardise the data):

* Bernoulli–Bernoulli: ``E(v, h) = −bᵀv − cᵀh − hᵀW v``;
* Gaussian–Bernoulli: ``E(v, h) = ‖v − b‖²/2 − cᵀh − hᵀW v``.

:meth:`SparseRBM.contrastive_divergence` writes the CD-k / persistent-CD estimate
of the negative log-likelihood gradient into ``.grad`` of every parameter, so any
torch optimizer applies it — SGD with momentum and weight decay is the SET
paper's setting — and :class:`topo.Evolver` rewires the layer between epochs,
carrying the momentum of surviving edges. :class:`topo.train.RBMTrainer` runs the
whole loop and writes a run directory; :mod:`topo.nn.ais` estimates the likelihood.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError, TopologyFormatError
from ..graph.layer import LayerGraph, _check_size
from ..graph.sampling import make_generator
from ..graph.topology import Topology
from . import cd_kernels, kernels
from .functional import _edge_grad, _spmm
from .init import check_init
from .linear import SparseLinear

__all__ = ["VISIBLE_UNITS", "SparseRBM"]

VISIBLE_UNITS = ("bernoulli", "gaussian")
_FORMAT = "topo.rbm"


class SparseRBM(nn.Module):
    """A restricted Boltzmann machine whose visible–hidden connectivity is a sparse layer graph.

    Parameters
    ----------
    n_visible, n_hidden : int
    visible : {"bernoulli", "gaussian"}
        Binary visible units (data in ``[0, 1]``) or Gaussian ones of unit variance.
    layer : LayerGraph, optional
        The edges (``n_in = n_visible``, ``n_out = n_hidden``); weighted graphs give the values.
    epsilon, density : float, optional
        Without ``layer``: an Erdős–Rényi layer (SET's ``ε``; the SET-RBM paper uses 11).
        Give exactly one of ``layer``, ``epsilon``, ``density``; default ``epsilon=11``.
    init, regrow_init : str or ("normal", sigma)
        Values of the initial and of regrown edges (:mod:`topo.nn.init`); default
        ``N(0, 0.05²)``, the ``randn()/20`` of the authors' truly sparse SET-RBM.
    backend : {"auto", "csr", "dense", "torch_sparse"}
        Of the sparse layer (``torch_sparse`` runs the transposed product as CSR).
    seed : int or torch.Generator, optional
        Edges and initial values.
    device, dtype : optional

    Attributes
    ----------
    linear : SparseLinear
        The weights (``linear.weight``, one per edge) and hidden bias (``linear.bias``).
    visible_bias : nn.Parameter, shape ``[n_visible]``

    Examples
    --------
    >>> import torch, topo
    >>> rbm = topo.nn.SparseRBM(64, 16, epsilon=2, seed=0)
    >>> rbm.num_edges, rbm(torch.rand(5, 64)).shape
    (160, torch.Size([5, 16]))
    >>> g = torch.Generator().manual_seed(0)
    >>> opt = torch.optim.SGD(rbm.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    >>> err, _ = rbm.contrastive_divergence((torch.rand(8, 64) > 0.5).float(), k=1, generator=g)
    >>> opt.step()
    >>> 0.0 < err < 1.0
    True
    """

    def __init__(self, n_visible: int, n_hidden: int, *, visible: str = "bernoulli",
                 layer: LayerGraph | None = None, epsilon: float | None = None, density: float | None = None,
                 init=("normal", 0.05), regrow_init=("normal", 0.05), backend: str = "auto", seed=None,
                 device=None, dtype=None) -> None:
        super().__init__()
        n_v, n_h = _check_size(n_visible, "n_visible"), _check_size(n_hidden, "n_hidden")
        if not isinstance(visible, str) or visible.lower() not in VISIBLE_UNITS:
            raise ParameterError(f"visible must be one of {', '.join(VISIBLE_UNITS)}, got {visible!r}")
        self.visible = visible.lower()
        if layer is None and epsilon is None and density is None:
            epsilon = 11.0
        self.regrow_init = check_init(regrow_init)
        gen = make_generator(int(torch.randint(0, 2**62, (1,))) if seed is None else seed)
        self.linear = SparseLinear(n_v, n_h, True, layer=layer, epsilon=epsilon, density=density,
                                   backend=backend, seed=gen, init=init, device=device, dtype=dtype)
        with torch.no_grad():
            self.hidden_bias.zero_()  # RBM biases start at zero (the SET-RBM and Hinton's guide)
        self.visible_bias = nn.Parameter(torch.zeros(n_v, dtype=self.linear.weight.dtype,
                                                     device=self.linear.weight.device))
        self.n_visible, self.n_hidden = n_v, n_h

    # -- structure ------------------------------------------------------------------------------
    @property
    def sparse_layers(self) -> list[SparseLinear]:
        """The one sparse layer (what :class:`topo.Evolver` evolves)."""
        return [self.linear]

    @property
    def num_edges(self) -> int:
        return self.linear.num_edges

    @property
    def hidden_bias(self) -> nn.Parameter:
        bias = self.linear.bias
        assert bias is not None  # the RBM's layer is built with bias=True
        return bias

    def topology(self) -> Topology:
        """The weighted visible→hidden topology (one layer)."""
        return Topology([self.linear.layer_graph()])

    def rewire(self, k: int, graph: LayerGraph, keep: str = "matching", init=None, generator=None) -> torch.Tensor:
        """Replace the edges (``k`` must be 0); births get ``init`` or :attr:`regrow_init`."""
        if k != 0:
            raise ParameterError(f"a SparseRBM has one sparse layer (index 0), got {k}")
        return self.linear.rewire(graph, keep=keep, init=self.regrow_init if init is None else init,
                                  generator=generator)

    def initialize_visible_bias(self, data) -> None:
        """Hinton's init: ``b = log(p / (1 − p))`` of the data mean (Bernoulli), the mean (Gaussian)."""
        with torch.no_grad():
            self.visible_bias.copy_(base_rate_bias(self._check(data), self.visible))

    # -- the three products, on transposed (units, batch) states ---------------------------------
    def _hidden_t(self, vt: torch.Tensor) -> torch.Tensor:
        lin, w = self.linear, self.linear.weight.detach()
        c = self.hidden_bias.detach()
        if lin.active_backend == "dense":
            return torch.addmm(c.unsqueeze(1), lin.to_dense(), vt)
        st = lin.csr_structure()
        if kernels.supports(vt, w):
            return kernels.spmm(*st.host()[:2], w, vt, c)
        return _spmm(st.matrix(w), vt, c)

    def _visible_t(self, ht: torch.Tensor) -> torch.Tensor:
        lin, w = self.linear, self.linear.weight.detach()
        b = self.visible_bias.detach()
        if lin.active_backend == "dense":
            return torch.addmm(b.unsqueeze(1), lin.to_dense().t(), ht)
        st = lin.csr_structure()
        if kernels.supports(ht, w):
            crow_t, col_t, perm = st.host()[2:]
            return kernels.spmm(crow_t, col_t, w, ht, b, perm=perm)
        return _spmm(st.matrix_t(w), ht, b)

    def _edge_stats(self, ht: torch.Tensor, vt: torch.Tensor) -> torch.Tensor:
        """``(H Vᵀ)[dst, src]`` summed over the batch, one value per edge."""
        lin, w = self.linear, self.linear.weight.detach()
        if lin.active_backend == "dense":
            return (ht @ vt.t())[lin.edge_index[1], lin.edge_index[0]]
        st = lin.csr_structure()
        if kernels.supports(ht, vt, w):
            return kernels.sddmm(*st.host()[:2], ht, vt)
        return _edge_grad(st, w, ht.contiguous(), vt.contiguous())

    # -- conditionals and sampling ----------------------------------------------------------------
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h = 1 | v)``, through the sparse layer's forward (hooks and cosine rules see it)."""
        return torch.sigmoid(self.linear(self._check(v)))

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h = 1 | v)``, shape ``(batch, n_hidden)`` (no autograd)."""
        return torch.sigmoid(self._hidden_t(self._check(v).t().contiguous())).t()

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]``: ``p(v = 1 | h)`` (Bernoulli) or the Gaussian mean ``Wᵀh + b``."""
        if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[1] != self.n_hidden:
            raise ParameterError(f"h must be a (batch, {self.n_hidden}) tensor, got "
                                 f"{tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__}")
        m = self._visible_t(h.to(self.visible_bias).t().contiguous())
        return (torch.sigmoid(m) if self.visible == "bernoulli" else m).t()

    def _sample_v(self, mt: torch.Tensor, generator) -> torch.Tensor:
        """A visible sample from pre-activations ``mt`` (transposed)."""
        if self.visible == "bernoulli":
            return bernoulli(mt.sigmoid_(), generator)
        return mt + _randn(mt, generator)

    def gibbs(self, v: torch.Tensor, k: int = 1, generator=None) -> torch.Tensor:
        """``k`` steps of block Gibbs sampling ``v → h → v``; returns the visible sample."""
        vt = self._check(v).t().contiguous()
        for _ in range(_check_k(k)):
            ht = bernoulli(torch.sigmoid(self._hidden_t(vt)), generator)
            vt = self._sample_v(self._visible_t(ht), generator)
        return vt.t()

    # -- training signal ---------------------------------------------------------------------------
    def contrastive_divergence(self, v: torch.Tensor, k: int = 1, generator=None,
                               chain: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
        """Write the CD-k (or persistent CD) gradient of ``−log p(v)`` into the parameters' ``.grad``.

        Parameters
        ----------
        v : Tensor ``(batch, n_visible)``
            A mini-batch of data.
        k : int
            Gibbs steps of the negative phase.
        generator : torch.Generator, optional
            Every sample of the step (on the data's device, or a CPU generator).
        chain : Tensor ``(chains, n_visible)``, optional
            Persistent CD: the fantasy particles' visible states; the negative
            phase runs ``k`` steps from them instead of from the data.

        Returns
        -------
        (float, Tensor)
            The mean squared reconstruction error of the batch after one Gibbs step
            and the negative phase's final visible states (the next ``chain``).

        Statistics are probabilities of the hidden units (data and model phase) and
        samples of the visible units of the chain, each averaged over its own batch.

        On CPU in float32 with Bernoulli visible units (and topo's numba kernels, a
        non-dense backend) the step runs fused (:mod:`topo.nn.cd_kernels`); its samples
        come from a counter-based generator keyed by draws from ``generator``, not from
        ``torch.rand``: the same seed gives the same step, but another stream than the
        unfused path (float64, CUDA, Gaussian units) draws.
        """
        v = self._check(v)
        k = _check_k(k)
        if chain is not None:
            chain = self._check(chain, "chain")
        if self._fused(v, chain):
            return self._cd_fused(v, k, generator, chain)
        vt = v.t().contiguous()
        # In-place activations on the fresh product outputs: at SET densities the element-wise passes,
        # not the sparse products, are most of a step's time.
        h0 = self._hidden_t(vt).sigmoid_()
        m0 = self._visible_t(bernoulli(h0, generator))  # v's reconstruction from its hidden sample
        p0 = m0.sigmoid_() if self.visible == "bernoulli" else m0
        recon = float(torch.nn.functional.mse_loss(p0, vt))
        if chain is None:
            vk = bernoulli(p0, generator) if self.visible == "bernoulli" else p0 + _randn(p0, generator)
        else:
            ct = self._check(chain, "chain").t().contiguous()
            vk = self._sample_v(self._visible_t(bernoulli(self._hidden_t(ct).sigmoid_(), generator)), generator)
        hk = self._hidden_t(vk).sigmoid_()
        for _ in range(k - 1):
            vk = self._sample_v(self._visible_t(bernoulli(hk, generator)), generator)
            hk = self._hidden_t(vk).sigmoid_()
        n_pos, n_neg = vt.shape[1], vk.shape[1]
        # <v h> of each phase at the edges only; the scaling runs on the edge vector, not the states.
        gw = self._edge_stats(h0, vt).sub_(self._edge_stats(hk, vk), alpha=n_pos / n_neg).mul_(-1.0 / n_pos)
        lin = self.linear
        _set_grad(lin.weight, gw)
        _set_grad(self.hidden_bias, hk.mean(1) - h0.mean(1))
        _set_grad(self.visible_bias, vk.mean(1) - vt.mean(1))
        return float(recon), vk.t()

    def _fused(self, v: torch.Tensor, chain) -> bool:
        """Whether the fused CPU step (:mod:`topo.nn.cd_kernels`) runs this CD step."""
        lin = self.linear
        rows = max(self.n_hidden, self.n_visible) * (max(len(v), 0 if chain is None else len(chain)) + 8)
        return (self.visible == "bernoulli" and lin.active_backend != "dense" and rows < 2**32
                and cd_kernels.supports(v, lin.weight, *(() if chain is None else (chain,))))

    def _cd_fused(self, v: torch.Tensor, k: int, generator, chain) -> tuple[float, torch.Tensor]:
        lin = self.linear
        keys = cd_kernels.keys_from(generator, 2 * k + (chain is not None))
        r = cd_kernels.cd_step(lin.csr_structure().host(), lin.weight.detach(), self.hidden_bias.detach(),
                               self.visible_bias.detach(), v.contiguous(), keys, k,
                               None if chain is None else chain.contiguous())
        _set_grad(lin.weight, r.grad_w)
        _set_grad(self.hidden_bias, r.grad_hidden)
        _set_grad(self.visible_bias, r.grad_visible)
        return r.recon, r.vk_t.t()

    # -- scores --------------------------------------------------------------------------------
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = −log Σ_h exp(−E(v, h))``, one value per row (so ``log p(v) = −F(v) − log Z``)."""
        v = self._check(v)
        soft = torch.nn.functional.softplus(self._hidden_t(v.t().contiguous())).sum(0)
        b = self.visible_bias.detach()
        vis = -(v @ b) if self.visible == "bernoulli" else 0.5 * ((v - b) ** 2).sum(1)
        return vis - soft

    def reconstruction_error(self, v: torch.Tensor) -> float:
        """Mean squared error of the mean-field reconstruction ``E[v | p(h | v)]`` (deterministic)."""
        v = self._check(v)
        return _mean_sq(v, self.visible_mean(self.hidden_probs(v)))

    def pseudo_likelihood(self, v: torch.Tensor, generator=None) -> float:
        """Stochastic pseudo-log-likelihood per sample (nats), Bernoulli visible units.

        One visible unit per row, drawn with ``generator``, is flipped:
        ``n_visible · log σ(F(ṽ) − F(v))`` (an unbiased estimate of the sum of
        ``log p(v_i | v_{−i})``; what scikit-learn's ``BernoulliRBM.score_samples`` does).
        """
        if self.visible != "bernoulli":
            raise ParameterError("pseudo_likelihood needs binary visible units; this RBM's are gaussian")
        v = (self._check(v) > 0.5).to(self.visible_bias.dtype)
        g = make_generator(generator) if not isinstance(generator, torch.Generator) else generator
        idx = torch.randint(0, self.n_visible, (v.shape[0],), generator=g, device=g.device).to(v.device)
        flipped = v.clone()
        rows = torch.arange(v.shape[0], device=v.device)
        flipped[rows, idx] = 1.0 - flipped[rows, idx]
        diff = self.free_energy(flipped) - self.free_energy(v)
        return float(self.n_visible * torch.nn.functional.logsigmoid(diff).mean())

    # -- files -----------------------------------------------------------------------------------
    def config(self) -> dict:
        """The constructor settings that rebuild this model's shape (the values come from the state_dict)."""
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden, "visible": self.visible,
                "regrow_init": list(self.regrow_init) if isinstance(self.regrow_init, tuple) else self.regrow_init,
                "backend": self.linear.backend, "dtype": str(self.visible_bias.dtype).replace("torch.", "")}

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to a pickle-free ``.npz`` (config JSON + every state_dict tensor), atomically."""
        from ..utils.atomic import atomic_write

        arrays = {f"state/{k}": t.detach().cpu().numpy() for k, t in self.state_dict().items()}
        arrays["config"] = np.frombuffer(json.dumps({"format": _FORMAT, **self.config()}).encode(), np.uint8)
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, device=None) -> SparseRBM:
        """Read a file written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                cfg = json.loads(bytes(z["config"]).decode())
                state = {k[len("state/"):]: torch.from_numpy(z[k].copy()) for k in z.files if k.startswith("state/")}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise TopologyFormatError(f"{str(path)!r} is not a SparseRBM file: {err}") from None
        if cfg.pop("format", None) != _FORMAT:
            raise TopologyFormatError(f"{str(path)!r} is not a SparseRBM file (format tag missing)")
        dtype = getattr(torch, cfg.pop("dtype"))
        ei = state["linear.edge_index"]
        layer = LayerGraph(cfg["n_visible"], cfg["n_hidden"], ei[0], ei[1])
        regrow = cfg.pop("regrow_init")
        model = cls(cfg["n_visible"], cfg["n_hidden"], visible=cfg["visible"], layer=layer,
                    regrow_init=tuple(regrow) if isinstance(regrow, list) else regrow,
                    backend=cfg["backend"], seed=0, dtype=dtype)
        model.load_state_dict(state)
        return model if device is None else model.to(device)

    # -- checks ----------------------------------------------------------------------------------
    def _check(self, v, name: str = "v") -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            raise ParameterTypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if v.dim() != 2 or v.shape[1] != self.n_visible:
            raise ParameterError(f"{name} has shape {tuple(v.shape)}, expected (batch, {self.n_visible})")
        w = self.visible_bias
        if v.device != w.device:
            raise ParameterError(f"{name} is on {v.device} but the RBM is on {w.device}; move one of them")
        if v.dtype != w.dtype:
            raise ParameterError(f"{name} dtype {v.dtype} differs from the RBM's {w.dtype}; cast one of them")
        return v

    def extra_repr(self) -> str:
        return (f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, visible={self.visible!r}, "
                f"edges={self.num_edges}, density={self.linear.density:.4g}")


# -- helpers shared with topo.nn.ais ---------------------------------------------------------------
def base_rate_bias(data: torch.Tensor, visible: str) -> torch.Tensor:
    """Visible biases of the base-rate model: logit of the clipped data mean, or the mean (Gaussian)."""
    mean = data.mean(0)
    if visible == "gaussian":
        return mean
    p = mean.clamp(1e-3, 1 - 1e-3)  # clipped as Salakhutdinov & Murray's code does: no infinite bias
    return torch.log(p) - torch.log1p(-p)


def bernoulli(p: torch.Tensor, generator=None) -> torch.Tensor:
    """A 0/1 sample of ``p`` (in ``p``'s dtype) drawn from ``generator`` (a CPU generator serves any device)."""
    if generator is None or generator.device == p.device:
        u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    else:
        u = torch.rand(p.shape, generator=generator, dtype=p.dtype).to(p.device)
    return u.lt_(p)  # in place: u becomes 1.0 where u < p, else 0.0


def _randn(like: torch.Tensor, generator=None) -> torch.Tensor:
    if generator is None or generator.device == like.device:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)


def _mean_sq(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


def _set_grad(p: nn.Parameter, g: torch.Tensor) -> None:
    p.grad = g.detach().to(p.dtype)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ParameterError(f"k (Gibbs steps) must be a positive int, got {k!r}")
    return k
