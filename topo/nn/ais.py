"""Likelihood of a :class:`~topo.nn.SparseRBM`: annealed importance sampling and exact enumeration.

* :func:`ais_log_partition` — Salakhutdinov & Murray (ICML 2008): anneal from a
  base-rate model ``A`` (no weights, visible biases from the data mean, hidden
  biases 0, so ``log Z_A`` is known) to the RBM ``B`` through the geometric path
  ``p_β(v, h) ∝ exp(−(1−β) E_A(v, h) − β E_B(v, h))``; each intermediate is
  sampled by one block Gibbs step that leaves it invariant. The mean of the
  importance weights estimates ``Z_B / Z_A``; the error bar is
  ``log(mean ± 3·std/√runs)`` of the weights, as in the paper.
* :func:`exact_log_partition` — enumerate the smaller binary layer (≤ ~25 units):
  the reference that checks AIS.
* :func:`log_likelihood` — the average ``log p(v) = −F(v) − log Z`` in nats of a
  data set, with the error band that ``log Z``'s carries.

Every product runs on the RBM's sparse structure; the chains run in the RBM's dtype
(``rbm.double()`` for tight estimates).

Examples
--------
>>> import torch, topo
>>> rbm = topo.nn.SparseRBM(6, 4, density=0.5, seed=0)
>>> est = ais_log_partition(rbm, n_betas=500, n_runs=50, generator=0)
>>> abs(est.log_z - exact_log_partition(rbm)) < 0.05
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import ParameterError, ParameterTypeError
from ..graph.sampling import make_generator
from .rbm import SparseRBM, base_rate_bias, bernoulli

__all__ = [
    "AISEstimate",
    "LogLikelihood",
    "ais_log_partition",
    "default_betas",
    "exact_log_partition",
    "log_likelihood",
]

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class AISEstimate:
    """``log Ẑ`` and its ±3σ band (``log_z_low``, ``log_z_high``); ``log_w`` the runs' log-weights."""

    log_z: float
    log_z_low: float
    log_z_high: float
    log_z_base: float
    n_betas: int
    n_runs: int
    log_w: torch.Tensor = field(repr=False)


@dataclass(frozen=True)
class LogLikelihood:
    """Mean ``log p(v)`` of a data set in nats; ``low``/``high`` from the ``log Z`` band."""

    mean: float
    low: float
    high: float
    log_z: float
    n_samples: int


def default_betas(n: int = 14500, dtype=torch.float64) -> torch.Tensor:
    """Inverse temperatures ``0 = β_0 < … < β_K = 1``, denser near 1 (Salakhutdinov & Murray's 1000/4000/10000 split).

    >>> b = default_betas(100); float(b[0]), float(b[-1]), len(b)
    (0.0, 1.0, 100)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ParameterError(f"n_betas must be an int >= 3, got {n!r}")
    n1, n2 = max(1, round(n * 1000 / 14500)), max(1, round(n * 4000 / 14500))
    n3 = n - n1 - n2
    parts = [torch.linspace(0.0, 0.5, n1 + 1, dtype=dtype)[:-1], torch.linspace(0.5, 0.9, n2 + 1, dtype=dtype)[:-1],
             torch.linspace(0.9, 1.0, n3, dtype=dtype)]
    return torch.cat(parts)


def _log_f(rbm: SparseRBM, vt: torch.Tensor, a: torch.Tensor, beta: float, b_a: torch.Tensor,
           b_b: torch.Tensor) -> torch.Tensor:
    """``log p*_β(v)`` (hidden units summed out) given the hidden pre-activations ``a = W v + c`` of ``v``."""
    soft = torch.nn.functional.softplus(beta * a).sum(0)
    if rbm.visible == "bernoulli":
        vis = (1 - beta) * (b_a @ vt) + beta * (b_b @ vt)
    else:
        vis = -0.5 * ((1 - beta) * ((vt - b_a[:, None]) ** 2).sum(0) + beta * ((vt - b_b[:, None]) ** 2).sum(0))
    return vis + soft


@torch.no_grad()
def ais_log_partition(rbm: SparseRBM, data: torch.Tensor | None = None, *, n_betas: int = 14500,
                      n_runs: int = 100, betas: torch.Tensor | None = None, generator=None) -> AISEstimate:
    """Estimate ``log Z`` of ``rbm`` by annealed importance sampling.

    Parameters
    ----------
    rbm : SparseRBM
    data : Tensor ``(n, n_visible)``, optional
        Training data for the base-rate model's visible biases (logit of the mean;
        the mean for Gaussian units). Without it the base model has zero biases.
    n_betas, betas
        The number of inverse temperatures (:func:`default_betas`), or the
        increasing sequence itself (from 0 to 1).
    n_runs : int
        Independent AIS chains (run in parallel as one batch).
    generator : int or torch.Generator
        Every sample of the chains.
    """
    if not isinstance(rbm, SparseRBM):
        raise ParameterTypeError(f"expected a SparseRBM, got {type(rbm).__name__}")
    if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
        raise ParameterError(f"n_runs must be a positive int, got {n_runs!r}")
    g = make_generator(generator) if not isinstance(generator, torch.Generator) else generator
    bv = rbm.visible_bias.detach()
    dtype, dev = bv.dtype, bv.device
    betas = default_betas(n_betas) if betas is None else torch.as_tensor(betas, dtype=torch.float64)
    if betas.dim() != 1 or len(betas) < 2 or float(betas[0]) != 0.0 or float(betas[-1]) != 1.0 \
            or not bool((betas[1:] > betas[:-1]).all()):
        raise ParameterError("betas must increase strictly from 0 to 1")
    b_a = torch.zeros_like(bv) if data is None else base_rate_bias(rbm._check(data, "data"), rbm.visible)
    n_v, n_h = rbm.n_visible, rbm.n_hidden
    if rbm.visible == "bernoulli":
        log_z_a = float(torch.nn.functional.softplus(b_a.double()).sum()) + n_h * _LOG2
        vt = bernoulli(torch.sigmoid(b_a)[:, None].expand(n_v, n_runs).contiguous(), g)
    else:
        log_z_a = 0.5 * n_v * math.log(2 * math.pi) + n_h * _LOG2
        noise = torch.randn((n_v, n_runs), generator=g, dtype=dtype, device=g.device).to(dev)
        vt = b_a[:, None] + noise
    log_w = torch.zeros(n_runs, dtype=torch.float64, device=dev)
    bl = betas.tolist()
    for k in range(1, len(bl)):
        a = rbm._hidden_t(vt)
        log_w += (_log_f(rbm, vt, a, bl[k], b_a, bv) - _log_f(rbm, vt, a, bl[k - 1], b_a, bv)).double()
        if k == len(bl) - 1:
            break
        beta = bl[k]
        ht = bernoulli(torch.sigmoid(beta * a), g)
        # v | h under p_β: natural parameter (1−β)·b_A + β·(Wᵀh + b_B); _visible_t adds b_B itself.
        mt = beta * rbm._visible_t(ht) + (1 - beta) * b_a[:, None]
        if rbm.visible == "bernoulli":
            vt = bernoulli(torch.sigmoid(mt), g)
        else:
            noise = torch.randn(mt.shape, generator=g, dtype=dtype, device=g.device).to(dev)
            vt = mt + noise
    log_mean = float(torch.logsumexp(log_w, 0)) - math.log(n_runs)
    # ±3 standard errors of the mean weight, on the log scale (weights relative to their maximum).
    top = float(log_w.max())
    w = torch.exp(log_w - top)
    mean, se = float(w.mean()), float(w.std(unbiased=True)) / math.sqrt(n_runs) if n_runs > 1 else 0.0
    low = top + math.log(mean - 3 * se) if mean - 3 * se > 0 else -math.inf
    high = top + math.log(mean + 3 * se)
    return AISEstimate(log_z=log_z_a + log_mean, log_z_low=log_z_a + low, log_z_high=log_z_a + high,
                       log_z_base=log_z_a, n_betas=len(bl), n_runs=n_runs, log_w=log_w.cpu())


@torch.no_grad()
def exact_log_partition(rbm: SparseRBM, max_units: int = 25, chunk: int = 4096) -> float:
    """``log Z`` by enumerating every state of the hidden layer (or of a smaller binary visible layer).

    ``2^units`` states, ``chunk`` at a time; refuses more than ``max_units`` units.
    """
    if not isinstance(rbm, SparseRBM):
        raise ParameterTypeError(f"expected a SparseRBM, got {type(rbm).__name__}")
    n_v, n_h = rbm.n_visible, rbm.n_hidden
    over_visible = rbm.visible == "bernoulli" and n_v < n_h
    units = n_v if over_visible else n_h
    if units > max_units:
        raise ParameterError(f"exact log Z enumerates 2^{units} states; refused above max_units={max_units} "
                             f"(use ais_log_partition)")
    bv, c = rbm.visible_bias.detach(), rbm.hidden_bias.detach()
    dtype, dev = bv.dtype, bv.device
    bits = 2 ** torch.arange(units, device=dev)
    parts = []
    for start in range(0, 2 ** units, chunk):
        idx = torch.arange(start, min(start + chunk, 2 ** units), device=dev)
        states_t = ((idx[None, :] & bits[:, None]) > 0).to(dtype)          # (units, chunk)
        if over_visible:
            parts.append(-rbm.free_energy(states_t.t().contiguous()).double())
        else:
            m = rbm._visible_t(states_t)                                       # Wᵀh + b, (n_v, chunk)
            if rbm.visible == "bernoulli":
                vis = torch.nn.functional.softplus(m).sum(0)
            else:
                vis = 0.5 * ((m ** 2).sum(0) - (bv ** 2).sum()) + 0.5 * n_v * math.log(2 * math.pi)
            parts.append((c @ states_t + vis).double())
    return float(torch.logsumexp(torch.cat(parts), 0))


@torch.no_grad()
def log_likelihood(rbm: SparseRBM, data: torch.Tensor, log_z: float | AISEstimate) -> LogLikelihood:
    """Mean ``log p(v) = −F(v) − log Z`` over the rows of ``data`` (nats per sample).

    ``log_z`` is a number (e.g. :func:`exact_log_partition`) or an :class:`AISEstimate`,
    whose ±3σ band becomes the band of the result.
    """
    if isinstance(log_z, AISEstimate):
        lz, lo, hi = log_z.log_z, log_z.log_z_low, log_z.log_z_high
    else:
        lz = lo = hi = float(log_z)
    data = rbm._check(data, "data")
    if data.shape[0] == 0:
        raise ParameterError("data is empty: no log-likelihood to average")
    neg_f = float(-rbm.free_energy(data).double().mean())
    return LogLikelihood(mean=neg_f - lz, low=neg_f - hi, high=neg_f - lo, log_z=lz, n_samples=int(data.shape[0]))
