"""Reading a run directory written by ``topo train`` (see ``docs/architecture.md``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import topo
from topo.errors import TopologyError, TopologyFormatError
from topo.runs import CONFIG, HISTORY, METRICS, read_json

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
    """Load ``config.json`` (optional), ``metrics.csv`` and ``history.npz`` of a run.

    Raises :class:`RunDirError` naming the directory and the missing or bad file.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"run directory {str(path)!r} does not exist or is not a directory")
    missing = [name for name in (METRICS, HISTORY) if not (path / name).is_file()]
    if missing:
        raise RunDirError(f"{str(path)!r} is not a complete run directory: missing {', '.join(missing)} "
                          f"(topo train writes {CONFIG}, {METRICS}, {HISTORY}, topology.npz)")
    config: dict = {}
    if (path / CONFIG).is_file():
        try:
            config = read_json(path / CONFIG)
        except TopologyFormatError as err:
            raise RunDirError(str(err)) from None
        if not isinstance(config, dict):
            raise RunDirError(f"{str(path / CONFIG)!r} must hold a JSON object, got {type(config).__name__}")
    try:
        metrics = pd.read_csv(path / METRICS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RunDirError(f"{str(path / METRICS)!r} is not a readable CSV: {err}") from None
    if "epoch" not in metrics.columns:
        raise RunDirError(f"{str(path / METRICS)!r} has no 'epoch' column (columns: {list(metrics.columns)})")
    try:
        history = topo.History.load(path / HISTORY)
    except TopologyFormatError as err:
        raise RunDirError(f"cannot read the history of {str(path)!r}: {err}") from None
    return Run(path, config, metrics, history)
