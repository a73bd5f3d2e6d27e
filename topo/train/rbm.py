"""``RBMTrainer``: contrastive-divergence training of a :class:`~topo.nn.SparseRBM` into a run directory.

An RBM learns by CD-k or persistent CD, not by a loss gradient, so it has its own
loop; it writes the same run directory as :class:`~topo.Trainer`
(``config.json``, ``metrics.csv``, ``topology.npz``, ``history.npz``,
``checkpoint.pt``; see :mod:`topo.runs`), evolves between epochs with a
:class:`topo.Evolver` (SET after every epoch but the last) and resumes
bit-identically from its checkpoint. ``metrics.csv`` holds the standard columns
(``train_loss`` = the CD reconstruction error of the training batches,
``test_loss`` = the mean-field reconstruction error on the test data, accuracies
NaN) plus ``reconstruction_error``, ``pseudo_likelihood``,
``test_reconstruction_error`` and ``test_pseudo_likelihood`` (Bernoulli units; nats).
"""

from __future__ import annotations

import math
import os
import time

import torch

from ..errors import ParameterError, ParameterTypeError
from ..graph import History
from ..runs import RunDir
from ..runs import files as _runs
from .settings import history_upto

__all__ = ["RBMTrainer", "as_matrix"]

_EXTRA = ("reconstruction_error", "pseudo_likelihood", "test_reconstruction_error", "test_pseudo_likelihood",
          "seconds_per_epoch")


def as_matrix(data, name: str, dtype: torch.dtype, device) -> torch.Tensor:
    """A 2-D float tensor from an array, tensor, DataFrame or ``(X, y)`` pair (``y`` ignored)."""
    if isinstance(data, tuple) and len(data) == 2:
        data = data[0]
    if hasattr(data, "to_numpy") and not isinstance(data, torch.Tensor):
        data = data.to_numpy()
    try:
        X = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ParameterTypeError(f"{name} must be a 2-D float array, got {type(data).__name__}: {err}") from None
    if X.dim() != 2 or X.shape[0] == 0 or X.dtype.is_complex:
        raise ParameterError(f"{name} must be a non-empty real 2-D array [n, features], got {X.dtype} "
                             f"{tuple(X.shape)}")
    X = X.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(X).all()):
        raise ParameterError(f"{name} holds NaN or infinite values")
    return X


class RBMTrainer:
    """Train a :class:`~topo.nn.SparseRBM` by CD-k (or PCD) with SGD, momentum and weight decay.

    Parameters
    ----------
    rbm : SparseRBM
    k : int
        Gibbs steps per update (CD-1 by default).
    persistent : bool
        Persistent CD: one fantasy particle per batch row, carried across batches.
    lr, momentum, weight_decay : float
        SGD settings; the SET paper's SET-RBM uses 0.01, 0.9 and 2e-4.
    evolver : topo.Evolver, optional
        Rewires the RBM after every epoch but the last; built on ``rbm``.
    epochs, batch_size : int
    seed : int
        Shuffling, every Gibbs sample, the monitors' pseudo-likelihood draws.
    device : str or torch.device
    out_dir : path, optional
        Run directory (refused if it holds a run, unless ``resume``).
    resume : bool
        Continue the run in ``out_dir`` (more ``epochs`` extend it).
    init_visible_bias : bool
        Set the visible biases from the training data's mean at the start of a
        new run (Hinton's practical guide); ``False`` keeps the RBM's own.
    monitor : int
        Training rows (a fixed random subset) for the per-epoch reconstruction
        error and pseudo-likelihood; the test data is used whole.
    progress : bool
        One line per epoch on stderr.
    run_config : dict, optional
        Extra ``config.json`` entries.

    Attributes
    ----------
    metrics_ : pandas.DataFrame
    history_ : topo.History or None
    optimizer_ : torch.optim.SGD
    epoch_ : int

    Examples
    --------
    >>> import torch, topo
    >>> X = (torch.rand(200, 16) > 0.5).float()
    >>> rbm = topo.nn.SparseRBM(16, 8, density=0.5, seed=0)
    >>> ev = topo.Evolver(rbm, topo.rules.SET(0.3), seed=0)
    >>> t = topo.train.RBMTrainer(rbm, evolver=ev, epochs=2, batch_size=20, progress=False).fit(X)
    >>> list(t.metrics_.epoch), bool(t.metrics_.pseudo_likelihood.lt(0).all())
    ([1, 2], True)
    """

    def __init__(self, rbm, k: int = 1, persistent: bool = False, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 2e-4, evolver=None, epochs: int = 10, batch_size: int = 100, seed: int = 0,
                 device="cpu", out_dir: str | os.PathLike | None = None, resume: bool = False, monitor: int = 1000,
                 init_visible_bias: bool = True, progress: bool = True, run_config: dict | None = None) -> None:
        self.rbm, self.k, self.persistent, self.lr, self.momentum = rbm, k, persistent, lr, momentum
        self.weight_decay, self.evolver, self.epochs, self.batch_size = weight_decay, evolver, epochs, batch_size
        self.seed, self.device, self.out_dir, self.resume = seed, device, out_dir, resume
        self.monitor, self.progress, self.run_config = monitor, progress, run_config
        self.init_visible_bias = init_visible_bias

    # -- settings ----------------------------------------------------------------------------------
    def _check(self) -> None:
        from ..nn.rbm import SparseRBM

        if not isinstance(self.rbm, SparseRBM):
            raise ParameterTypeError(f"rbm must be a topo.nn.SparseRBM, got {type(self.rbm).__name__}")
        for name in ("k", "epochs", "batch_size", "monitor", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
                raise ParameterError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
                    or (name == "lr" and v == 0):
                raise ParameterError(f"{name} must be a finite number >= 0 (lr > 0), got {v!r}")
        if self.evolver is not None and getattr(self.evolver, "model", None) is not self.rbm:
            raise ParameterError("the evolver was built for another model than the trainer's RBM")

    # -- public API --------------------------------------------------------------------------------
    def fit(self, train, test=None) -> RBMTrainer:
        """Train on ``train`` (``X [n, n_visible]``, an ``(X, y)`` pair, a DataFrame; labels unused)."""
        self._check()
        rbm = self.rbm
        self.device_ = torch.device(self.device)
        rbm.to(self.device_)
        dtype = rbm.visible_bias.dtype
        self._X = as_matrix(train, "train", dtype, self.device_)
        self._T = None if test is None else as_matrix(test, "test", dtype, self.device_)
        for name, X in (("train", self._X), ("test", self._T)):
            if X is not None and X.shape[1] != rbm.n_visible:
                raise ParameterError(f"{name} has {X.shape[1]} features but the RBM has {rbm.n_visible} visible units")
        self.optimizer_ = torch.optim.SGD(rbm.parameters(), lr=self.lr, momentum=self.momentum,
                                          weight_decay=self.weight_decay)
        if self.evolver is not None:
            if self.evolver.optimizer is None or self.evolver.optimizer is getattr(self, "_made", None):
                self.evolver.optimizer = self.optimizer_  # (a refit replaces this trainer's own optimizer)
            elif self.evolver.optimizer is not self.optimizer_:
                raise ParameterError("the evolver carries another optimizer's state; build it without one")
        self._made = self.optimizer_
        self._gen = torch.Generator().manual_seed(self.seed)
        self._rows: list[dict] = []
        self._chain = None
        self.epoch_ = 0
        n = self._X.shape[0]
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + 1))[:self.monitor]
        self._monitor = self._X[pick.to(self.device_)]
        self._run = None if self.out_dir is None else RunDir(self.out_dir).open(self.resume)
        try:
            ckpt = self._run.read_checkpoint() if self._run is not None and self.resume and \
                (self._run / _runs.CHECKPOINT).is_file() else None
            if ckpt is None:
                if self.init_visible_bias:
                    rbm.initialize_visible_bias(self._X.clamp(0, 1) if rbm.visible == "bernoulli" else self._X)
                self._history0 = History(rbm.topology(), meta={"rule": "none"}) if self.evolver is None else None
            else:
                self._restore(ckpt)
            if self._run is not None:
                self._write_config()
            for epoch in range(self.epoch_ + 1, self.epochs + 1):
                self._run_epoch(epoch)
        finally:
            if self._run is not None:
                self._run.close()  # the run directory's lock
        return self

    @property
    def metrics_(self):
        import pandas as pd

        return pd.DataFrame(self._rows, columns=[*_runs.METRIC_COLUMNS, *_EXTRA]) if not self._rows \
            else pd.DataFrame(self._rows)

    @property
    def history_(self):
        return None if self.evolver is None else self.evolver.history_

    # -- one epoch ---------------------------------------------------------------------------------
    def _run_epoch(self, epoch: int) -> None:
        rbm, X, g = self.rbm, self._X, self._gen
        t0 = time.perf_counter()
        order = torch.randperm(X.shape[0], generator=g).to(self.device_)
        errs = []
        for idx in order.split(self.batch_size):
            v = X[idx]
            if self.persistent:
                if self._chain is None:  # batch_size fantasy particles, uniform random to start
                    start = torch.rand((self.batch_size, rbm.n_visible), generator=g, dtype=v.dtype)
                    self._chain = (start < 0.5).to(v.dtype).to(self.device_) if rbm.visible == "bernoulli" \
                        else torch.randn(start.shape, generator=g, dtype=v.dtype).to(self.device_)
                err, self._chain = rbm.contrastive_divergence(v, self.k, generator=g, chain=self._chain)
            else:
                err, _ = rbm.contrastive_divergence(v, self.k, generator=g)
            self.optimizer_.step()
            errs.append(err * v.shape[0])
        train_seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": sum(errs) / X.shape[0], "train_acc": math.nan,
               "test_loss": math.nan, "test_acc": math.nan, "num_edges": rbm.num_edges,
               "train_seconds": train_seconds, "evolve_seconds": 0.0}
        row.update(self._monitors(epoch))
        t1 = time.perf_counter()
        evolved = self.evolver is None  # "nothing left to do before the next epoch"
        if self.evolver is not None and epoch < self.epochs:
            self.evolver.step(epoch=float(epoch))
            evolved = True
        row["evolve_seconds"] = time.perf_counter() - t1
        row["seconds_per_epoch"] = train_seconds
        self._rows.append(row)
        self.epoch_ = epoch
        if self.progress:
            import sys

            print(f"epoch {epoch}/{self.epochs}: recon {row['train_loss']:.4f} pseudo-LL "
                  f"{row['pseudo_likelihood']:.2f} test recon {row['test_loss']:.4f} edges {row['num_edges']}",
                  file=sys.stderr, flush=True)
        if self._run is not None:
            self._write_run(evolved)

    def _monitors(self, epoch: int) -> dict:
        rbm = self.rbm
        # Pseudo-likelihood draws come from their own per-epoch generator: monitoring does not move training's.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        bern = rbm.visible == "bernoulli"
        out = {"reconstruction_error": rbm.reconstruction_error(self._monitor),
               "pseudo_likelihood": rbm.pseudo_likelihood(self._monitor, g) if bern else math.nan,
               "test_reconstruction_error": math.nan, "test_pseudo_likelihood": math.nan}
        if self._T is not None:
            out["test_reconstruction_error"] = rbm.reconstruction_error(self._T)
            out["test_loss"] = out["test_reconstruction_error"]
            if bern:
                out["test_pseudo_likelihood"] = rbm.pseudo_likelihood(self._T, g)
        return out

    # -- files ---------------------------------------------------------------------------------------
    def _write_config(self) -> None:
        config = self._run.read_config() if (self._run / _runs.CONFIG).exists() else {}
        rule = getattr(self.evolver, "rule", None)
        config.update({"model": "SparseRBM", "task": "rbm", "k": self.k, "persistent": self.persistent,
                       "lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                       "epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
                       "device": str(self.device_), "sizes": [self.rbm.n_visible, self.rbm.n_hidden],
                       "rbm": self.rbm.config(), "versions": _runs.versions()})
        config.setdefault("rule", "static" if rule is None else getattr(rule, "name", type(rule).__name__))
        config.update(self.run_config or {})
        self._run.write_config(config)

    def _write_run(self, evolved: bool) -> None:
        with self._run.transaction() as run:  # one commit: the files, then the manifest
            run.write_metrics(self._rows)
            run.write_topology(self.rbm.topology())
            if self.evolver is not None:
                run.write_history(self.evolver.history_)
            elif self._history0 is not None:
                run.write_history(self._history0)
            run.write_checkpoint({  # last: everything it describes is written before it
                "epoch": self.epoch_, "model": self.rbm.state_dict(), "optimizer": self.optimizer_.state_dict(),
                "rng": {"gen": self._gen.get_state()}, "metrics": self._rows, "evolved": evolved,
                "chain": self._chain, "evolver": None if self.evolver is None else self.evolver.state_dict(),
                "history_epochs": None if self.evolver is None else [float(e) for e in self.evolver.history_.epochs]})
        self._history0 = None

    def _restore(self, ckpt: dict) -> None:
        self.rbm.load_state_dict(ckpt["model"])
        self.rbm.to(self.device_)
        self.optimizer_ = torch.optim.SGD(self.rbm.parameters(), lr=self.lr, momentum=self.momentum,
                                          weight_decay=self.weight_decay)
        self.optimizer_.load_state_dict(ckpt["optimizer"])
        self._made = self.optimizer_
        self._gen.set_state(ckpt["rng"]["gen"])
        self._rows = [dict(r) for r in ckpt["metrics"]]
        self._chain = ckpt.get("chain")
        self.epoch_ = int(ckpt["epoch"])
        self._history0 = None
        if self.evolver is not None:
            self.evolver.optimizer = self.optimizer_
            if ckpt.get("evolver") is not None:
                self.evolver.load_state_dict(ckpt["evolver"])
            self._run.verify(_runs.HISTORY)
            self.evolver.history_ = history_upto(self._run / _runs.HISTORY, ckpt.get("history_epochs"))
            if not ckpt.get("evolved", True) and self.epoch_ < self.epochs:
                # The run ended on its last epoch (no evolution); extending it does that step now.
                t = time.perf_counter()
                self.evolver.step(epoch=float(self.epoch_))
                self._rows[-1]["evolve_seconds"] = time.perf_counter() - t
                self._write_run(True)
