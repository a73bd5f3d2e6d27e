"""What every exporter shares: layer selection, per-neuron attributes, the layered layout."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ..errors import ParameterError, ParameterTypeError, TopologyError
from ..graph.topology import Topology

__all__ = ["check_layers", "neuron_layers", "node_frame", "layered_positions", "check_finite",
           "layer_weights", "describe"]

#: Layout of ``viz:position``: neuron layer k at x = k * X_STEP, each layer spread over HEIGHT.
X_STEP = 400.0
HEIGHT = 1000.0


def check_layers(num_layers: int, layers) -> list[int]:
    """``layers`` (None = all, an int, or ints) as a sorted list of distinct bipartite layer indices."""
    if layers is None:
        return list(range(num_layers))
    if isinstance(layers, Integral) and not isinstance(layers, bool):
        layers = [layers]
    try:
        items = list(layers)
    except TypeError:
        raise ParameterTypeError(f"layers must be None, an int or a sequence of ints, got {layers!r}") from None
    out = set()
    for k in items:
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise ParameterTypeError(f"layers must hold ints, got {k!r}")
        if not 0 <= int(k) < num_layers:
            raise ParameterError(f"layer {k} out of range: this topology has bipartite layers 0..{num_layers - 1}")
        out.add(int(k))
    if not out:
        raise ParameterError("layers is empty: name at least one bipartite layer")
    return sorted(out)


def neuron_layers(layers: list[int]) -> list[int]:
    """Neuron layers touched by the bipartite ``layers`` (layer k joins neuron layers k and k+1)."""
    return sorted({n for k in layers for n in (k, k + 1)})


def node_frame(t: Topology, nlayers: list[int]) -> dict[str, np.ndarray]:
    """Per neuron of ``nlayers``: global id, layer, index, degrees and strengths in the whole topology.

    Degrees and strengths describe each neuron in the full network, also when
    an export keeps only some layers' edges. Strength is the sum of ``|w|``
    (equal to the degree for unweighted layers).
    """
    offs, sizes, L = t.offsets(), t.sizes, len(t)
    cols: dict[str, list] = {k: [] for k in ("id", "layer", "index", "in_degree", "out_degree",
                                               "in_strength", "out_strength")}
    for n in nlayers:
        size = sizes[n]
        zeros_i, zeros_f = np.zeros(size, np.int64), np.zeros(size, np.float64)
        cols["id"].append(offs[n] + np.arange(size, dtype=np.int64))
        cols["layer"].append(np.full(size, n, np.int64))
        cols["index"].append(np.arange(size, dtype=np.int64))
        g_in, g_out = (t[n - 1] if n > 0 else None), (t[n] if n < L else None)
        cols["in_degree"].append(g_in.in_degree().numpy() if g_in is not None else zeros_i)
        cols["out_degree"].append(g_out.out_degree().numpy() if g_out is not None else zeros_i)
        cols["in_strength"].append(g_in.strength("in").numpy() if g_in is not None else zeros_f)
        cols["out_strength"].append(g_out.strength("out").numpy() if g_out is not None else zeros_f)
    return {k: np.concatenate(v) for k, v in cols.items()}


def layered_positions(sizes, layer: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x by neuron layer, y spreading each layer's neurons evenly over the same height (index 0 on top)."""
    n = np.asarray(sizes, dtype=np.float64)[layer]
    step = np.where(n > 1, HEIGHT / np.maximum(n - 1, 1), 0.0)
    y = np.where(n > 1, HEIGHT / 2 - index * step, 0.0)
    return layer * X_STEP, y


def check_finite(w: np.ndarray, where: str) -> None:
    """Refuse NaN/inf weights: ``xs:double`` spells them ``NaN``/``INF`` but viewers choke on them."""
    bad = ~np.isfinite(w)
    if bad.any():
        raise TopologyError(f"{where} has {int(bad.sum())} non-finite weight(s) (NaN or inf); "
                            "GEXF viewers cannot read them — fix or drop them before exporting")


def layer_weights(w) -> np.ndarray | None:
    """A weight tensor as a float32/float64 numpy array (bfloat16/float16 widen to float32)."""
    if w is None:
        return None
    import torch

    w = w.detach().cpu()
    if w.dtype not in (torch.float32, torch.float64):
        w = w.to(torch.float32)
    return w.numpy()


def describe(t: Topology, layers: list[int]) -> str:
    sizes = "-".join(map(str, t.sizes))
    which = "all layers" if layers == list(range(len(t))) else "layers " + ",".join(map(str, layers))
    return f"sparse layered network {sizes} ({which}), node ids = global neuron ids, labels L<layer>:<index>"
