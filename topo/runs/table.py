"""``metrics.csv``: writing the per-epoch table, and reading it back only when every row is whole and numeric."""

from __future__ import annotations

import csv
import io
import math
import os

from .manifest import RunFileError

__all__ = ["METRIC_COLUMNS", "write_metrics", "read_metrics", "check_metrics_text"]

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "num_edges",
                  "train_seconds", "evolve_seconds")


def write_metrics(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write per-epoch metric rows as CSV, atomically: the columns of :data:`METRIC_COLUMNS` a row has first
    (all of them for an empty table), then any others in the order they first appear."""
    import pandas as pd

    from ..utils.atomic import atomic_write

    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS)) if not rows else pd.DataFrame(rows)
    known = [c for c in METRIC_COLUMNS if c in frame.columns]
    frame = frame[known + [c for c in frame.columns if c not in METRIC_COLUMNS]]
    with atomic_write(path, "w") as f:
        frame.to_csv(f, index=False, float_format="%.10g")


def check_metrics_text(text: str, where: str = "metrics.csv") -> None:
    """Raise :class:`RunFileError` naming the first bad row of a metrics table, if any.

    Every row must have as many cells as the header, the last must end with a
    line end (topo always writes one: without it the file was cut mid-row),
    every cell must be a number or empty (NaN), and ``epoch`` must be present,
    never empty and strictly increasing.

    Examples
    --------
    >>> check_metrics_text("epoch,train_loss\\n1,0.5\\n2,0.4\\n")
    >>> check_metrics_text("epoch,train_loss\\n1,0.5\\n2,abc\\n")
    Traceback (most recent call last):
    ...
    topo.runs.manifest.RunFileError: 'metrics.csv' row 2 (line 3), column 'train_loss': 'abc' is not a number
    """
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        raise RunFileError(f"{where!r} is not a CSV table ({err})", where) from None
    numbered = [(line, r) for line, r in enumerate(rows, start=1) if r]
    if not numbered:
        raise RunFileError(f"{where!r} is empty (no header row)", where)
    header_line, header = numbered[0]
    if "epoch" not in header:
        raise RunFileError(f"{where!r} has no 'epoch' column (header: {header})", where)
    if len(set(header)) != len(header):
        raise RunFileError(f"{where!r} repeats a column name in its header {header}", where)
    if len(numbered) == 1 and not text.endswith(("\n", "\r")):
        raise RunFileError(f"{where!r} header (line {header_line}) is cut short (no line end): the file is "
                           "truncated", where)
    i_epoch, last_epoch = header.index("epoch"), -math.inf
    for n, (line, row) in enumerate(numbered[1:], start=1):
        at = f"{where!r} row {n} (line {line})"
        if n == len(numbered) - 1 and not text.endswith(("\n", "\r")):
            raise RunFileError(f"{at} is cut short (no line end): the file is truncated", where)
        if len(row) != len(header):
            raise RunFileError(f"{at} has {len(row)} cells, the header {len(header)}: the file is truncated "
                               "or damaged", where)
        for col, cell in zip(header, row):
            if cell.strip() == "":
                if col == "epoch":
                    raise RunFileError(f"{at} has no epoch", where)
                continue
            try:
                float(cell)
            except ValueError:
                raise RunFileError(f"{at}, column {col!r}: {cell!r} is not a number", where) from None
        epoch = float(row[i_epoch])
        if not math.isfinite(epoch):
            raise RunFileError(f"{at}: epoch {row[i_epoch]!r} is not a finite number", where)
        if not epoch > last_epoch:
            raise RunFileError(f"{at}: epoch {row[i_epoch]} does not follow epoch {last_epoch:g}", where)
        last_epoch = epoch


def read_metrics(path: str | os.PathLike):
    """The metrics table of ``path`` as a ``pandas.DataFrame``, after :func:`check_metrics_text`."""
    import pandas as pd

    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise RunFileError(f"{str(path)!r} is not a text (UTF-8) table: {err}", str(path)) from None
    check_metrics_text(text, str(path))
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as err:  # what the row check let through, pandas parses otherwise
        raise RunFileError(f"{str(path)!r} is not a readable table ({err})", str(path)) from None
    bad = [str(c) for c, t in frame.dtypes.items() if len(frame) and not pd.api.types.is_numeric_dtype(t)]
    if bad:
        raise RunFileError(f"{str(path)!r} has non-numeric column(s) {bad[:5]}", str(path))
    return frame
