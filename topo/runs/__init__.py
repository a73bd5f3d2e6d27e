"""The run directory a training run writes (``topo train --out DIR``, ``Trainer(out_dir=DIR)``).

:class:`RunDir` is the run directory as an object: its file names, reading and
writing ``config.json``, ``metrics.csv``, ``checkpoint.pt``, ``topology.npz``,
``history.npz`` (and ``model.safetensors``) atomically, an exclusive lock so
that one process at a time writes a run, and ``manifest.json``, the sha256 of
every file it wrote, checked whenever a file is read back.
"""

from .files import (
                    CHECKPOINT,
                    CONFIG,
                    HISTORY,
                    LOCK,
                    MANIFEST,
                    METRIC_COLUMNS,
                    METRICS,
                    MODEL,
                    RUN_FILES,
                    TOPOLOGY,
                    check_run_dir,
                    read_json,
                    versions,
                    write_json,
                    write_metrics,
)
from .lock import RunLock, RunLockedError
from .manifest import RunFileError
from .rundir import RunDir
from .table import check_metrics_text, read_metrics

__all__ = ["RunDir", "RunLock", "RunLockedError", "RunFileError",
           "CONFIG", "METRICS", "TOPOLOGY", "HISTORY", "CHECKPOINT", "MODEL", "MANIFEST", "LOCK", "RUN_FILES",
           "METRIC_COLUMNS", "check_run_dir", "write_json", "read_json", "write_metrics", "read_metrics",
           "check_metrics_text", "versions"]
