"""Reading a run directory written by ``topo train`` (see ``docs/architecture.md``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import topo
from topo.errors import TopologyError, TopologyFormatError
from topo.runs import RunDir

__all__ = ["RunDirError", "Run", "load_run"]


class RunDirError(TopologyError):
    """A run directory is missing, incomplete or unreadable."""


@dataclass
class Run:
    path: Path
    config: dict
    metrics: pd.DataFrame
    history: topo.History


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load ``config.json`` (optional), ``metrics.csv`` and ``history.npz`` of a run, verified
    (:class:`topo.runs.RunDir`).

    Raises :class:`RunDirError` naming the directory and the missing or bad file
    (a metrics row that is cut short or not numeric, a file whose bytes differ
    from the run's manifest).
    """
    run = RunDir(run_dir)
    path = run.path
    if not path.is_dir():
        raise RunDirError(f"run directory {str(path)!r} does not exist or is not a directory")
    missing = [name for name in (RunDir.METRICS, RunDir.HISTORY) if not (path / name).is_file()]
    if missing:
        raise RunDirError(f"{str(path)!r} is not a complete run directory: missing {', '.join(missing)} "
                          f"(topo train writes {', '.join(RunDir.FILES[:5])})")
    try:
        config = run.read_config() if (path / RunDir.CONFIG).is_file() else {}
        metrics = run.read_metrics()
        history = run.read_history()
    except TopologyFormatError as err:
        raise RunDirError(str(err)) from None
    return Run(path, config, metrics, history)
