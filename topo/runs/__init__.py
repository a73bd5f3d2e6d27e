"""The run directory a training run writes (``topo train --out DIR``, ``Trainer(out_dir=DIR)``)."""

from .files import (CHECKPOINT, CONFIG, HISTORY, METRIC_COLUMNS, METRICS, TOPOLOGY, check_run_dir, read_json,
                    versions, write_json, write_metrics)

__all__ = ["CONFIG", "METRICS", "TOPOLOGY", "HISTORY", "CHECKPOINT", "METRIC_COLUMNS",
           "check_run_dir", "write_json", "read_json", "write_metrics", "versions"]
