"""``Trainer``: the fit/evaluate loop for classification, with evolution, checkpoints and resume.

One epoch is :meth:`Trainer._train_epoch` (shuffled mini-batches from a seeded
``torch.Generator``), :meth:`Trainer._evaluate` on the test data, then
:meth:`Trainer._evolve` (``evolver.step``, after every epoch but the last, as
SET does) and :meth:`Trainer._checkpoint`. Keeping those steps apart lets
distributed training wrap each one.

With ``out_dir`` every epoch replaces the run directory's files atomically
(see :mod:`topo.runs`); ``resume=True`` restores model, optimizer, evolver,
every RNG state and the metrics from ``checkpoint.pt`` and continues exactly
where the run stopped: the resumed run is bit-identical to an uninterrupted one.

Inside a ``torch.distributed`` process group of several ranks (``topo train
--nproc N``, ``torchrun``, :func:`topo.distributed.launch`) ``fit`` trains data
parallel: every rank takes its share of each global batch, gradients are
all-reduced (weighted by the shares, so the step equals the single-process
one), evolution is decided on rank 0 and replayed on the others
(:func:`topo.distributed.broadcast_evolution`), every rank's topology and values
are checked against rank 0's after each evolution step, and only rank 0 writes
the run directory. See :mod:`topo.distributed`.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ParameterError
from ..graph import History
from ..runs import RunDir
from ..runs import files as _runs
from .checkpoint import rng_state, set_rng_state
from .settings import agree, as_xy, check_settings, dist_info, history_upto, make_optimizer, model_topology, num_edges

__all__ = ["Trainer"]

# Optimizers a Trainer built itself: a later Trainer may take over an evolver attached to one.
_MADE_BY_TRAINERS: weakref.WeakSet = weakref.WeakSet()
# Trainer settings a resumed run must share with the checkpoint to continue the same run.
_RESUME_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "seed")


class Trainer:
    """Train a classifier for ``epochs`` epochs, evolving its topology after each epoch but the last.

    Parameters
    ----------
    model : nn.Module
        Maps ``X [batch, features]`` to logits ``[batch, classes]``; typically a
        :class:`topo.nn.SparseMLP`. Dropout lives in the model.
    optimizer : {"sgd", "adam"}, torch.optim.Optimizer or callable
        ``"sgd"`` is SGD with ``momentum`` and ``weight_decay``; ``"adam"`` uses
        ``weight_decay`` (L2). An optimizer instance must be built on
        ``model.parameters()``; a callable gets the parameters and returns one.
    lr, momentum, weight_decay : float
        SET's reference values by default.
    evolver : topo.Evolver, optional
        Rewires the model after each epoch but the last (``evolver.step``); its
        time is reported as ``evolve_seconds``. ``None`` keeps the topology fixed.
    epochs, batch_size : int
    seed : int or None
        Seeds torch's global RNG (dropout) and the batch shuffling. ``None``
        draws one, recorded as :attr:`seed_`.
    device : str or torch.device
    out_dir : path, optional
        Run directory (``config.json``, ``metrics.csv``, ``topology.npz``,
        ``history.npz``, ``checkpoint.pt``). An existing run is never overwritten.
    resume : bool
        Continue the run in ``out_dir`` from its checkpoint (``epochs`` may be larger
        than before: the run is extended).
    progress : bool
        A tqdm bar per epoch and one summary line per epoch (on stderr).
    loss : callable
        ``loss(logits, y) -> scalar mean``; cross-entropy by default.
    run_config : dict, optional
        Extra entries for ``config.json`` (the CLI stores its arguments here).

    Notes
    -----
    The evolver's ``metrics={"val_acc": ...}`` (CTRE-seq's stall detector) is the
    accuracy on ``test``, or the training accuracy without it: pass a held-out
    validation split as ``test`` to keep a test set unseen. Shuffling uses a
    ``torch.Generator`` seeded by ``seed``; dropout uses torch's global RNG,
    seeded at the start of a new run. Both states are checkpointed.

    Distributed (a process group of several ranks is initialised): ``batch_size``
    is the *global* batch, split across ranks; dropout is re-seeded per epoch and
    rank from ``seed`` (a resume with the same number of ranks stays
    bit-identical); metrics are over all ranks; rank 0 alone evolves, writes and
    shows progress. Every rank must call ``fit`` with the same data and settings.

    Attributes
    ----------
    metrics_ : pandas.DataFrame
        One row per epoch: ``epoch, train_loss, train_acc, test_loss, test_acc,
        num_edges, train_seconds, evolve_seconds``.
    history_ : topo.History or None
        The evolver's history (``None`` without evolver).
    optimizer_ : torch.optim.Optimizer
    seed_ : int
    epoch_ : int
        Completed epochs.

    Examples
    --------
    >>> import torch, topo
    >>> X, y = torch.rand(64, 8), torch.arange(64) % 2
    >>> model = topo.compile(topo.erdos_renyi([8, 16, 2], density=0.5, seed=0))
    >>> t = Trainer(model, epochs=2, batch_size=16, seed=0, progress=False).fit((X, y), (X, y))
    >>> list(t.metrics_.epoch), t.metrics_.columns[:3].tolist()
    ([1, 2], ['epoch', 'train_loss', 'train_acc'])
    """

    def __init__(self, model: nn.Module, optimizer="sgd", lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 2e-4, evolver=None, epochs: int = 10, batch_size: int = 128,
                 seed: int | None = 0, device="cpu", out_dir: str | os.PathLike | None = None,
                 resume: bool = False, progress: bool = True, loss: Callable | None = None,
                 run_config: dict | None = None) -> None:
        self.model, self.optimizer, self.lr, self.momentum = model, optimizer, lr, momentum
        self.weight_decay, self.evolver, self.epochs, self.batch_size = weight_decay, evolver, epochs, batch_size
        self.seed, self.device, self.out_dir, self.resume = seed, device, out_dir, resume
        self.progress, self.loss, self.run_config = progress, loss, run_config

    # -- public API ---------------------------------------------------------------------
    def fit(self, train, test=None) -> Trainer:
        """Train on ``train = (X, y)``, evaluating on ``test = (X, y)`` after every epoch.

        ``X`` is a float array or tensor ``[n, features]``, ``y`` integer class
        labels ``[n]``. Without ``test`` the test columns are NaN and the
        evolver's ``val_acc`` is the training accuracy.
        """
        try:
            return self._fit(train, test)
        finally:
            run = getattr(self, "_run", None)
            if run is not None:
                run.close()  # the run directory's lock

    def _fit(self, train, test) -> Trainer:
        check_settings(self)
        self.device_ = torch.device(self.device)
        self._X, self._y = as_xy(train, "train", self.device_)
        self._test = None if test is None else as_xy(test, "test", self.device_)
        self._loss = self.loss or nn.functional.cross_entropy
        self._dist = dist_info()
        self._main = self._dist is None or self._dist.rank == 0
        self._run = None if self.out_dir is None else self._agree(
            RunDir(self.out_dir).open, self.resume, what="opening the run directory", main_only=True)
        if self._run is None and self.out_dir is not None:
            self._run = RunDir(self.out_dir)  # ranks > 0 read the checkpoint on resume, never write
        self._out = None if self._run is None else self._run.path
        self._new_config = None
        ckpt = self._agree(self._load, what="loading the checkpoint") if self._out is not None and self.resume \
            else None
        self.model.to(self.device_)
        self.optimizer_ = make_optimizer(self.optimizer, self.model, self.lr, self.momentum, self.weight_decay)
        if self.optimizer_ is not self.optimizer:
            _MADE_BY_TRAINERS.add(self.optimizer_)
        self._attach_evolver()
        self._shuffle = torch.Generator()
        self._rows: list[dict] = []
        self.epoch_, evolved = 0, True
        if ckpt is None:
            self.seed_ = int(torch.randint(0, 2**31 - 1, (1,))) if self.seed is None else int(self.seed)
            if self._dist is not None:
                from ..distributed import allreduce_sum, broadcast_model

                # Rank 0's seed for all (seed=None draws one per rank).
                self.seed_ = int(allreduce_sum([self.seed_ if self._main else 0])[0])

                broadcast_model(self.model)  # one starting point, whatever each rank built
            torch.manual_seed(self.seed_)
            self._shuffle.manual_seed(self.seed_)
        else:
            evolved = self._restore(ckpt)
        if self._dist is not None:
            from ..distributed import check_consistent

            check_consistent(self.model, values=True, where="at the start of training")
        if self._out is not None:
            self._agree(self._write_config, what="writing config.json", main_only=True)
        if self.evolver is None:
            # Nothing evolves: the run's history is its starting topology alone, written once.
            t0 = None if ckpt is not None or self._out is None or not self._main else model_topology(self.model)
            self._fixed_history = None if t0 is None else History(t0, meta={"rule": "none"})
        if not evolved and self.epoch_ < self.epochs:
            # The run ended after its last epoch, which skips evolution; extending it does that step now.
            self._rows[-1]["evolve_seconds"] = self._evolve(self.epoch_, self._rows[-1])
            self._checkpoint(evolved=True)
        for epoch in range(self.epoch_ + 1, self.epochs + 1):
            self._run_epoch(epoch)
        return self

    def evaluate(self, data) -> dict:
        """``{"loss", "acc"}`` of the model on ``data = (X, y)`` (eval mode, no gradients)."""
        device = torch.device(self.device)
        X, y = as_xy(data, "data", device)
        self._loss = self.loss or nn.functional.cross_entropy
        self.model.to(device)
        loss, acc = self._evaluate(X, y)
        return {"loss": loss, "acc": acc}

    @property
    def metrics_(self):
        import pandas as pd

        return pd.DataFrame(self._rows, columns=list(_runs.METRIC_COLUMNS))

    @property
    def history_(self):
        return None if self.evolver is None else getattr(self.evolver, "history_", None)

    # -- one epoch ----------------------------------------------------------------------------
    def _run_epoch(self, epoch: int) -> None:
        row = {"epoch": epoch, "num_edges": num_edges(self.model)}
        t0 = time.perf_counter()
        row["train_loss"], row["train_acc"] = self._train_epoch(epoch)
        row["train_seconds"] = time.perf_counter() - t0
        if self._test is not None:
            row["test_loss"], row["test_acc"] = self._evaluate(*self._test)
        else:
            row["test_loss"] = row["test_acc"] = math.nan
        last = epoch == self.epochs
        row["evolve_seconds"] = 0.0 if last else self._evolve(epoch, row)
        self._rows.append(row)
        self.epoch_ = epoch
        if self.progress and self._main:
            from tqdm import tqdm

            tqdm.write(f"epoch {epoch}/{self.epochs}: train loss {row['train_loss']:.4f} acc "
                       f"{row['train_acc']:.4f} | test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | "
                       f"{row['num_edges']} edges | {row['train_seconds']:.2f}s train, "
                       f"{row['evolve_seconds']:.2f}s evolve")
        self._checkpoint(evolved=not last)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the shuffled training data; mean loss and accuracy of the training batches."""
        from tqdm import tqdm

        model, opt, X, y, bs = self.model, self.optimizer_, self._X, self._y, self.batch_size
        model.train()
        n = X.shape[0]
        perm = torch.randperm(n, generator=self._shuffle).to(X.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=X.device)
        correct = torch.zeros((), dtype=torch.int64, device=X.device)
        dist = self._dist
        if dist is not None:
            from ..distributed import allreduce_gradients, allreduce_sum, shard

            # Dropout masks differ across ranks as across the rows of one batch, and a resume with
            # the same ranks redraws them exactly.
            torch.manual_seed((self.seed_ * 1_000_003 + epoch * 7_919 + dist.rank) % 2**63)
        with tqdm(range(0, n, bs), desc=f"epoch {epoch}/{self.epochs}", leave=False, unit="batch",
                  disable=not (self.progress and self._main)) as bar:
            for i in bar:
                idx = perm[i:i + bs]
                if dist is not None:
                    n_global = idx.numel()
                    idx = shard(idx, dist.rank, dist.world_size)
                opt.zero_grad(set_to_none=True)
                if idx.numel():
                    xb, yb = X.index_select(0, idx), y.index_select(0, idx)  # 4x faster than X[idx] on CPU
                    out = model(xb)
                    loss = self._loss(out, yb)
                    loss.backward()
                    loss_sum += loss.detach().double() * idx.numel()
                    correct += (out.detach().argmax(1) == yb).sum()
                if dist is not None:
                    # Each rank's mean loss weighs by its share: the sum is the global batch's gradient.
                    allreduce_gradients(model, weight=idx.numel() / n_global)
                opt.step()
        if dist is not None:
            loss_sum, correct = allreduce_sum([float(loss_sum), int(correct)]).tolist()
        return float(loss_sum) / n, int(correct) / n

    @torch.no_grad()
    def _evaluate(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> tuple[float, float]:
        was_training = self.model.training
        self.model.eval()
        n = X.shape[0]
        dist = getattr(self, "_dist", None)
        if dist is not None:  # every rank scores a strided share; the sums are all-reduced
            X, y = X[dist.rank::dist.world_size], y[dist.rank::dist.world_size]
        loss_sum, correct = 0.0, 0
        for i in range(0, X.shape[0], batch_size):
            out = self.model(X[i:i + batch_size])
            yb = y[i:i + batch_size]
            loss_sum += float(self._loss(out, yb)) * yb.numel()
            correct += int((out.argmax(1) == yb).sum())
        self.model.train(was_training)
        if dist is not None:
            from ..distributed import allreduce_sum

            loss_sum, correct = allreduce_sum([loss_sum, correct]).tolist()
        return loss_sum / n, int(correct) / n

    def _evolve(self, epoch: int, row: dict) -> float:
        """``evolver.step`` after training epoch ``epoch``; returns its wall time in seconds."""
        if self.evolver is None:
            return 0.0
        acc = row["test_acc"] if not math.isnan(row["test_acc"]) else row["train_acc"]
        t0 = time.perf_counter()
        # The evolver draws its sample of the training data (activation/gradient scores) with its
        # own generator, which its state_dict carries across a resume.
        step = lambda: self.evolver.step(epoch=epoch, data=(self._X, self._y), metrics={"val_acc": acc})  # noqa
        if self._dist is None:
            step()
        else:
            from ..distributed import broadcast_evolution, check_consistent

            # Rank 0 decides; the others replay its births and deaths. Then every rank proves it
            # holds rank 0's topology and values.
            broadcast_evolution(self.model, step, optimizer=self.optimizer_, check=False)
            check_consistent(self.model, values=True, where=f"after the evolution step of epoch {epoch}")
        if self.device_.type == "cuda":
            torch.cuda.synchronize(self.device_)
        return time.perf_counter() - t0

    # -- checkpoints and the run directory -----------------------------------------------
    def _trainer_state(self) -> dict:
        opt = self.optimizer if isinstance(self.optimizer, str) else type(self.optimizer_).__name__
        return {"optimizer": opt, "lr": float(self.lr), "momentum": float(self.momentum),
                "weight_decay": float(self.weight_decay), "batch_size": int(self.batch_size),
                "seed": self.seed_, "epochs": int(self.epochs)}

    def _checkpoint(self, evolved: bool) -> None:
        if self._out is None:
            return
        self._agree(self._write_run, evolved, what="writing the run directory", main_only=True)

    def _write_run(self, evolved: bool) -> None:
        with self._run.transaction() as run:  # one commit: the files, then the manifest
            self._write_files(run, evolved)
        self._new_config = self._fixed_history = None

    def _write_files(self, run: RunDir, evolved: bool) -> None:
        if self._new_config is not None:  # a resumed run's config.json changes with its first new epoch
            run.write_config(self._new_config)
        run.write_metrics(self._rows)
        topology = model_topology(self.model)
        if topology is not None:
            run.write_topology(topology)
        if self.history_ is not None:
            run.write_history(self.history_)
        elif self.evolver is None and self._fixed_history is not None:
            run.write_history(self._fixed_history)
        # Last, so that everything it describes is on disk before it.
        run.write_checkpoint({
            "epoch": self.epoch_, "evolved": bool(evolved), "trainer": self._trainer_state(),
            "model": self.model.state_dict(), "optimizer": self.optimizer_.state_dict(),
            "evolver": None if self.evolver is None else self.evolver.state_dict(),
            "history_epochs": None if self.history_ is None else [float(e) for e in self.history_.epochs],
            "rng": rng_state(self._shuffle), "metrics": [dict(r) for r in self._rows]})

    def _load(self) -> dict | None:
        path = self._out / _runs.CHECKPOINT
        if not path.exists():
            return None  # the run stopped before its first checkpoint: start it afresh
        ckpt = self._run.read_checkpoint()
        saved = ckpt.get("trainer", {})
        for key in _RESUME_KEYS:
            mine = self.seed if key == "seed" else getattr(self, key)
            if key == "optimizer" and not isinstance(mine, str):
                continue
            if key == "seed" and mine is None:
                continue
            if key in saved and saved[key] != (float(mine) if isinstance(saved[key], float) else mine):
                raise ParameterError(f"cannot resume {str(path)!r}: it was trained with {key}={saved[key]!r}, "
                                    f"this trainer has {key}={mine!r}")
        if ckpt["epoch"] > self.epochs:
            raise ParameterError(f"cannot resume {str(path)!r}: it has {ckpt['epoch']} epochs done, more "
                                f"than epochs={self.epochs}")
        if (ckpt.get("evolver") is None) != (self.evolver is None):
            raise ParameterError(f"cannot resume {str(path)!r}: it was trained "
                                f"{'without' if ckpt.get('evolver') is None else 'with'} an evolver")
        return ckpt

    def _restore(self, ckpt: dict) -> bool:
        from ..errors import TopologyFormatError

        path = self._out / _runs.CHECKPOINT
        try:
            # SparseLinear resizes itself to the checkpointed edges; the optimizer's
            # Parameters stay the same objects, so its state loads onto them.
            self.model.load_state_dict(ckpt["model"])
            self.optimizer_.load_state_dict(ckpt["optimizer"])
            if self.evolver is not None:
                self.evolver.load_state_dict(ckpt["evolver"])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise TopologyFormatError(f"{str(path)!r} does not fit this model/optimizer/evolver: {err}") from None
        if self.evolver is not None and self._main:  # only rank 0 records and writes the history
            self._run.verify(_runs.HISTORY)
            self.evolver.history_ = history_upto(self._out / _runs.HISTORY, ckpt.get("history_epochs"))
        self.model.to(self.device_)
        self.seed_ = int(ckpt["trainer"]["seed"])
        self._rows = [dict(r) for r in ckpt["metrics"]]
        self.epoch_ = int(ckpt["epoch"])
        set_rng_state(ckpt["rng"], self._shuffle)
        return bool(ckpt.get("evolved", True))

    def _agree(self, fn, *args, what: str, main_only: bool = False):
        """``fn(*args)`` (on rank 0 only with ``main_only``), failing on every rank if it fails on one."""
        return agree(self._dist, fn, *args, what=what, main_only=main_only)

    def _attach_evolver(self) -> None:
        ev = self.evolver
        if ev is None:
            return
        if getattr(ev, "model", self.model) is not self.model:
            raise ParameterError("the evolver was built for another model than the trainer's")
        current = getattr(ev, "optimizer", None)
        if current is None or current in _MADE_BY_TRAINERS:
            ev.optimizer = self.optimizer_  # so the rewiring carries this optimizer's state
        elif current is not self.optimizer_:
            raise ParameterError("the evolver carries the state of another optimizer than the trainer's; "
                                "pass that optimizer to Trainer(optimizer=...) or build the Evolver without one")

    def _write_config(self) -> None:
        config = self._run.read_config() if (self._out / _runs.CONFIG).exists() else {}
        config.update(self._trainer_state())
        config.update({"model": type(self.model).__name__, "device": str(self.device_),
                       "versions": _runs.versions()})
        config["nproc"] = 1 if self._dist is None else self._dist.world_size
        if self._dist is not None:
            config["dist_backend"] = self._dist.backend
        sizes = getattr(self.model, "sizes", None)
        if sizes is not None:
            config["sizes"] = list(sizes)
        if self.evolver is not None:
            rule = getattr(self.evolver, "rule", None)
            config.setdefault("rule", getattr(rule, "name", type(rule).__name__))
        config.update(self.run_config or {})
        if self.resume:
            self._new_config = config  # written with the next epoch's files: a resume that fails changes nothing
        else:
            self._run.write_config(config)

