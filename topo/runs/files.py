"""The run directory a training run writes (``topo train --out DIR``, ``Trainer(out_dir=DIR)``).

==================  =================================================================
file                content
==================  =================================================================
``config.json``     every setting of the run (CLI arguments, ``sizes``, ``dataset``,
                    ``rule``, ``seed``, library versions); written first
``metrics.csv``     one row per epoch: ``epoch, train_loss, train_acc, test_loss,
                    test_acc, num_edges, train_seconds, evolve_seconds``
``topology.npz``    the current (after the last epoch: final) weighted topology
``history.npz``     :class:`topo.History` of the evolution, weights every epoch
``checkpoint.pt``   everything needed to resume bit-identically (see :mod:`topo.train.checkpoint`)
``model.safetensors``  the trained model's tensors (reserved for the model export)
``manifest.json``   every file above that topo wrote, with its size and sha256; written last
``.lock``           the exclusive lock of the process writing the run (and its PID)
==================  =================================================================

Every file is replaced atomically at the end of each epoch; ``checkpoint.pt``
is written last and is the source of truth on resume (the others are rewritten
from it). :class:`topo.runs.RunDir` is the object that reads and writes them;
this module holds the names and the small helpers beneath it.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write
from .table import METRIC_COLUMNS, write_metrics

__all__ = ["CONFIG", "METRICS", "TOPOLOGY", "HISTORY", "CHECKPOINT", "MODEL", "MANIFEST", "LOCK", "RUN_FILES",
           "METRIC_COLUMNS", "check_run_dir", "write_json", "read_json", "write_metrics", "versions"]

CONFIG, METRICS, TOPOLOGY, HISTORY, CHECKPOINT = (
    "config.json", "metrics.csv", "topology.npz", "history.npz", "checkpoint.pt")
MODEL, MANIFEST, LOCK = "model.safetensors", "manifest.json", ".lock"
#: The files of a run (all listed in the manifest when topo writes them).
RUN_FILES = (CONFIG, METRICS, TOPOLOGY, HISTORY, CHECKPOINT, MODEL)


def check_run_dir(out_dir: str | os.PathLike, resume: bool) -> Path:
    """Validate ``out_dir`` for a new run (``resume=False``) or a resumed one, and create it.

    A directory that already holds a run (``config.json`` or ``checkpoint.pt``)
    is never overwritten: without ``resume`` that raises :class:`FileExistsError`
    naming it. Resuming needs an existing run directory. A directory whose lock
    another process holds raises :class:`topo.runs.RunLockedError`. (This is
    :meth:`topo.runs.RunDir.check`; :meth:`~topo.runs.RunDir.open` also takes the lock.)
    """
    from .rundir import RunDir

    return RunDir(out_dir).check(resume).path


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a malformed one raises :class:`topo.errors.TopologyFormatError` naming it."""
    from ..errors import TopologyFormatError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TopologyFormatError(f"{str(path)!r} is not valid JSON: {err}") from None


def versions() -> dict[str, str]:
    """Versions of topo and the libraries whose numerics a run depends on."""
    import numpy
    import torch

    from .. import __version__

    return {"topo": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}
