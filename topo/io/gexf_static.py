"""Static GEXF 1.3 export of a :class:`~topo.Topology`, streamed chunk by chunk."""

from __future__ import annotations

import os

import numpy as np

from ..errors import ParameterTypeError
from ..graph.topology import Topology
from ._common import check_finite, check_layers, describe, layer_weights, layered_positions, neuron_layers, node_frame
from ._xml import CHUNK, attributes_decl, float_format, gexf_preamble, position_lines, text_sink, viz_prefix

__all__ = ["write_gexf", "NODE_ATTRIBUTES"]

#: Node attributes of a static export (GEXF attribute id = title, type).
NODE_ATTRIBUTES = [("layer", "integer"), ("index", "integer"), ("in_degree", "integer"),
                   ("out_degree", "integer"), ("in_strength", "double"), ("out_strength", "double")]


def write_gexf(topology: Topology, path: str | os.PathLike, *, layers=None, node_attrs: bool = True,
               weights: bool = True, viz: str | None = "gexf") -> None:
    """Write ``topology`` as a static GEXF 1.3 file for Gephi, Gephi Lite or networkx.

    Nodes are neurons, keyed by global neuron id (:meth:`Topology.neuron_id`)
    and labelled ``L<layer>:<index>``; edges are keyed ``<source>-<target>``
    and carry ``weight`` when the layer is weighted. Nodes sit on a layered
    layout (x = neuron layer, y = index spread over a common height), so the
    multipartite structure shows at once before any Gephi layout runs.

    The file is streamed (no DOM in memory) into a temporary file that is
    renamed onto ``path`` only once complete.

    Parameters
    ----------
    topology : Topology
    path : str or os.PathLike
        The ``.gexf`` file to write; its directory must exist.
    layers : int or sequence of int, optional
        Bipartite layers to export (default all); nodes are the neurons of the
        neuron layers they touch.
    node_attrs : bool
        Declare and write the node attributes ``layer``, ``index``,
        ``in_degree``, ``out_degree``, ``in_strength``, ``out_strength``
        (degrees and strengths in the whole topology; strength = sum of ``|w|``).
    weights : bool
        Write each edge's ``weight`` (when its layer is weighted). Gephi's
        importer drops edges whose weight is exactly 0 — e.g. the edges a rule
        just regrew — so export ``weights=False`` to see every edge there
        (Gephi then weighs all edges 1).
    viz : {"gexf", "viz"} or None
        Where the node ``position`` element goes. The two official GEXF 1.3
        schemas disagree: ``gexf.xsd`` only accepts it in the GEXF namespace
        (``"gexf"``, the default), ``gexf.rng`` only in
        ``http://gexf.net/1.3/viz`` (``"viz"``, also what networkx reads).
        Gephi and graphology-gexf read both. ``None`` writes no positions.

    Raises
    ------
    topo.errors.TopologyError
        Bad ``layers`` or ``viz``, non-finite weights, or ``path`` is a directory.
    FileNotFoundError
        The directory of ``path`` does not exist.

    Examples
    --------
    >>> import topo, tempfile, os
    >>> t = topo.erdos_renyi([3, 2], density=1.0, seed=0)
    >>> p = os.path.join(tempfile.mkdtemp(), "t.gexf")
    >>> topo.io.write_gexf(t, p)
    >>> import networkx as nx
    >>> G = nx.read_gexf(p, node_type=int)
    >>> G.number_of_nodes(), G.number_of_edges(), G.nodes[3]["label"], G.nodes[3]["in_degree"]
    (5, 6, 'L1:0', 3)
    """
    if not isinstance(topology, Topology):
        raise ParameterTypeError(f"write_gexf takes a Topology, got {type(topology).__name__}")
    layers = check_layers(len(topology), layers)
    prefix = viz_prefix(viz)
    values = {k: layer_weights(topology[k].weight) if weights else None for k in layers}
    for k, w in values.items():
        if w is not None:
            check_finite(w, f"layer {k}")
    nodes = node_frame(topology, neuron_layers(layers))
    num_edges = sum(topology[k].num_edges for k in layers)
    offs = topology.offsets()
    with text_sink(path) as write:
        write(gexf_preamble('mode="static" defaultedgetype="directed"', viz, describe(topology, layers)))
        if node_attrs:
            write(attributes_decl("node", "static", NODE_ATTRIBUTES))
        write(f'<nodes count="{len(nodes["id"])}">\n')
        for a in range(0, len(nodes["id"]), CHUNK):
            write(_node_chunk({k: v[a:a + CHUNK] for k, v in nodes.items()}, topology.sizes, prefix, node_attrs))
        write(f'</nodes>\n<edges count="{num_edges}">\n')
        for k in layers:
            g, w = topology[k], values[k]
            src, dst = g.src.cpu().numpy() + offs[k], g.dst.cpu().numpy() + offs[k + 1]
            for a in range(0, g.num_edges, CHUNK):
                write(_edge_chunk(src[a:a + CHUNK], dst[a:a + CHUNK], None if w is None else w[a:a + CHUNK]))
        write("</edges>\n</graph>\n</gexf>\n")


def _node_chunk(nodes: dict, sizes, prefix: str | None, node_attrs: bool) -> str:
    x, y = layered_positions(sizes, nodes["layer"], nodes["index"])
    pos = position_lines(prefix, x, y)
    cols = [nodes[k].tolist() for k in ("id", "layer", "index")]
    if not node_attrs:
        return "".join(map('<node id="{}" label="L{}:{}">{}</node>\n'.format, *cols, pos))
    fmt = ('<node id="{}" label="L{}:{}"><attvalues>'
           + "".join(f'<attvalue for="{a}" value="{{{"!r" if t == "double" else ""}}}"/>' for a, t in NODE_ATTRIBUTES)
           + "</attvalues>{}</node>\n")
    vals = [nodes[a].astype(np.float64 if t == "double" else np.int64).tolist() for a, t in NODE_ATTRIBUTES]
    return "".join(map(fmt.format, *cols, *vals, pos))


def _edge_chunk(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None) -> str:
    if w is None:
        return "".join(map('<edge id="{0}-{1}" source="{0}" target="{1}"/>\n'.format, src.tolist(), dst.tolist()))
    wfmt = float_format(w.dtype).replace("{", "{2")  # the third positional field
    fmt = f'<edge id="{{0}}-{{1}}" source="{{0}}" target="{{1}}" weight="{wfmt}"/>\n'
    return "".join(map(fmt.format, src.tolist(), dst.tolist(), w.tolist()))
