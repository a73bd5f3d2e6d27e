"""GraphML export and import through igraph."""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from ..errors import ParameterTypeError, TopoError, TopologyFormatError
from ..graph.convert import from_igraph
from ..graph.topology import Topology
from ._common import check_finite, check_layers, layer_weights, neuron_layers, node_frame
from ._xml import check_out_path

__all__ = ["write_graphml", "read_graphml"]


def write_graphml(topology: Topology, path: str | os.PathLike, *, layers=None) -> None:
    """Write ``topology`` as GraphML (igraph's writer), atomically.

    Vertices carry ``layer``, ``index`` and ``neuron`` (the global neuron id)
    plus ``in_degree``/``out_degree``; edges carry ``weight`` when weighted.
    ``layers`` keeps some bipartite layers, as in :func:`write_gexf`.

    Examples
    --------
    >>> import topo, topo.io, tempfile, os
    >>> t = topo.erdos_renyi([4, 3], density=0.5, seed=0)
    >>> p = os.path.join(tempfile.mkdtemp(), "t.graphml")
    >>> topo.io.write_graphml(t, p)
    >>> topo.io.read_graphml(p) == t
    True
    """
    import igraph as ig

    if not isinstance(topology, Topology):
        raise ParameterTypeError(f"write_graphml takes a Topology, got {type(topology).__name__}")
    layers = check_layers(len(topology), layers)
    path = check_out_path(path)
    nodes = node_frame(topology, neuron_layers(layers))
    # Vertex v of the file is the v-th kept neuron; map global ids onto it.
    pos = np.full(topology.num_neurons, -1, dtype=np.int64)
    pos[nodes["id"]] = np.arange(nodes["id"].size)
    offs = topology.offsets()
    src = np.concatenate([pos[topology[k].src.numpy() + offs[k]] for k in layers])
    dst = np.concatenate([pos[topology[k].dst.numpy() + offs[k + 1]] for k in layers])
    g = ig.Graph(n=int(nodes["id"].size), edges=np.column_stack([src, dst]), directed=True)
    for name in ("layer", "index", "in_degree", "out_degree"):
        g.vs[name] = nodes[name].tolist()
    g.vs["neuron"] = nodes["id"].tolist()
    ws = [layer_weights(topology[k].weight) for k in layers]
    present = [w for w in ws if w is not None]
    if len(present) == len(ws):  # every layer weighted
        for k, w in zip(layers, present):
            check_finite(w, f"layer {k}")
        g.es["weight"] = np.concatenate(present).astype(np.float64).tolist()
    directory = path.parent if str(path.parent) else None
    if directory is not None and not directory.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    # igraph writes by file name: write a temporary file beside the target, then rename it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        g.write_graphml(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_graphml(path: str | os.PathLike) -> Topology:
    """Read GraphML whose vertices carry ``layer`` and ``index`` (as :func:`write_graphml` writes)."""
    import igraph as ig

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    try:
        g = ig.Graph.Read_GraphML(str(path))
    except ig.InternalError as err:
        raise TopologyFormatError(f"{str(path)!r} is not readable GraphML ({err})") from None
    if "layer" in g.vs.attributes() and g.vcount():
        base = min(g.vs["layer"])  # a file of some layers only starts at neuron layer 0 again
        g.vs["layer"] = [lv - base for lv in g.vs["layer"]]
    try:
        return from_igraph(g)
    except TopoError as err:
        raise TopologyFormatError(f"{str(path)!r} does not hold a layered topology: {err}") from None


def _umask() -> int:
    umask = os.umask(0)  # reading the umask portably means setting it
    os.umask(umask)
    return umask
