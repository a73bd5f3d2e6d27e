"""What a :class:`~topo.Trainer` learns: classification, reconstruction (autoencoders) or regression.

=================  ==============================  =================================  ===================
task               data given to ``fit``           default loss (``loss=`` names)     accuracy columns
=================  ==============================  =================================  ===================
``"classify"``     ``(X, y)``, integer labels      ``"cross_entropy"``                 top-1 accuracy
``"reconstruct"``  ``X`` or ``(X, anything)``      ``"mse"`` (``"bce"``,               NaN
                   (the target is ``X``)           ``"bce_logits"``)
``"regress"``      ``(X, y)``, float ``[n]`` or    ``"mse"`` (``"l1"``,                NaN
                   ``[n, k]``                      ``"smooth_l1"``)
=================  ==============================  =================================  ===================

``"bce"`` expects outputs in ``[0, 1]`` (a model ending in a sigmoid) and
targets in ``[0, 1]``; ``"bce_logits"`` takes raw outputs. Reconstruction may
corrupt the *inputs* of each training batch with Gaussian noise (``noise=σ``,
a denoising autoencoder as in QuickSelection); the targets stay clean and
evaluation uses clean inputs.

Examples
--------
>>> import torch
>>> X, target = as_data(torch.rand(4, 3), "train", torch.device("cpu"), torch.float32, "reconstruct")
>>> target is X
True
>>> LOSSES["mse"](torch.zeros(2, 1), torch.ones(2, 1)).item()
1.0
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError

__all__ = ["TASKS", "LOSSES", "DEFAULT_LOSS", "check_task", "resolve_loss", "as_data", "check_outputs"]

TASKS = ("classify", "reconstruct", "regress")

#: Named losses (``reduction="mean"``); ``loss(output, target) -> scalar``.
LOSSES: dict[str, Callable] = {
    "cross_entropy": nn.functional.cross_entropy,
    "mse": nn.functional.mse_loss,
    "bce": nn.functional.binary_cross_entropy,
    "bce_logits": nn.functional.binary_cross_entropy_with_logits,
    "l1": nn.functional.l1_loss,
    "smooth_l1": nn.functional.smooth_l1_loss,
}
DEFAULT_LOSS = {"classify": "cross_entropy", "reconstruct": "mse", "regress": "mse"}
_ALLOWED = {"classify": ("cross_entropy",), "reconstruct": ("mse", "bce", "bce_logits", "l1", "smooth_l1"),
            "regress": ("mse", "l1", "smooth_l1")}


def check_task(task) -> str:
    """``task`` if it is one of :data:`TASKS`, else a :class:`~topo.ParameterError` naming it."""
    if not isinstance(task, str) or task not in TASKS:
        raise ParameterError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task


def resolve_loss(task: str, loss) -> tuple[Callable, str | None]:
    """``(loss function, its name or None)`` for ``task``: the default, a name of :data:`LOSSES` or a callable."""
    if loss is None:
        loss = DEFAULT_LOSS[task]
    if callable(loss):
        return loss, None
    if not isinstance(loss, str) or loss not in _ALLOWED[task]:
        raise ParameterError(f"loss {loss!r} does not fit task {task!r}; use one of {', '.join(_ALLOWED[task])} "
                             f"or a callable loss(output, target)")
    return LOSSES[loss], loss


def summed(loss_fn: Callable) -> Callable:
    """``loss_fn`` summed over the samples (every sample weighs the same), for gradient scores."""
    def fn(out, target):
        return loss_fn(out, target) * out.shape[0]
    return fn


def as_data(data, name: str, device: torch.device, dtype: torch.dtype, task: str,
            loss_name: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, target)`` on ``device`` for ``task``: int64 labels, ``X`` itself, or float targets ``[n, k]``."""
    from .settings import _as_tensor, as_xy

    if task == "classify":
        return as_xy(data, name, device, dtype)
    if task == "reconstruct":
        if isinstance(data, (tuple, list)) and len(data) == 2:
            data = data[0]  # labels ride along (e.g. for a report); the target is X
        X, _ = as_xy((data, torch.zeros(_rows(data), dtype=torch.int64)), name, device, dtype)
        if loss_name == "bce" and (bool((X < 0).any()) or bool((X > 1).any())):
            raise ParameterError(f"loss 'bce' needs {name} X in [0, 1], got values in [{float(X.min()):g}, "
                                 f"{float(X.max()):g}]; scale the data or use loss='mse'")
        return X, X
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be a pair (X, y) for task 'regress', "
                                 f"got {type(data).__name__}") from None
    y = _as_tensor(y, f"{name} y")
    if y.dim() not in (1, 2) or y.dtype == torch.bool or y.is_complex():
        raise ParameterError(f"{name} y must be a numeric array [n] or [n, targets] for task 'regress', got "
                             f"{y.dtype} {tuple(y.shape)}")
    X, _ = as_xy((X, torch.zeros(y.shape[0], dtype=torch.int64)), name, device, dtype)
    y = y.reshape(y.shape[0], -1).to(device=device, dtype=dtype)
    if not bool(torch.isfinite(y).all()):
        r = int((~torch.isfinite(y)).any(1).nonzero()[0, 0])
        raise ParameterError(f"{name} y holds a non-finite target at row {r}")
    return X, y


def _rows(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) == 0:
        raise ParameterTypeError(f"X must be a 2-D float array [n, features], got {type(X).__name__}")
    return int(shape[0])


def check_outputs(task: str, out_shape: tuple, X: torch.Tensor, target: torch.Tensor, name: str) -> None:
    """The model's outputs (``out_shape`` of one row) must fit the targets of ``task``."""
    from .settings import check_labels

    if len(out_shape) != 2:
        raise ParameterError(f"the model maps [1, {X.shape[1]}] inputs to {tuple(out_shape)}; task {task!r} "
                             f"needs outputs [batch, {'classes' if task == 'classify' else 'targets'}]")
    if task == "classify":
        check_labels(target, out_shape[1], name)
    elif out_shape[1] != target.shape[1]:
        what = "reconstructs its input" if task == "reconstruct" else "regresses the targets"
        raise ParameterError(f"task {task!r}: the model gives {out_shape[1]} outputs, but {name} has "
                             f"{target.shape[1]} {'features' if task == 'reconstruct' else 'targets'}; a model "
                             f"that {what} needs as many")
