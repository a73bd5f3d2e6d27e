"""Training checkpoints: pickle-free ``checkpoint.pt`` files and the RNG states they carry.

A checkpoint is a ``torch.save`` of a dict holding only tensors and plain
Python values (dicts, lists, tuples, numbers, strings), so it is read back with
``torch.load(weights_only=True)``, which executes no code from the file. It is
written with :func:`topo.utils.atomic_write`: a crash while saving leaves the
previous checkpoint in place.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.atomic import atomic_write
from ..errors import TopologyFormatError
from ..graph import LayerGraph, Topology

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint",
           "rng_state", "set_rng_state", "isolated_rng", "topology_state", "topology_from_state"]

CHECKPOINT_FORMAT = "topo.checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = ("epoch", "model", "optimizer", "rng", "metrics")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values only) to ``path`` atomically, tagged with format and version."""
    payload = {"__format__": CHECKPOINT_FORMAT, "__version__": CHECKPOINT_VERSION, **state}
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    topo.errors.TopologyFormatError
        If the file is truncated, corrupt, holds anything but tensors and plain
        values, is not a topo checkpoint, or is of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {str(path)!r}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            KeyError, AttributeError, TypeError, IndexError) as err:
        msg = str(err).splitlines()[0] if str(err) else ""
        raise TopologyFormatError(
            f"{str(path)!r} is not a readable topo checkpoint (truncated or corrupt?): "
            f"{type(err).__name__}: {msg[:200]}") from None
    if not isinstance(data, dict) or data.get("__format__") != CHECKPOINT_FORMAT:
        found = data.get("__format__") if isinstance(data, dict) else type(data).__name__
        raise TopologyFormatError(f"{str(path)!r} holds {found!r}, expected a {CHECKPOINT_FORMAT!r} file")
    if data.get("__version__") != CHECKPOINT_VERSION:
        raise TopologyFormatError(f"{str(path)!r} has checkpoint version {data.get('__version__')!r}; "
                                  f"this topo reads version {CHECKPOINT_VERSION}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise TopologyFormatError(f"{str(path)!r} is missing checkpoint entries {missing}")
    return data


# -- random number generator states ---------------------------------------------------
def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every global RNG state training touches (torch CPU/CUDA, numpy, python), plus ``generator``'s."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore the states saved by :func:`rng_state` (and ``generator``'s, if both have one)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


@contextmanager
def isolated_rng(device: torch.device | None = None):
    """Run a block that seeds and draws from the global RNGs, then give the caller back its states.

    torch's CPU state (and ``device``'s CUDA state) via :func:`torch.random.fork_rng`,
    numpy's and python's global states by hand: what training does inside (dropout
    seeded by the trainer, a checkpoint's states restored on resume) does not leak out.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [] if device is None or device.type != "cuda" else \
        [device.index if device.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


# -- topology as plain tensors ----------------------------------------------------------
def topology_state(t: Topology) -> dict[str, Any]:
    """The structure of ``t`` (no weights) as plain lists of tensors."""
    return {"sizes": list(t.sizes), "src": [g.src.cpu() for g in t.layers], "dst": [g.dst.cpu() for g in t.layers]}


def topology_from_state(state: dict[str, Any], path="checkpoint") -> Topology:
    """Inverse of :func:`topology_state`; inconsistent data raises :class:`TopologyFormatError`."""
    try:
        sizes = state["sizes"]
        return Topology([LayerGraph(sizes[k], sizes[k + 1], state["src"][k], state["dst"][k])
                         for k in range(len(sizes) - 1)])
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise TopologyFormatError(f"{str(path)!r} holds an invalid topology: {err}") from None
