"""Helpers of :class:`topo.Trainer`: settings checks, optimizers, data, model topology, history on resume."""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError, TopologyFormatError
from ..graph import History

__all__ = ["OPTIMIZERS", "check_settings", "make_optimizer", "as_xy", "num_edges", "model_topology",
           "history_upto", "dist_info", "agree"]

OPTIMIZERS = ("sgd", "adam")


def check_settings(t) -> None:
    """Raise a :class:`TopologyError` naming the first bad setting of trainer ``t``."""
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
    for name in ("lr", "momentum", "weight_decay"):
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
    if t.loss is not None and not callable(t.loss):
        raise ParameterTypeError(f"loss must be a callable loss(logits, y), got {t.loss!r}")


def make_optimizer(spec, model: nn.Module, lr: float, momentum: float, weight_decay: float):
    """``"sgd"`` (with momentum and weight decay), ``"adam"``, an optimizer instance, or ``factory(params)``."""
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    params = model.parameters()
    if spec == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if spec == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    made = spec(params)
    if not isinstance(made, torch.optim.Optimizer):
        raise ParameterTypeError(f"optimizer factory returned {type(made).__name__}, not a torch optimizer")
    return made


def as_xy(data, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X float [n, f], y int64 [n])`` tensors on ``device`` from a pair of arrays or tensors."""
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be a pair (X, y), got {type(data).__name__}") from None
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    if X.dim() != 2 or not X.is_floating_point():
        raise ParameterError(f"{name} X must be a 2-D float array [n, features], got {X.dtype} {tuple(X.shape)}")
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ParameterError(f"{name} y must be a 1-D integer label array, got {y.dtype} {tuple(y.shape)}")
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ParameterError(f"{name} has {X.shape[0]} rows in X and {y.shape[0]} labels; need equal and > 0")
    return X.to(device), y.to(device=device, dtype=torch.int64)


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
    for e, t in h:
        if e == 0.0:
            continue
        if e > epochs[-1]:
            break
        weights = [g.weight for g in t.layers]
        cut.record(e, h.changes(e), None if all(w is None for w in weights) else weights)
    return cut


def dist_info():
    """The process group's :class:`~topo.distributed.DistInfo` when running as one of several ranks, else ``None``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    from ..distributed import get_info

    return get_info()


def agree(info, fn, *args, what: str, main_only: bool = False):
    """``fn(*args)``; distributed (``info`` not None): on rank 0 only with ``main_only``, and an error on
    one rank is raised on every rank (:func:`topo.distributed.agree`)."""
    if info is None:
        return fn(*args)
    from ..distributed import agree as _agree

    return _agree(fn, *args, what=what, ranks="main" if main_only else "all")
