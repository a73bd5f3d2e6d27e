"""SGD with momentum and SET's decoupled weight decay.

SET's reference code (Mocanu et al. 2018; the truly sparse SET-MLP of Curci, Mocanu & Pechenizkiy 2021,
``set_mlp_sequential.py`` in SelimaC/large-scale-sparse-neural-networks) updates every weight and bias as

    Δ ← momentum · Δ − lr · ∇,    w ← w + Δ − weight_decay · w

The decay is outside the momentum and not scaled by the learning rate: ``weight_decay = 2e-4`` shrinks
every value by 0.02 % per step, about 100× more than torch's L2 penalty ``weight_decay = 2e-4`` at
``lr = 0.01`` (which adds ``2e-4 · w`` to the gradient, then scales it by ``lr``). Under magnitude
pruning the difference matters: a connection that stops receiving gradient decays towards zero and is
the next one pruned.
"""

from __future__ import annotations

import math

import torch

from ..errors import ParameterError

__all__ = ["SGDW"]


class SGDW(torch.optim.SGD):
    """``torch.optim.SGD`` whose weight decay is SET's: ``w ← (1 − weight_decay) · w`` before each step.

    Momentum, dampening and Nesterov are torch's SGD (``buf ← momentum · buf + ∇``, ``w ← w − lr · buf``,
    which for a constant ``lr`` is SET's ``Δ ← momentum · Δ − lr · ∇``). The decay multiplies the
    parameters that have a gradient, before the gradient step, so the update equals SET's
    ``w + Δ − weight_decay · w`` exactly. Its state (``momentum_buffer``) is SGD's, so
    :func:`topo.nn.remap_optimizer_state` carries it across a rewire.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups.
    lr : float
    momentum : float
    weight_decay : float
        Fraction in ``[0, 1)`` taken off every parameter per step (not scaled by ``lr``); each group
        may set its own.
    dampening : float
    nesterov : bool

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = SGDW([w], lr=0.1, momentum=0.9, weight_decay=0.5)
    >>> w.grad = torch.tensor([1.0, 1.0]); _ = opt.step()
    >>> w.detach()
    tensor([ 0.4000, -1.1000])
    """

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0, weight_decay: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False) -> None:
        _check_decay(weight_decay)
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=0.0,
                         nesterov=nesterov)
        # Later add_param_group calls fill missing keys from defaults.
        self.defaults["decoupled_weight_decay"] = float(weight_decay)
        for group in self.param_groups:
            group.setdefault("decoupled_weight_decay", float(weight_decay))

    def add_param_group(self, param_group: dict) -> None:
        if "decoupled_weight_decay" in param_group:
            _check_decay(param_group["decoupled_weight_decay"])
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            # The gradient belongs to the weights before the decay, as in SET's code.
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            decay = group.get("decoupled_weight_decay", 0.0)
            if decay:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    torch._foreach_mul_(params, 1.0 - decay)
        super().step()
        return loss


def _check_decay(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value < 1.0:
        raise ParameterError(f"SGDW weight_decay must be a fraction in [0, 1), got {value!r}")
