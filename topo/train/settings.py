"""Helpers of :class:`topo.Trainer`: settings checks, optimizers, data, model topology, history on resume."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError, TopoError, TopologyFormatError
from ..graph import History

__all__ = ["OPTIMIZERS", "NonFiniteLossError", "check_settings", "make_optimizer", "as_xy", "check_labels",
           "model_dtype", "first_non_finite", "num_edges", "model_topology", "history_upto", "dist_info"]

OPTIMIZERS = ("sgd", "sgdw", "adam")


class NonFiniteLossError(TopoError, FloatingPointError):
    """The training loss became NaN or infinite; ``epoch`` and ``step`` (1-based, within it) say where.

    Training stops there: the run directory keeps the last complete epoch. A
    :class:`FloatingPointError` and (a bad setting, usually ``lr``) a topo error,
    so that ``topo train`` reports it as one line.
    """

    def __init__(self, message: str, epoch: int | None = None, step: int | None = None) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step

    def __reduce__(self):
        return (type(self), (str(self), self.epoch, self.step))


def check_settings(t) -> None:
    """Raise a :class:`~topo.ParameterError` (or ``ParameterTypeError``) naming the first bad setting of ``t``."""
    if not isinstance(t.model, nn.Module):
        raise ParameterTypeError(f"model must be a torch nn.Module, got {type(t.model).__name__}")
    opt = t.optimizer
    if isinstance(opt, str) and opt not in OPTIMIZERS:
        raise ParameterError(f"unknown optimizer {opt!r}; use one of {OPTIMIZERS}, a torch optimizer or a factory")
    if not isinstance(opt, (str, torch.optim.Optimizer)) and not callable(opt):
        raise ParameterTypeError(f"optimizer must be a name, a torch optimizer or a callable, got {opt!r}")
    for name in ("epochs", "batch_size"):
        v = getattr(t, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "epochs" else 1):
            raise ParameterError(f"{name} must be a {'non-negative' if name == 'epochs' else 'positive'} "
                                 f"integer, got {v!r}")
    for name in ("lr", "momentum", "weight_decay", "lr_density_power"):
        v = getattr(t, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
                or (name == "lr" and v == 0):
            raise ParameterError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} "
                                 f"finite number, got {v!r}")
    if t.seed is not None and (isinstance(t.seed, bool) or not isinstance(t.seed, int)):
        raise ParameterTypeError(f"seed must be an int or None, got {t.seed!r}")
    try:
        device = torch.device(t.device)
    except (RuntimeError, TypeError) as err:
        raise ParameterError(f"invalid device {t.device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {t.device!r} asked for, but CUDA is not available here")
    if t.resume and t.out_dir is None:
        raise ParameterError("resume=True needs out_dir (the run directory to resume)")
    if t.evolver is not None and not callable(getattr(t.evolver, "step", None)):
        raise ParameterTypeError(f"evolver must have a step() method (topo.Evolver), got {type(t.evolver).__name__}")
    if t.loss is not None and not callable(t.loss) and not isinstance(t.loss, str):
        raise ParameterTypeError(f"loss must be a name or a callable loss(output, target), got {t.loss!r}")
    from .tasks import check_task, resolve_loss

    resolve_loss(check_task(getattr(t, "task", "classify")), t.loss)
    noise = getattr(t, "noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ParameterError(f"noise must be a non-negative finite number (std of the input noise), got {noise!r}")


def make_optimizer(spec, model: nn.Module, lr: float, momentum: float, weight_decay: float, power: float = 0.0):
    """``"sgd"`` (momentum, L2 weight decay), ``"sgdw"`` (momentum, SET's decoupled decay: :class:`SGDW`),
    ``"adam"``, an optimizer instance, or ``factory(params)``."""
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if power:
        from ..nn.param_groups import param_groups

        params = param_groups(model, lr, power)
    else:
        params = model.parameters()
    if spec == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if spec == "sgdw":
        from .sgdw import SGDW

        return SGDW(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if spec == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    made = spec(params)
    if not isinstance(made, torch.optim.Optimizer):
        raise ParameterTypeError(f"optimizer factory returned {type(made).__name__}, not a torch optimizer")
    return made


def _as_tensor(a, what: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if hasattr(a, "to_numpy"):  # pandas DataFrame / Series
        a = a.to_numpy()
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise ParameterTypeError(f"{what} must be numeric, got an array of {arr.dtype} (e.g. {arr.flat[0]!r})")
    arr = np.ascontiguousarray(arr)
    # torch wants writable memory (pandas hands out read-only views); copy only then.
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def as_xy(data, name: str, device: torch.device,
          dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X [n, f] of dtype, y int64 [n])`` tensors on ``device`` from a pair of arrays, tensors or pandas objects.

    ``X`` may be any float type (numpy float64 and float16 included) and is cast
    once to ``dtype``; NaN or infinite features raise, naming the first.
    """
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be a pair (X, y), got {type(data).__name__}") from None
    X, y = _as_tensor(X, f"{name} X"), _as_tensor(y, f"{name} y")
    if X.dim() != 2 or not X.is_floating_point():
        raise ParameterError(f"{name} X must be a 2-D float array [n, features], got {X.dtype} {tuple(X.shape)}")
    if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ParameterError(f"{name} y must be a 1-D integer label array, got {y.dtype} {tuple(y.shape)}")
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ParameterError(f"{name} has {X.shape[0]} rows in X and {y.shape[0]} labels; need equal and > 0")
    X = X.to(device=device, dtype=dtype)
    bad = ~torch.isfinite(X)
    if bool(bad.any()):
        r, c = (int(v) for v in bad.nonzero()[0])
        raise ParameterError(f"{name} X holds {float(X[r, c])} at row {r}, feature {c} "
                             f"({int(bad.sum())} non-finite values in all); clean or impute the data first")
    return X, y.to(device=device, dtype=torch.int64)


def check_labels(y: torch.Tensor, n_classes: int, name: str) -> None:
    """Raise naming the first label of ``y`` outside ``[0, n_classes)`` (the model's outputs)."""
    bad = (y < 0) | (y >= n_classes)
    if bool(bad.any()):
        r = int(bad.nonzero()[0, 0])
        raise ParameterError(f"{name} y holds label {int(y[r])} (row {r}), but the model has {n_classes} outputs, "
                             f"so labels must be in [0, {n_classes - 1}]")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 without one)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def first_non_finite(losses: list) -> tuple[int, float] | None:
    """``(batch, value)`` of the first non-finite loss in ``[(batch, loss tensor), ...]``, else ``None``.

    One stacked check per epoch, so that training never waits for the device each step.
    """
    if not losses:
        return None
    finite = torch.isfinite(torch.stack([loss.float() for _, loss in losses]))
    if bool(finite.all()):
        return None
    k = int((~finite).nonzero()[0, 0])
    return losses[k][0], float(losses[k][1])


def num_edges(model: nn.Module) -> int:
    """Weights that multiply activations: edges of sparse layers, ``n_in·n_out`` of ``nn.Linear`` ones."""
    n = 0
    for m in model.modules():
        if hasattr(m, "edge_index") and isinstance(getattr(m, "weight", None), torch.Tensor):
            n += int(m.weight.numel())
        elif isinstance(m, nn.Linear):
            n += m.in_features * m.out_features
    return n


def model_topology(model: nn.Module):
    """The model's weighted topology: ``model.topology()``, the complete graph of a chain of
    ``nn.Linear`` layers (a dense MLP), else ``None``."""
    if callable(getattr(model, "topology", None)):
        return model.topology()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears or any(a.out_features != b.in_features for a, b in zip(linears, linears[1:])):
        return None
    from ..graph import from_dense_masks

    ws = [m.weight.detach().cpu() for m in linears]
    return from_dense_masks([torch.ones_like(w, dtype=torch.bool) for w in ws], ws)


def history_upto(path: str | os.PathLike, epochs: list | None) -> History:
    """The history in ``path`` cut back to ``epochs`` (the checkpoint's).

    ``history.npz`` is written just before ``checkpoint.pt``, so after a crash
    between the two it may hold one step more than the checkpoint; fewer, or
    other epochs, mean the files do not belong together.
    """
    if not os.path.isfile(path):
        raise TopologyFormatError(f"cannot resume: {str(path)!r} is missing (the checkpoint needs it)")
    h = History.load(path)
    if not epochs or h.epochs[:len(epochs)] != list(epochs):
        raise TopologyFormatError(f"{str(path)!r} (epochs {h.epochs}) does not match the checkpoint "
                                  f"(epochs {epochs})")
    if len(h.epochs) == len(epochs):
        return h
    cut = History(h.initial, h.meta)
    steps = h.steps
    for i, (e, t) in enumerate(h):
        if e == 0.0:
            continue
        if e > epochs[-1]:
            break
        weights = [g.weight for g in t.layers]
        cut.record(e, h.changes(e), None if all(w is None for w in weights) else weights, step=steps[i])
    return cut


def dist_info():
    """The process group's :class:`~topo.distributed.DistInfo` when running as one of several ranks, else ``None``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    from ..distributed import get_info

    return get_info()

