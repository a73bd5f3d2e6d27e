"""``Trainer``: the fit/evaluate loop (classification, reconstruction, regression), with evolution,
checkpoints and resume.

One epoch is :meth:`Trainer._train_epoch` (shuffled mini-batches from a seeded
``torch.Generator``), :meth:`Trainer._evaluate` on the test data, then
:meth:`Trainer._evolve` (``evolver.step``, after every epoch but the last, as
SET does) and :meth:`Trainer._checkpoint`. Keeping those steps apart lets
distributed training wrap each one.

With ``out_dir`` every epoch replaces the run directory's files atomically
(see :mod:`topo.runs`); ``resume=True`` restores model, optimizer, evolver,
every RNG state and the metrics from ``checkpoint.pt`` and continues exactly
where the run stopped: the resumed run is bit-identical to an uninterrupted one.

How the steps run is a strategy (:mod:`topo.train.strategy`): in one process
(:class:`~topo.train.strategy.LocalStrategy`), or data parallel inside a
``torch.distributed`` process group of several ranks (``topo train --nproc N``,
``torchrun``, :func:`topo.distributed.launch`;
:class:`~topo.train.strategy.DataParallelStrategy`: batch shards, all-reduced
gradients and metric sums, evolution decided on rank 0 and replayed on the
others, only rank 0 writing). The loop below is the same for both.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ParameterError
from ..graph import History
from ..runs import RunDir
from ..runs import files as _runs
from .checkpoint import isolated_rng
from .run_files import RunFiles
from .settings import (
    NonFiniteLossError,
    check_settings,
    first_non_finite,
    make_optimizer,
    model_dtype,
    model_topology,
    num_edges,
)
from .strategy import LocalStrategy, strategy_for
from .tasks import as_data, check_outputs, check_task, resolve_loss, summed
from .validation import check_patience, check_val_fraction, epochs_without_improvement, monitored_by, split_validation

__all__ = ["Trainer", "NonFiniteLossError"]



class Trainer(RunFiles):
    """Train a model for ``epochs`` epochs, evolving its topology after each epoch but the last.

    Parameters
    ----------
    model : nn.Module
        Maps ``X [batch, features]`` to outputs ``[batch, k]``: logits of ``k``
        classes (``task="classify"``), a reconstruction of ``X`` (``k = features``)
        or ``k`` regression targets; typically a :class:`topo.nn.SparseMLP`.
        Dropout lives in the model.
    optimizer : {"sgd", "sgdw", "adam"}, torch.optim.Optimizer or callable
        ``"sgd"`` is SGD with ``momentum`` and ``weight_decay`` as torch's L2
        penalty; ``"sgdw"`` is :class:`topo.train.SGDW`, SGD whose decay is SET's
        ``w ← (1 − weight_decay)·w`` per step (not scaled by ``lr``); ``"adam"`` uses
        ``weight_decay`` (L2). An optimizer instance must be built on
        ``model.parameters()``; a callable gets the parameters and returns one.
    lr, momentum, weight_decay : float
        SET's reference values by default.
    lr_density_power : float
        The named optimizers (and a factory, which then gets parameter groups) give
        each :class:`~topo.nn.SparseLinear` weight ``lr · density^(−lr_density_power)``
        (:func:`topo.nn.param_groups`; biases and dense layers keep ``lr``); 0
        (default) is plain ``lr``; an optimizer instance keeps its own groups.
        ``topo train --rule set`` uses 0.5.
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
    loss : str or callable, optional
        ``loss(output, target) -> scalar mean``, or a name of
        :data:`topo.train.tasks.LOSSES`; default the task's (cross-entropy, MSE).
    run_config : dict, optional
        Extra entries for ``config.json`` (the CLI stores its arguments here).
    task : {"classify", "reconstruct", "regress"}
        What is learnt (:mod:`topo.train.tasks`): integer labels; the input itself
        (``fit(X)``, an autoencoder); float targets ``[n]`` or ``[n, k]``. Outside
        classification the accuracy columns are NaN, and an evolver without a
        ``loss_fn`` gets the task's loss (summed) for gradient scores.
    noise : float
        Std of Gaussian noise added to the inputs of every training batch (a
        denoising autoencoder with ``task="reconstruct"``); targets and
        evaluation stay clean. Deterministic per (seed, epoch, batch).
    val_fraction : float in [0, 1)
        Share of the training rows held out as a validation split
        (:func:`topo.train.validation.split_validation`: stratified by class when
        classifying, seeded by ``seed``, the same on resume). Or pass ``val=`` to
        :meth:`fit`. Its loss and accuracy are the ``val_loss, val_acc`` columns.
    patience_epochs : int, optional
        Early stopping: end the run once ``val_loss`` has not improved on its best
        for this many epochs (needs a validation split). The model is that of the
        last epoch trained; :attr:`stopped_epoch_` says where it stopped.

    Notes
    -----
    ``fit`` leaves the caller's global RNG states as they were (torch, CUDA, numpy,
    python): training draws dropout from torch's global RNG inside
    :func:`torch.random.fork_rng`, seeded by ``seed`` at the start of a new run.

    Monitors read the validation split only, never ``test``: the evolver's
    ``metrics={"val_acc": ...}`` (CTRE-seq's stall detector) is the validation
    accuracy, and a rule that watches a metric refuses to train without a
    validation split; early stopping reads ``val_loss``. ``test`` is only
    reported. Shuffling uses a ``torch.Generator`` seeded by ``seed``. Both
    states are checkpointed.

    A NaN or infinite training loss stops ``fit`` with a
    :class:`NonFiniteLossError` naming the epoch and step; the run directory
    keeps the last complete epoch.

    Distributed (a process group of several ranks is initialised): ``batch_size``
    is the *global* batch, split across ranks; dropout is re-seeded per epoch and
    rank from ``seed`` (a resume with the same number of ranks stays
    bit-identical); metrics are over all ranks; rank 0 alone evolves, writes and
    shows progress. Every rank must call ``fit`` with the same data and settings.

    Attributes
    ----------
    metrics_ : pandas.DataFrame
        One row per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, test_loss,
        test_acc, num_edges, train_seconds, evolve_seconds`` (accuracies NaN unless
        classifying; validation and test columns NaN without those splits).
    history_ : topo.History or None
        The evolver's history (``None`` without evolver).
    optimizer_ : torch.optim.Optimizer
    seed_ : int
    epoch_ : int
        Completed epochs.
    stopped_epoch_ : int or None
        The epoch early stopping ended the run after (``None``: it ran its ``epochs``).
    strategy_ : topo.train.strategy.LocalStrategy
        How the steps ran (``DataParallelStrategy`` inside a process group).

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
                 resume: bool = False, progress: bool = True, loss: Callable | str | None = None,
                 run_config: dict | None = None, task: str = "classify", noise: float = 0.0,
                 val_fraction: float = 0.0, patience_epochs: int | None = None,
                 lr_density_power: float = 0.0) -> None:
        self.model, self.optimizer, self.lr, self.momentum = model, optimizer, lr, momentum
        self.lr_density_power = lr_density_power
        self.weight_decay, self.evolver, self.epochs, self.batch_size = weight_decay, evolver, epochs, batch_size
        self.seed, self.device, self.out_dir, self.resume = seed, device, out_dir, resume
        self.progress, self.loss, self.run_config = progress, loss, run_config
        self.task, self.noise = task, noise
        self.val_fraction, self.patience_epochs = val_fraction, patience_epochs

    # -- public API ---------------------------------------------------------------------
    def fit(self, train, test=None, val=None) -> Trainer:
        """Train on ``train = (X, y)``, evaluating on ``val`` and ``test = (X, y)`` after every epoch.

        ``X`` is a float array, tensor or pandas DataFrame ``[n, features]``
        (cast once to the model's dtype), ``y`` integer class labels ``[n]``
        in ``[0, classes)`` (``task="regress"``: float targets; ``task="reconstruct"``:
        ``train`` and ``test`` may be ``X`` alone). Without ``test`` the test
        columns are NaN. ``val`` is a validation split of the same form (or give
        ``val_fraction`` to carve one from ``train``); without one the evolver's
        ``val_acc`` is the training accuracy.

        Torch's global RNG drives dropout during training (seeded by ``seed``);
        the caller's global RNG states (torch, CUDA, numpy, python) are restored
        when ``fit`` returns or raises.
        """
        check_settings(self)
        self.device_ = torch.device(self.device)
        dtype = model_dtype(self.model)
        task = check_task(self.task)
        self._loss, loss_name = resolve_loss(task, self.loss)
        self._X, self._y = as_data(train, "train", self.device_, dtype, task, loss_name)
        self._test = None if test is None else as_data(test, "test", self.device_, dtype, task, loss_name)
        self._val = None if val is None else as_data(val, "val", self.device_, dtype, task, loss_name)
        self._check_validation()
        self.strategy_ = strategy_for()
        self._run = None
        try:
            with isolated_rng(self.device_):
                self._fit()
        finally:
            if self._run is not None:
                self._run.close()  # the run directory's lock
        return self

    def _fit(self) -> None:
        s = self.strategy_
        self._main = s.is_main
        self._run = None if self.out_dir is None else self._agree(
            RunDir(self.out_dir).open, self.resume, what="opening the run directory", main_only=True)
        if self._run is None and self.out_dir is not None:
            self._run = RunDir(self.out_dir)  # ranks > 0 read the checkpoint on resume, never write
        self._out = None if self._run is None else self._run.path
        self._new_config = None
        ckpt = self._agree(self._load, what="loading the checkpoint") if self._out is not None and self.resume \
            else None
        self.model.to(self.device_)
        self._check_targets()
        self.optimizer_ = make_optimizer(self.optimizer, self.model, self.lr, self.momentum, self.weight_decay,
                                         self.lr_density_power)
        self._attach_evolver()
        self._shuffle = torch.Generator()
        self._rows: list[dict] = []
        self.epoch_, evolved = 0, True
        if ckpt is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,))) if self.seed is None else int(self.seed)
            self.seed_ = s.start(self.model, seed)
            torch.manual_seed(self.seed_)
            self._shuffle.manual_seed(self.seed_)
        else:
            evolved = self._restore(ckpt)
        self._carve_validation()
        s.check(self.model, where="at the start of training")
        self._start_schedule()
        if self._out is not None:
            self._agree(self._write_config, what="writing the run configuration", main_only=True)
        if self.evolver is None:
            # Nothing evolves: the run's history is its starting topology alone, written once.
            t0 = None if ckpt is not None or self._out is None or not self._main else model_topology(self.model)
            self._fixed_history = None if t0 is None else History(t0, meta={"rule": "none"})
        if not evolved and self.epoch_ < self.epochs and self._due(self.epoch_, self.step_) \
                and not self._patience_ran_out():
            # The run ended with an update its schedule skipped as the last one (SET skips the last
            # epoch); extended, the schedule wants it: do it now.
            row = self._rows[-1]
            row["evolve_seconds"] += self._evolve(self._label(self.step_), None if self._per_step else
                                                  self._monitor(row))
            self._checkpoint(evolved=True)
        self.stopped_epoch_ = self.epoch_ if self._patience_ran_out() else None
        for epoch in range(self.epoch_ + 1, self.epochs + 1):
            if self.stopped_epoch_ is not None:
                break
            self._run_epoch(epoch)

    # -- the evolution schedule ---------------------------------------------------------------
    def _start_schedule(self) -> None:
        """Steps per epoch, the step count so far, and the evolver's schedule total from the run length."""
        self.steps_per_epoch_ = -(-self._X.shape[0] // self.batch_size)
        self.step_ = self.epoch_ * self.steps_per_epoch_
        self._last_update = None  # the optimizer step of the latest update in this fit
        sched = getattr(self.evolver, "schedule", None)
        self._per_step = sched is not None and not sched.per_epoch
        if sched is not None:
            sched.total = self.epochs * self.steps_per_epoch_ if self._per_step else self.epochs

    def _due(self, epoch: int, step: int) -> bool:
        """Whether the evolver's schedule wants an update after ``step`` optimizer steps (``epoch`` epochs)."""
        if self.evolver is None:
            return False
        sched = getattr(self.evolver, "schedule", None)
        if sched is None:  # an evolver of its own kind: SET's cadence
            return step % self.steps_per_epoch_ == 0 and epoch < self.epochs
        if self._per_step:
            return sched.due(step=step)
        return step % self.steps_per_epoch_ == 0 and sched.due(epoch=epoch)

    def _label(self, step: int) -> float:
        """The History label of an update after ``step`` optimizer steps: the (fractional) epoch."""
        return step / self.steps_per_epoch_ if self._per_step else float(step // self.steps_per_epoch_)

    def _monitor(self, row: dict) -> dict:
        """What the rule's monitors see after an epoch (CTRE-seq's ``val_acc``): validation only, never test."""
        return {"val_acc": row["val_acc"] if self._val is not None else row["train_acc"]}

    # -- the validation split ----------------------------------------------------------------
    def _check_validation(self) -> None:
        self.val_fraction = check_val_fraction(self.val_fraction)
        self.patience_epochs = check_patience(self.patience_epochs)
        has_val = self._val is not None or self.val_fraction > 0
        if self._val is not None and self.val_fraction > 0:
            raise ParameterError(f"give either val= to fit or val_fraction={self.val_fraction}, not both")
        watched = monitored_by(self.evolver)
        if watched is not None and not has_val:
            raise ParameterError(f"the evolver's rule watches {watched!r}, which is read from a validation split "
                                 "only (never the test set): give val_fraction= (topo train --val-fraction) or "
                                 "fit(..., val=...)")
        if self.patience_epochs is not None and not has_val:
            raise ParameterError(f"patience_epochs={self.patience_epochs} stops on val_loss: give val_fraction= "
                                 "(topo train --val-fraction) or fit(..., val=...)")

    def _carve_validation(self) -> None:
        """Hold out ``val_fraction`` of the training rows (seeded by the run's seed: the same on resume)."""
        if self.val_fraction > 0:
            (self._X, self._y), self._val = split_validation(self._X, self._y, self.val_fraction, self.seed_,
                                                             stratify=self.task == "classify")

    def _patience_ran_out(self) -> bool:
        return self.patience_epochs is not None and \
            epochs_without_improvement(self._rows, "val_loss") >= self.patience_epochs

    @torch.no_grad()
    def _outputs(self, X: torch.Tensor) -> tuple:
        """The shape of the model's output for one row, in eval mode (no dropout, so no RNG drawn)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return tuple(self.model(X[:1]).shape)
        finally:
            self.model.train(was_training)

    def _check_targets(self) -> None:
        """Labels must index the model's outputs, targets match them: a clear error now, not mid-epoch."""
        shape = self._outputs(self._X)
        check_outputs(self.task, shape, self._X, self._y, "train")
        if self._test is not None:
            check_outputs(self.task, shape, *self._test, "test")
        if self._val is not None:
            check_outputs(self.task, shape, *self._val, "val")

    def evaluate(self, data) -> dict:
        """``{"loss", "acc"}`` of the model on ``data`` (eval mode, no gradients; ``acc`` NaN unless classifying).

        ``data`` is what ``fit`` takes for the task. Every row is scored in this
        process (each rank of a distributed run holds the whole model).
        """
        device = torch.device(self.device)
        task = check_task(self.task)
        self._loss, loss_name = resolve_loss(task, self.loss)
        X, y = as_data(data, "data", device, model_dtype(self.model), task, loss_name)
        self.model.to(device)
        check_outputs(task, self._outputs(X), X, y, "data")
        loss, acc = self._evaluate(X, y, LocalStrategy())
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
        self._evolve_seconds = 0.0  # of the updates within the epoch (step-wise schedules)
        t0 = time.perf_counter()
        row["train_loss"], row["train_acc"] = self._train_epoch(epoch)
        row["train_seconds"] = time.perf_counter() - t0 - self._evolve_seconds
        for name, split in (("val", self._val), ("test", self._test)):
            row[f"{name}_loss"], row[f"{name}_acc"] = (math.nan, math.nan) if split is None else \
                self._evaluate(*split, self.strategy_)
        stopping = self._patience_ran_out_with(row)
        if self._per_step:
            if hasattr(self.evolver, "observe"):
                self.evolver.observe(self._monitor(row))
        elif self._due(epoch, self.step_) and not stopping:  # a run that ends here keeps its trained edges
            self._evolve_seconds += self._evolve(float(epoch), self._monitor(row))
        row["evolve_seconds"] = self._evolve_seconds
        evolved = self._last_update == self.step_
        self._rows.append(row)
        self.epoch_ = epoch
        if self.progress and self._main:
            from tqdm import tqdm

            val = "" if self._val is None else f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | "
            tqdm.write(f"epoch {epoch}/{self.epochs}: train loss {row['train_loss']:.4f} acc "
                       f"{row['train_acc']:.4f} | {val}test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | "
                       f"{row['num_edges']} edges | {row['train_seconds']:.2f}s train, "
                       f"{row['evolve_seconds']:.2f}s evolve")
        self._checkpoint(evolved=evolved)
        if stopping:
            self.stopped_epoch_ = epoch
            if self.progress and self._main:
                from tqdm import tqdm

                tqdm.write(f"early stop after epoch {epoch}: val_loss has not improved for "
                           f"{self.patience_epochs} epochs")

    def _patience_ran_out_with(self, row: dict) -> bool:
        return self.patience_epochs is not None and \
            epochs_without_improvement([*self._rows, row], "val_loss") >= self.patience_epochs

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the shuffled training data; mean loss and accuracy of the training batches."""
        from tqdm import tqdm

        model, opt, X, y, bs, s = self.model, self.optimizer_, self._X, self._y, self.batch_size, self.strategy_
        model.train()
        n = X.shape[0]
        perm = torch.randperm(n, generator=self._shuffle).to(X.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=X.device)
        correct = torch.zeros((), dtype=torch.int64, device=X.device)
        losses: list[tuple[int, torch.Tensor]] = []  # checked once per epoch: no device sync per step
        s.seed_epoch(self.seed_, epoch)
        classify = self.task == "classify"
        with tqdm(range(0, n, bs), desc=f"epoch {epoch}/{self.epochs}", leave=False, unit="batch",
                  disable=not (self.progress and self._main)) as bar:
            for b, i in enumerate(bar):
                batch = perm[i:i + bs]
                idx, share = s.shard(batch)
                opt.zero_grad(set_to_none=True)
                if idx.numel():
                    xb, yb = X.index_select(0, idx), y.index_select(0, idx)  # 4x faster than X[idx] on CPU
                    if self.noise:
                        xb = xb + self._input_noise(epoch, b, batch, xb)
                    out = model(xb)
                    loss = self._loss(out, yb)
                    loss.backward()
                    losses.append((b, loss.detach()))
                    loss_sum += loss.detach().double() * idx.numel()
                    if classify:
                        correct += (out.detach().argmax(1) == yb).sum()
                s.reduce_gradients(model, share)
                opt.step()
                self.step_ += 1
                if self._per_step and self._due(epoch, self.step_):
                    self._stop_if_non_finite(epoch, losses)  # never evolve from NaN weights
                    self._evolve_seconds += self._evolve(self._label(self.step_), None)
        bad = first_non_finite(losses)
        loss_sum, correct, n_bad = s.reduce([float(loss_sum), int(correct), 0 if bad is None else 1])
        if n_bad:  # on every rank, so that none is left waiting in a collective
            self._non_finite(epoch, bad)
        return float(loss_sum) / n, int(correct) / n if classify else math.nan

    def _input_noise(self, epoch: int, b: int, batch: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """Gaussian noise (std ``noise``) for this rank's rows of global batch ``b`` of ``epoch``.

        Drawn from a generator seeded by (seed, epoch, batch), for the whole global
        batch: no state to checkpoint, and any number of ranks sees the same noise.
        """
        g = torch.Generator(device=xb.device)
        g.manual_seed((self.seed_ * 2_654_435_761 + epoch * 1_000_003 + b * 7_919 + 17) % 2**63)
        full = torch.randn((batch.numel(), xb.shape[1]), generator=g, device=xb.device, dtype=xb.dtype)
        mine, _ = self.strategy_.shard(torch.arange(batch.numel(), device=xb.device))
        return self.noise * full.index_select(0, mine)

    def _stop_if_non_finite(self, epoch: int, losses: list) -> None:
        bad = first_non_finite(losses)
        if self.strategy_.reduce([0 if bad is None else 1])[0]:
            self._non_finite(epoch, bad)

    def _non_finite(self, epoch: int, bad: tuple[int, float] | None) -> None:
        steps = -(-self._X.shape[0] // self.batch_size)
        where = "on another rank" if bad is None else \
            f"at step {bad[0] + 1} of {steps} (optimizer step {(epoch - 1) * steps + bad[0] + 1} of the run)"
        raise NonFiniteLossError(
            f"the training loss became {'non-finite' if bad is None else bad[1]} in epoch {epoch} {where}; "
            f"lr={self.lr:g} is probably too large for this model: try a smaller lr (e.g. {self.lr / 10:g}). "
            f"Training stopped; " + (f"the run directory keeps the last good epoch ({epoch - 1})." if epoch > 1
                                     else "no epoch completed."),
            epoch=epoch, step=None if bad is None else bad[0] + 1)

    @torch.no_grad()
    def _evaluate(self, X: torch.Tensor, y: torch.Tensor, strategy, batch_size: int = 4096) -> tuple[float, float]:
        """Mean loss and accuracy on ``(X, y)``; a data-parallel ``strategy`` scores a share per rank."""
        was_training = self.model.training
        self.model.eval()
        n = X.shape[0]
        X, y = strategy.eval_rows(X, y)
        loss_sum, correct = 0.0, 0
        classify = self.task == "classify"
        for i in range(0, X.shape[0], batch_size):
            out = self.model(X[i:i + batch_size])
            yb = y[i:i + batch_size]
            loss_sum += float(self._loss(out, yb)) * yb.shape[0]
            if classify:
                correct += int((out.argmax(1) == yb).sum())
        self.model.train(was_training)
        loss_sum, correct = strategy.reduce([loss_sum, correct])
        return loss_sum / n, int(correct) / n if classify else math.nan

    def _evolve(self, label: float, metrics: dict | None) -> float:
        """``evolver.step`` after ``self.step_`` optimizer steps (History label ``label``); its wall time."""
        t0 = time.perf_counter()
        # The evolver draws its sample of the training data (activation/gradient scores) with its
        # own generator, which its state_dict carries across a resume.
        step = lambda: self.evolver.step(epoch=label, data=(self._X, self._y), metrics=metrics,  # noqa: E731
                                         step=self.step_)
        self.strategy_.evolve(self.model, step, self.optimizer_, where=f"after the evolution step of epoch {label:g}")
        self._last_update = self.step_
        if self.device_.type == "cuda":
            torch.cuda.synchronize(self.device_)
        return time.perf_counter() - t0

    def _agree(self, fn, *args, what: str, main_only: bool = False):
        """``fn(*args)`` (on rank 0 only with ``main_only``), failing on every rank if it fails on one."""
        return self.strategy_.agree(fn, *args, what=what, main_only=main_only)

    def _attach_evolver(self) -> None:
        """Let the evolver carry this trainer's optimizer state through each rewiring.

        An evolver without an optimizer gets this trainer's. One whose optimizer a
        trainer made and attached (:attr:`topo.Evolver.trainer_optimizer`: e.g. the
        evolver of a finished run, resumed by a new trainer) is moved to this one's.
        An optimizer the user gave the evolver must be the trainer's too.
        """
        ev = self.evolver
        if ev is None:
            return
        if getattr(ev, "model", self.model) is not self.model:
            raise ParameterError("the evolver was built for another model than the trainer's")
        if self.task != "classify" and getattr(ev, "loss_fn", "unset") is None:
            ev.loss_fn = summed(self._loss)  # gradient scores of the task's loss, not cross-entropy
        current = getattr(ev, "optimizer", None)
        made_here = self.optimizer_ is not self.optimizer
        if current is None or current is getattr(ev, "trainer_optimizer", None):
            ev.optimizer = self.optimizer_  # so the rewiring carries this optimizer's state
            ev.trainer_optimizer = self.optimizer_ if made_here else None
        elif current is not self.optimizer_:
            raise ParameterError("the evolver carries the state of another optimizer than the trainer's; "
                                "pass that optimizer to Trainer(optimizer=...) or build the Evolver without one")
