"""The exporter registry: the formats ``topo export --format`` writes, format name → writer.

==================  =========  ==============================================================
format              takes      writer
==================  =========  ==============================================================
``gexf``            topology   :func:`topo.io.write_gexf` (static GEXF 1.3, Gephi)
``gexf-dynamic``    history    :func:`topo.io.write_gexf_dynamic` (the evolution on Gephi's timeline)
``graphml``         topology   :func:`topo.io.write_graphml`
``edgelist-csv``    topology   :func:`topo.io.write_edgelist_csv`
==================  =========  ==============================================================

A writer is called as ``writer(obj, path, layers=..., weights=..., viz=...)`` with
``obj`` a :class:`~topo.Topology` (``takes="topology"``) or a :class:`~topo.History`
(``takes="history"``); it receives the options its signature names (all of them if
it takes ``**options``) and must write ``path`` atomically
(:func:`topo.utils.atomic_write`). Register one with :func:`register_exporter`:

>>> import os, tempfile, topo
>>> from topo.io.exporters import EXPORTERS, register_exporter, export
>>> def degrees_txt(topology, path, layers=None):
...     with topo.utils.atomic_write(path, "w") as f:
...         f.write(" ".join(str(int(d)) for d in topology[0].out_degree()))
>>> _ = register_exporter("degrees-txt", degrees_txt, help="out-degrees of layer 0's inputs")
>>> path = os.path.join(tempfile.mkdtemp(), "d.txt")
>>> export(topo.from_edges([3, 2], [([0, 0, 2], [0, 1, 1])]), path, "degrees-txt")
>>> open(path).read()
'2 0 1'
>>> _ = EXPORTERS.unregister("degrees-txt")
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import ParameterError, ParameterTypeError
from ..utils.registry import Registry

__all__ = ["EXPORTERS", "Exporter", "register_exporter", "export"]

_TAKES = ("topology", "history", "model")


class Exporter(NamedTuple):
    """One entry of :data:`EXPORTERS`: the writer and what it takes (``"topology"``, ``"history"`` or
    ``"model"``, a trained torch module such as :func:`topo.load_model` returns)."""

    write: Callable[..., Any]
    takes: str = "topology"


#: format name → :class:`Exporter`.
EXPORTERS: Registry[Exporter] = Registry("export format")


def register_exporter(name: str, write: Callable[..., Any], *, takes: str = "topology", help: str = "",
                      replace: bool = False) -> Exporter:
    """Register ``write(obj, path, **options)`` as export format ``name`` (``topo export --format name``)."""
    if not callable(write):
        raise ParameterTypeError(f"exporter {name!r}: the writer must be callable, got {write!r}")
    if takes not in _TAKES:
        raise ParameterError(f"exporter {name!r}: takes must be one of {_TAKES}, got {takes!r}")
    return EXPORTERS.register(name, Exporter(write, takes), help=help, replace=replace)


def export(obj, path: str | os.PathLike, format: str, **options: Any) -> None:
    """Write ``obj`` (a Topology, History or model, as the format takes) to ``path`` in ``format``."""
    from ..graph import History, Topology

    entry = EXPORTERS.get(format)
    want: type
    if entry.takes == "model":
        from torch import nn

        want = nn.Module
    else:
        want = History if entry.takes == "history" else Topology
    if not isinstance(obj, want):
        raise ParameterTypeError(f"format {format!r} exports a {want.__name__}, got {type(obj).__name__}")
    try:
        params = inspect.signature(entry.write).parameters.values()
    except (TypeError, ValueError):
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params):
        named = {p.name for p in params}
        options = {k: v for k, v in options.items() if k in named}
    entry.write(obj, path, **options)


def _builtins() -> None:
    from .edgelist import write_edgelist_csv
    from .gexf_dynamic import write_gexf_dynamic
    from .gexf_static import write_gexf
    from .graphml import write_graphml

    register_exporter("gexf", write_gexf, help="static GEXF 1.3 for Gephi (one topology)")
    register_exporter("gexf-dynamic", write_gexf_dynamic, takes="history",
                      help="dynamic GEXF: the whole evolution on Gephi's timeline (needs a history)")
    register_exporter("graphml", write_graphml, help="GraphML (igraph's writer)")
    register_exporter("edgelist-csv", write_edgelist_csv, help="one CSV row per edge: layer, src, dst, ids, weight")
    register_exporter("onnx", _write_onnx, takes="model",
                      help="the run's model made dense, for ONNX runtimes (needs the [onnx] extra)")


def _write_onnx(model, path) -> None:
    from ..nn.export_onnx import export_onnx  # onnx is an optional extra: imported when used

    export_onnx(model, path)


_builtins()
