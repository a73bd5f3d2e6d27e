"""The validation split: carved from the training data, the only data a monitor may read.

Monitors — CTRE-seq's switch from cosine to random growth, early stopping —
decide how a run goes on, so they must never see the test set (that would
tune the run on it). :func:`split_validation` carves a deterministic,
stratified share of the training rows; :func:`epochs_without_improvement`
reads the validation losses of the metrics rows, so a resumed run stops
where the uninterrupted one would.

Examples
--------
>>> import torch
>>> X, y = torch.arange(20.).reshape(10, 2), torch.tensor([0] * 5 + [1] * 5)
>>> (Xt, yt), (Xv, yv) = split_validation(X, y, 0.4, seed=0, stratify=True)
>>> Xt.shape[0], Xv.shape[0], sorted(yv.tolist())
(6, 4, [0, 0, 1, 1])
>>> epochs_without_improvement([{"val_loss": 0.5}, {"val_loss": 0.4}, {"val_loss": 0.45}])
1
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from ..errors import ParameterError, ParameterTypeError

__all__ = ["check_val_fraction", "check_patience", "split_validation", "epochs_without_improvement",
           "monitored_by"]


def check_val_fraction(value) -> float:
    """``value`` as a float in ``[0, 1)``; anything else raises naming it."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ParameterTypeError(f"val_fraction must be a number in [0, 1), got {value!r}")
    if not (math.isfinite(float(value)) and 0.0 <= float(value) < 1.0):
        raise ParameterError(f"val_fraction must be in [0, 1) (the share of training rows held out), got {value!r}")
    return float(value)


def check_patience(value) -> int | None:
    """``None`` (no early stopping) or a positive int of epochs."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ParameterError(f"patience_epochs must be a positive integer or None, got {value!r}")
    return int(value)


def split_validation(X: torch.Tensor, y: torch.Tensor, fraction: float, seed: int, stratify: bool):
    """``((X_train, y_train), (X_val, y_val))``: ``fraction`` of the rows held out, reproducibly.

    With ``stratify`` (class labels) every class keeps its share in both parts
    (scikit-learn's :func:`~sklearn.model_selection.train_test_split`, seeded
    by ``seed``). Both parts keep the rows' original order, so the training
    batches a seed draws depend only on which rows are left.
    """
    from sklearn.model_selection import train_test_split

    n = X.shape[0]
    n_val = math.ceil(fraction * n)
    if n_val < 1 or n - n_val < 1:
        raise ParameterError(f"val_fraction={fraction} of {n} training rows leaves "
                             f"{n - n_val} for training and {n_val} for validation; both need at least one")
    labels = y.detach().cpu().numpy() if stratify else None
    try:
        train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=labels)
    except ValueError as err:  # e.g. a class with a single row cannot be stratified
        raise ParameterError(f"cannot carve a stratified validation split of {n_val} rows: {err}") from None
    pick = [torch.from_numpy(np.sort(i)).to(X.device) for i in (train_idx, val_idx)]
    return tuple((X[i], y[i]) for i in pick)


def epochs_without_improvement(rows: list[dict], key: str = "val_loss") -> int:
    """Epochs since the best (lowest) ``key`` among ``rows`` (0 when the last row is the best)."""
    values = [float(r.get(key, math.nan)) for r in rows]
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return 0
    best = min(finite)[1]  # the first epoch reaching the lowest value
    return len(rows) - 1 - best


def monitored_by(evolver_or_rule) -> str | None:
    """The metric the rule (of an evolver) watches (CTRE-seq: ``"val_acc"``), or ``None``."""
    rule = getattr(evolver_or_rule, "rule", evolver_or_rule)
    for part in (getattr(rule, "grow", None), getattr(rule, "prune", None)):
        monitor = getattr(part, "monitor", None)
        if isinstance(monitor, str):
            return monitor
    return None
