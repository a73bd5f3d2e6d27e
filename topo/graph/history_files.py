"""Reading and writing a :class:`~topo.graph.history.History` (``.npz``, format ``topo.history``).

One group of arrays per step, so saving after more steps appends to the zip instead of
rewriting it (see :func:`save`); chained digests tell whether a file holds a prefix of a
history. :class:`History`'s ``save``/``load`` call these.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import TopoError, TopologyError, TopologyFormatError
from ..utils.zipcheck import cut_short_length
from .change import LayerChange
from .serialize import (
    check_keys,
    index_dtype,
    read_npz,
    topology_arrays,
    topology_from_arrays,
    topology_keys,
    write_npz,
)

if TYPE_CHECKING:
    from .history import History

__all__ = ["save", "load", "digests", "recover"]


def recover(path) -> dict | None:
    """The arrays of a history whose last append was cut short: the file as last saved whole.

    An append leaves the previous directory and end record in place, so the
    file up to that end record is the history as it was. Only a file that is
    exactly that plus the clean beginning of an append qualifies
    (:func:`topo.utils.zipcheck.cut_short_length`): a damaged or extended
    file is refused, never read as an older history.
    """
    try:
        length = cut_short_length(Path(path).read_bytes())
        return None if length is None else read_npz(path, "topo.history", length=length)
    except (OSError, TopologyFormatError):
        return None  # the file as last saved whole is damaged too: report the file's own error


def digests(hist: History) -> list[str]:
    """Chained digests: of the initial topology and meta, then of each step on top of the previous one.

    A file holds a prefix of this history exactly when its last digest is
    ours at that step; that is what lets :func:`save` append.
    """
    cache = hist.__dict__.setdefault("_digest_cache", [])
    if not cache:
        h = hashlib.blake2b(digest_size=16)
        for name, arr in sorted(topology_arrays(hist.initial, prefix="initial.").items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps(hist.meta, sort_keys=True, default=str).encode())
        cache.append(h.hexdigest())
    for s in hist._steps[len(cache) - 1:]:
        h = hashlib.blake2b(cache[-1].encode(), digest_size=16)
        h.update(np.float64(s.epoch).tobytes())
        if s.step is not None:
            h.update(b"step" + np.int64(s.step).tobytes())
        for k, c in enumerate(s.changes):
            h.update(c.births.long().numpy().tobytes())  # of int64 rows whatever the held dtype (older files)
            h.update(b"|")
            h.update(c.deaths.long().numpy().tobytes())
            w = None if s.weights is None else s.weights[k]
            h.update(b"-" if w is None else
                     str(w.dtype).encode() + w.contiguous().view(torch.uint8).numpy().tobytes())
        cache.append(h.hexdigest())
    return cache


def step_arrays(hist: History, i: int, dt) -> dict:
    s = hist._steps[i]
    p = f"step{i:06d}."
    arrays = {p + "epoch": np.float64(s.epoch), p + "digest": np.array(digests(hist)[i + 1]),
              p + "seconds": np.asarray([c.seconds for c in s.changes], dtype=np.float64)}
    if s.step is not None:
        arrays[p + "step"] = np.int64(s.step)
    for k, c in enumerate(s.changes):
        arrays[f"{p}layer{k}.births"] = c.births.numpy().astype(dt)
        arrays[f"{p}layer{k}.deaths"] = c.deaths.numpy().astype(dt)
        w = None if s.weights is None else s.weights[k]
        if w is not None:
            arrays[f"{p}layer{k}.weights"] = w.numpy()
    return arrays


def save(hist: History, path: str | os.PathLike, append: bool | None = None) -> None:
    """Write ``hist`` to ``path``, appending its new steps when ``path`` holds a prefix (:meth:`History.save`)."""
    path = Path(path)
    done = saved_steps(hist, path) if append is not False else None
    if append and done is None:
        raise TopologyError(f"cannot append to {str(path)!r}: it does not hold a prefix of this history")
    dt = index_dtype(hist.initial.sizes)
    if done is None:
        arrays = topology_arrays(hist.initial, prefix="initial.")
        arrays["layout"] = np.array("steps")
        arrays["digest"] = np.array(digests(hist)[0])
        for i in range(len(hist._steps)):
            arrays.update(step_arrays(hist, i, dt))
        write_npz(path, "topo.history", arrays, hist.meta)
        return
    if done == len(hist._steps):
        return
    with open(path, "r+b") as f, zipfile.ZipFile(f, "a", allowZip64=True) as z:
        f.seek(0, os.SEEK_END)
        z.start_dir = f.tell()  # write after the old directory, which stays valid until the new one is down
        for i in range(done, len(hist._steps)):
            for name, arr in step_arrays(hist, i, dt).items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
                z.writestr(zipfile.ZipInfo(name + ".npy", (1980, 1, 1, 0, 0, 0)), buf.getvalue())
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def saved_steps(hist: History, path: Path) -> int | None:
    """How many of our steps ``path`` already holds, or ``None`` when it is not a prefix of this history."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if "layout" not in names or "digest" not in names:
                return None
            n = 0
            while f"step{n:06d}.digest" in names:
                n += 1
            last = str(z[f"step{n - 1:06d}.digest"] if n else z["digest"])
    except Exception:  # noqa: BLE001 - unreadable or foreign: rewrite it whole
        return None
    mine = digests(hist)
    return n if n < len(mine) and mine[n] == last else None


def load(cls: type[History], path: str | os.PathLike) -> History:
    """Read a history written by :func:`save` (either layout) as a ``cls`` (:meth:`History.load`)."""
    try:
        data = read_npz(path, "topo.history")
    except TopologyFormatError:
        recovered = recover(path)
        if recovered is None:
            raise
        data = recovered
    if "layout" not in data:
        return load_v1(cls, data, path)
    initial = topology_from_arrays(data, path, prefix="initial.")
    n = 0
    while f"step{n:06d}.epoch" in data:
        n += 1
    L = len(initial)
    check_keys(data, topology_keys(data, "initial.") | {"layout", "digest"} | {
        f"step{i:06d}.{a}" for i in range(n) for a in ("epoch", "digest", "seconds", "step")} | {
        f"step{i:06d}.layer{k}.{a}" for i in range(n) for k in range(L) for a in ("births", "deaths", "weights")},
        path)
    h = cls(initial, data.get("meta"))
    try:
        for i in range(n):
            p = f"step{i:06d}."
            seconds = data[p + "seconds"]
            if seconds.shape != (L,):
                raise TopologyError(f"{p}seconds has shape {seconds.shape} for {L} layers")
            changes, weights = [], []
            for k in range(L):
                ev = {name: torch.from_numpy(data[f"{p}layer{k}.{name}"].astype(np.int64))
                      for name in ("births", "deaths")}
                changes.append(LayerChange(ev["births"], ev["deaths"], float(seconds[k])))
                w = data.get(f"{p}layer{k}.weights")
                weights.append(None if w is None else torch.from_numpy(w.copy()))
            has = any(w is not None for w in weights)
            step = data.get(p + "step")
            if step is not None and (step.shape != () or step.dtype.kind not in "iu" or int(step) < 0):
                raise TopologyError(f"{p}step must be a non-negative integer scalar, got {step!r}")
            h.record(float(data[p + "epoch"]), changes, weights if has else None,
                     None if step is None else int(step))
    except TopoError as err:
        raise TopologyFormatError(f"{str(path)!r} holds an inconsistent history: {err}") from None
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise TopologyFormatError(f"{str(path)!r} is missing or has malformed history data ({err})") from None
    return h


def load_v1(cls: type[History], data: dict, path) -> History:
    """The first layout (one array per layer over all steps, rewritten on every save)."""
    initial = topology_from_arrays(data, path, prefix="initial.")
    check_keys(data, topology_keys(data, "initial.") | {"epochs", "seconds", "has_weights", "steps"} | {
        f"layer{k}.{a}" for k in range(len(initial))
        for a in ("births", "births_ptr", "deaths", "deaths_ptr", "weights", "weights_ptr")}, path)
    h = cls(initial, data.get("meta"))
    try:
        epochs, seconds, has_w = data["epochs"], data["seconds"], data["has_weights"]
        n = len(epochs)
        steps = data.get("steps", np.full(n, -1, dtype=np.int64))
        if epochs.ndim != 1 or seconds.shape != (n, h.num_layers) or has_w.shape != (n,) or \
                steps.shape != (n,) or steps.dtype.kind not in "iu" or bool((steps < -1).any()):
            raise TopologyError(f"epochs/seconds/has_weights have shapes {epochs.shape}, {seconds.shape}, "
                                f"{has_w.shape} for {n} steps and {h.num_layers} layers")
        for k in range(h.num_layers):
            for name, rows in (("births", 2), ("deaths", 2), ("weights", None)):
                arr, ptr = data[f"layer{k}.{name}"], data[f"layer{k}.{name}_ptr"]
                size = arr.shape[1] if rows else arr.size
                if (rows and (arr.ndim != 2 or arr.shape[0] != rows)) or ptr.shape != (n + 1,) \
                        or ptr[0] != 0 or ptr[-1] != size or bool((np.diff(ptr) < 0).any()):
                    raise TopologyError(f"layer{k}.{name} and its pointer array disagree")
        for i, epoch in enumerate(epochs):
            changes, weights = [], []
            for k in range(h.num_layers):
                ev = {}
                for name in ("births", "deaths"):
                    ptr = data[f"layer{k}.{name}_ptr"]
                    ev[name] = torch.from_numpy(data[f"layer{k}.{name}"][:, ptr[i]:ptr[i + 1]].astype(np.int64))
                changes.append(LayerChange(ev["births"], ev["deaths"], float(seconds[i, k])))
                wp = data[f"layer{k}.weights_ptr"]
                w = data[f"layer{k}.weights"][wp[i]:wp[i + 1]]
                weights.append(torch.from_numpy(w.copy()) if has_w[i] and w.size else None)
            h.record(float(epoch), changes, weights if has_w[i] else None,
                     None if steps[i] < 0 else int(steps[i]))
    except TopoError as err:
        raise TopologyFormatError(f"{str(path)!r} holds an inconsistent history: {err}") from None
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise TopologyFormatError(f"{str(path)!r} is missing or has malformed history data ({err})") from None
    return h
