"""Feature selection by sparse evolutionary training: QuickSelection as a scikit-learn selector.

QuickSelection (Atashgahi et al., Machine Learning 2022; code
``zahraatashgahi/QuickSelection``) trains a sparse denoising autoencoder
``input → 1000 → input`` with SET and ranks every input feature by the
*strength* of its neuron, ``s_i = Σ_j |W¹_ij|``: features the autoencoder needs
keep many strong connections through the evolution, uninformative ones lose
them. :class:`QuickSelection` is a ``SelectorMixin`` estimator: ``fit(X)``,
``scores_``, ``get_support()``, ``transform()``, a step of a ``Pipeline``.

Differences from the reference code, on purpose: the input noise is drawn anew for
every batch (the reference draws one noisy copy of the data set), dropout is the
inverted kind (scaled in training, not at test time) and weight decay is torch
SGD's L2 term (``lr · weight_decay`` per step; the reference subtracts
``weight_decay · w`` outside the learning rate).
"""

from __future__ import annotations

import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["QuickSelection"]


class QuickSelection(SelectorMixin, BaseEstimator):
    """Select the ``n_features`` inputs with the strongest neurons in a SET-trained sparse denoising autoencoder.

    Parameters
    ----------
    n_features : int
        Features to keep (QuickSelection uses 50). More than the data has keeps all, with a warning.
    n_hidden : int
        Hidden neurons of the autoencoder (1000).
    epsilon : float
        SET's ε of both layers (13).
    zeta : float
        Fraction of each layer's edges rewired after every epoch but the last (0.2).
    epochs, batch_size : int
        (10 by default; the paper also reports 100 epochs; batch 100.)
    lr, momentum, weight_decay : float
        SGD settings (0.01, 0.9, 1e-5).
    noise, dropout : float
        Gaussian input noise factor (0.2) and hidden dropout (0.2).
    standardize : bool
        z-score every feature with the training data's mean and std first (the reference's StandardScaler).
    seed : int or None
        Every random draw: topology, values, shuffling, noise, dropout, evolution.
        ``None`` draws one per fit (recorded as ``seed_``). Torch's global RNG is left untouched.

    Attributes
    ----------
    scores_ : ndarray of shape (n_features_in_,)
        Strength of every input neuron after training.
    model_ : topo.nn.SparseDAE
    history_ : topo.History
        The autoencoder's evolution (both layers, weights every epoch).
    loss_curve_ : list of float
        Mean training MSE per epoch.
    fit_seconds_ : float
    n_features_in_, feature_names_in_ : as in scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> from topo.feature_selection import QuickSelection
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 12)); X[:, :3] *= 5
    >>> qs = QuickSelection(n_features=3, n_hidden=20, epsilon=2, epochs=3, seed=0).fit(X)
    >>> qs.transform(X).shape
    (200, 3)
    """

    def __init__(self, n_features: int = 50, *, n_hidden: int = 1000, epsilon: float = 13.0, zeta: float = 0.2,
                 epochs: int = 10, batch_size: int = 100, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 1e-5, noise: float = 0.2, dropout: float = 0.2, standardize: bool = True,
                 seed: int | None = None) -> None:
        self.n_features, self.n_hidden, self.epsilon, self.zeta = n_features, n_hidden, epsilon, zeta
        self.epochs, self.batch_size, self.lr, self.momentum = epochs, batch_size, lr, momentum
        self.weight_decay, self.noise, self.dropout = weight_decay, noise, dropout
        self.standardize, self.seed = standardize, seed

    def _check_params(self) -> None:
        for name in ("n_features", "n_hidden", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name, low, high in (("epsilon", 0, None), ("zeta", 0, 1), ("lr", 0, None), ("momentum", 0, 1),
                                ("weight_decay", 0, None), ("noise", 0, None), ("dropout", 0, 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v < low or \
                    (high is not None and v > high) or (name in ("epsilon", "lr") and v == 0) or \
                    (name == "dropout" and v == 1):
                raise ValueError(f"{name} must be a finite number in the documented range, got {v!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, Integral)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")

    def fit(self, X, y=None) -> QuickSelection:
        """Train the sparse DAE on ``X`` (``y`` is ignored: the selection is unsupervised)."""
        from . import rules
        from .evolve import Evolver
        from .nn.autoencoder import SparseDAE

        self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        n, d = X.shape
        if self.n_features > d:
            warnings.warn(f"n_features={self.n_features} is more than the {d} features of X: all are kept",
                          UserWarning, stacklevel=2)
        self.seed_ = int(np.random.SeedSequence().entropy % 2**31) if self.seed is None else int(self.seed)
        X = np.asarray(X, dtype=np.float64)
        if self.standardize:
            std = X.std(0)
            X = (X - X.mean(0)) / np.where(std > 0, std, 1.0)
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # noise and dropout draw from a private global RNG
            torch.manual_seed(self.seed_)
            Xt = torch.tensor(X, dtype=torch.float32)
            model = SparseDAE(d, self.n_hidden, epsilon=float(self.epsilon), noise=float(self.noise),
                              dropout=float(self.dropout), seed=self.seed_)
            opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                                  weight_decay=self.weight_decay)
            evolver = Evolver(model, rules.SET(float(self.zeta)), optimizer=opt, seed=self.seed_)
            shuffle = torch.Generator().manual_seed(self.seed_)
            losses = []
            model.train()
            for epoch in range(1, self.epochs + 1):
                total = 0.0
                for idx in torch.randperm(n, generator=shuffle).split(self.batch_size):
                    xb = Xt[idx]
                    loss = torch.nn.functional.mse_loss(model(xb), xb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                losses.append(total / n)
                if epoch < self.epochs:  # SET after every epoch but the last
                    evolver.step(epoch=float(epoch))
            model.eval()
        self.fit_seconds_ = time.perf_counter() - t0
        self.model_, self.history_, self.loss_curve_ = model, evolver.history_, losses
        self.scores_ = model.input_strength().numpy()
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "scores_")
        k = min(self.n_features, self.scores_.shape[0])
        order = np.argsort(-self.scores_, kind="stable")  # ties: the lower index first
        mask = np.zeros(self.scores_.shape[0], dtype=bool)
        mask[order[:k]] = True
        return mask

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
