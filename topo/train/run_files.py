"""The run directory side of :class:`~topo.train.Trainer`: checkpoints, resume and ``config.json``.

A mixin: it reads and writes the trainer's own attributes (``model``, ``optimizer_``,
``evolver``, ``_run``, ``_rows`` …), so the loop in :mod:`topo.train.trainer` stays the
loop. Every epoch's files go into one :meth:`topo.runs.RunDir.transaction` (atomic: a
crash leaves the previous epoch's run whole); ``checkpoint.pt`` is written last.
"""

from __future__ import annotations

from ..errors import ParameterError
from ..runs import RunDir
from ..runs import files as _runs
from .checkpoint import rng_state, set_rng_state
from .settings import history_upto, model_topology

__all__ = ["RunFiles"]

# Trainer settings a resumed run must share with the checkpoint to continue the same run.
_RESUME_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "seed", "task", "noise", "val_fraction",
                "lr_density_power")
# What a run's topology.npz says about itself: a graph, not a model.
_TOPOLOGY_NOTE = {"biases": False, "note": "edges and weights only: no biases, activations or dropout; the "
                  "whole model is " + RunDir.MODEL + " in the same run directory (topo.load_model(run_dir))"}


class RunFiles:
    """Checkpoint, resume and run-config methods of :class:`~topo.train.Trainer` (a mixin)."""

    def _trainer_state(self) -> dict:
        opt = self.optimizer if isinstance(self.optimizer, str) else type(self.optimizer_).__name__
        return {"optimizer": opt, "lr": float(self.lr), "momentum": float(self.momentum),
                "weight_decay": float(self.weight_decay), "batch_size": int(self.batch_size),
                "seed": self.seed_, "epochs": int(self.epochs), "task": self.task, "noise": float(self.noise),
                "val_fraction": float(self.val_fraction), "patience_epochs": self.patience_epochs,
                "lr_density_power": float(self.lr_density_power),
                "loss": self.loss if isinstance(self.loss, str) or self.loss is None else
                getattr(self.loss, "__name__", type(self.loss).__name__)}

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
            from ..graph.serialize import save_topology

            # Says in the file that it is a graph (no biases) and where the model is.
            run.write_file(_runs.TOPOLOGY, lambda p: save_topology(topology, p, meta=_TOPOLOGY_NOTE))
        from ..nn.model_file import save_model

        # The whole model (biases, activations, the spec to rebuild it): what topo.load_model reads.
        run.write_file(_runs.MODEL, lambda p: save_model(self.model, p, config=self.run_config))
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
            self._check_history_fits(path)
        self.model.to(self.device_)
        self.seed_ = int(ckpt["trainer"]["seed"])
        self._rows = [dict(r) for r in ckpt["metrics"]]
        self.epoch_ = int(ckpt["epoch"])
        set_rng_state(ckpt["rng"], self._shuffle)
        return bool(ckpt.get("evolved", True))

    def _check_history_fits(self, checkpoint) -> None:
        """The restored history must end in the checkpointed model's edges (else the files are of two runs)."""
        from ..errors import TopologyFormatError

        h, mine = self.evolver.history_, model_topology(self.model)
        if mine is None:
            return
        last = h.final
        if last.sizes != mine.sizes or any(not a.keys().cpu().equal(b.keys().cpu()) for a, b in zip(last, mine)):
            raise TopologyFormatError(
                f"{str(self._out / _runs.HISTORY)!r} does not belong to {str(checkpoint)!r}: its topology at "
                f"epoch {h.epochs[-1]:g} is not the checkpointed model's (files of two different runs?)")

    def _write_config(self) -> None:
        config = self._run.read_config() if (self._out / _runs.CONFIG).exists() else {}
        config.update(self._trainer_state())
        config.update({"model": type(self.model).__name__, "device": str(self.device_),
                       "versions": _runs.versions()})
        config.update(self.strategy_.describe())
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
