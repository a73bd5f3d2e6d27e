"""Training checkpoints: what ``checkpoint.pt`` carries (RNG states, topology as plain tensors).

The file format itself (pickle-free ``torch.save`` of tensors and plain values,
read with ``weights_only=True``) lives with the run directory, in
:mod:`topo.runs.checkpoint`; it is re-exported here.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ..errors import TopologyFormatError
from ..graph import LayerGraph, Topology
from ..runs.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_checkpoint

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint",
           "rng_state", "set_rng_state", "topology_state", "topology_from_state"]


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
