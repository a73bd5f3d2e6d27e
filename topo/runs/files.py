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
==================  =================================================================

Every file is replaced atomically at the end of each epoch; ``checkpoint.pt``
is written last and is the source of truth on resume (the others are rewritten
from it).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write

__all__ = ["CONFIG", "METRICS", "TOPOLOGY", "HISTORY", "CHECKPOINT", "METRIC_COLUMNS",
           "check_run_dir", "write_json", "read_json", "write_metrics", "versions"]

CONFIG, METRICS, TOPOLOGY, HISTORY, CHECKPOINT = (
    "config.json", "metrics.csv", "topology.npz", "history.npz", "checkpoint.pt")
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "num_edges",
                  "train_seconds", "evolve_seconds")


def check_run_dir(out_dir: str | os.PathLike, resume: bool) -> Path:
    """Validate ``out_dir`` for a new run (``resume=False``) or a resumed one, and create it.

    A directory that already holds a run (``config.json`` or ``checkpoint.pt``)
    is never overwritten: without ``resume`` that raises :class:`FileExistsError`
    naming it. Resuming needs an existing run directory.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"run directory {str(out)!r} exists and is not a directory")
    if resume:
        if not (out / CONFIG).is_file() and not (out / CHECKPOINT).is_file():
            raise FileNotFoundError(f"cannot resume: {str(out)!r} holds no run ({CONFIG} or {CHECKPOINT})")
        return out
    held = [name for name in (CONFIG, CHECKPOINT) if (out / name).exists()]
    if held:
        raise FileExistsError(f"run directory {str(out)!r} already holds a run ({', '.join(held)}); "
                              "refusing to overwrite it: resume it (--resume / resume=True) or choose another "
                              "directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


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


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write per-epoch metric rows as CSV (columns :data:`METRIC_COLUMNS` first), atomically."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS)) if not rows else pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in METRIC_COLUMNS]
    frame = frame[list(METRIC_COLUMNS) + extra]
    with atomic_write(path, "w") as f:
        frame.to_csv(f, index=False, float_format="%.10g")


def versions() -> dict[str, str]:
    """Versions of topo and the libraries whose numerics a run depends on."""
    import numpy
    import torch

    from .. import __version__

    return {"topo": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}
