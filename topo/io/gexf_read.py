"""Read a static GEXF file back into a :class:`~topo.Topology`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import TopoError, TopologyFormatError
from ..graph.convert import _from_labelled
from ..graph.topology import Topology

__all__ = ["read_gexf"]

_LABEL = re.compile(r"^L(\d+):(\d+)$")


def read_gexf(path: str | os.PathLike) -> Topology:
    """Read a static GEXF file (1.1–1.3) written by :func:`write_gexf`, Gephi or networkx.

    Each node needs its neuron layer and index, from the node attributes
    titled ``layer`` and ``index`` or else a label ``L<layer>:<index>``; edges
    must join consecutive layers. Edge weights come from the ``weight`` XML
    attribute (or a static attribute titled ``weight``), read as float32. A
    file of some layers only (``write_gexf(..., layers=[1, 2])``) comes back
    with its first neuron layer renumbered 0.

    The file is parsed incrementally (lxml ``iterparse``), with external
    entities and network access disabled.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    topo.errors.TopologyFormatError
        Not well-formed XML, a dynamic graph, a node without layer/index, an
        edge naming an unknown node, or edges that skip layers.

    Examples
    --------
    >>> import topo, topo.io, tempfile, os
    >>> t = topo.erdos_renyi([5, 4, 3], density=0.5, seed=2)
    >>> p = os.path.join(tempfile.mkdtemp(), "t.gexf")
    >>> topo.io.write_gexf(t, p)
    >>> topo.io.read_gexf(p) == t
    True
    """
    from lxml import etree

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    titles: dict[str, dict[str, str]] = {"node": {}, "edge": {}}
    cls = "node"
    nodes: dict[str, tuple[int, int]] = {}
    edges: list[tuple[str, str, float | None]] = []
    try:
        for event, el in etree.iterparse(str(path), events=("start", "end"), resolve_entities=False,
                                         no_network=True, huge_tree=True, remove_comments=True, remove_pis=True):
            tag = etree.QName(el).localname
            if event == "start":
                if tag == "graph" and el.get("mode") == "dynamic":
                    raise TopologyFormatError(
                        f"{str(path)!r} is a dynamic GEXF graph; read_gexf reads static files "
                        "(export one epoch with write_gexf(history.topology(epoch), ...))")
                if tag == "attributes":
                    cls = el.get("class", "node")
                continue
            if tag == "attribute":
                titles.setdefault(cls, {})[el.get("id")] = el.get("title") or el.get("id")
            elif tag == "node":
                nodes[el.get("id")] = _node_position(el, titles["node"], path)
                _drop(el)
            elif tag == "edge":
                edges.append((el.get("source"), el.get("target"), _edge_weight(el, titles["edge"], path)))
                _drop(el)
    except etree.XMLSyntaxError as err:
        raise TopologyFormatError(f"{str(path)!r} is not well-formed XML ({err})") from None
    if not nodes:
        raise TopologyFormatError(f"{str(path)!r} has no nodes")
    base = min(lv for lv, _ in nodes.values())
    if base:
        nodes = {k: (lv - base, iv) for k, (lv, iv) in nodes.items()}
    unknown = next((u for e in edges for u in e[:2] if u not in nodes), None)
    if unknown is not None:
        raise TopologyFormatError(f"{str(path)!r}: an edge names node {unknown!r}, which is not declared")
    try:
        return _from_labelled(nodes, edges)
    except TopoError as err:
        raise TopologyFormatError(f"{str(path)!r} does not hold a layered topology: {err}") from None


def _attvalues(el, titles: dict) -> dict[str, str]:
    return {titles.get(a.get("for") or a.get("id"), a.get("for")): a.get("value")
            for a in el.iter("{*}attvalue", "attvalue")}


def _node_position(el, titles: dict, path) -> tuple[int, int]:
    vals = _attvalues(el, titles)
    try:
        if "layer" in vals and "index" in vals:
            return int(vals["layer"]), int(vals["index"])
    except (TypeError, ValueError):
        pass
    m = _LABEL.match(el.get("label") or "")
    if m:
        return int(m.group(1)), int(m.group(2))
    raise TopologyFormatError(f"{str(path)!r}: node {el.get('id')!r} has neither integer 'layer'/'index' "
                              f"attributes nor a label 'L<layer>:<index>'")


def _edge_weight(el, titles: dict, path) -> float | None:
    w = el.get("weight")
    if w is None:
        w = _attvalues(el, titles).get("weight")
    if w is None:
        return None
    try:
        return float(w)
    except ValueError:
        raise TopologyFormatError(f"{str(path)!r}: edge {el.get('source')}->{el.get('target')} has weight "
                                  f"{w!r}, not a number") from None


def _drop(el) -> None:
    # Free parsed elements as we go so memory stays flat on million-edge files.
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]
