"""Edge-list CSV export (pandas)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import ParameterTypeError
from ..graph.topology import Topology
from ..utils.atomic import atomic_write
from ._common import check_layers, layer_weights
from ._xml import check_out_path

__all__ = ["write_edgelist_csv"]


def write_edgelist_csv(topology: Topology, path: str | os.PathLike, *, layers=None) -> None:
    """Write one row per edge: ``layer, src, dst, source_id, target_id, weight``, atomically.

    ``src``/``dst`` index neurons within their layers, ``source_id``/``target_id``
    are global neuron ids (the GEXF/GraphML node ids); ``weight`` is empty
    for unweighted layers. Read it back with
    ``topo.from_edges_frame(pandas.read_csv(path), sizes)``.

    Examples
    --------
    >>> import topo, topo.io, tempfile, os, pandas as pd
    >>> t = topo.erdos_renyi([3, 2], density=1.0, seed=0)
    >>> p = os.path.join(tempfile.mkdtemp(), "edges.csv")
    >>> topo.io.write_edgelist_csv(t, p)
    >>> list(pd.read_csv(p).columns)
    ['layer', 'src', 'dst', 'source_id', 'target_id', 'weight']
    """
    import pandas as pd

    if not isinstance(topology, Topology):
        raise ParameterTypeError(f"write_edgelist_csv takes a Topology, got {type(topology).__name__}")
    layers = check_layers(len(topology), layers)
    path = check_out_path(path)
    offs = topology.offsets()
    parts = []
    for k in layers:
        g = topology[k]
        src, dst = g.src.cpu().numpy(), g.dst.cpu().numpy()
        w = layer_weights(g.weight)
        parts.append(pd.DataFrame({
            "layer": np.full(g.num_edges, k, dtype=np.int64), "src": src, "dst": dst,
            "source_id": src + offs[k], "target_id": dst + offs[k + 1],
            "weight": w if w is not None else np.full(g.num_edges, np.nan, dtype=np.float32)}))
    frame = pd.concat(parts, ignore_index=True)
    with atomic_write(path, "w") as f:
        frame.to_csv(f, index=False)
