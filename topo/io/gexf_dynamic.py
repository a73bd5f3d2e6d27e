"""Dynamic GEXF 1.3 export of a :class:`~topo.History`: the evolution on Gephi's timeline.

Time is the epoch as a double (``timeformat="double"``; Gephi's importer does
not know ``"integer"``). Every edge that was ever alive is one ``<edge>``
element keyed ``<source>-<target>`` with one ``<spell start end>`` per life
(a pruned and later regrown edge keeps its id and gets a second spell), the
dynamic edge attribute ``weight`` holds the recorded weight per epoch, and
nodes carry their in/out degree (and strength) per epoch.
"""

from __future__ import annotations

import math
import os
from itertools import islice
from numbers import Real

import numpy as np

from ..errors import ParameterError, ParameterTypeError, TopologyError
from ..graph.history import History
from ._common import check_finite, check_layers, describe, layer_weights, layered_positions, neuron_layers, node_frame
from ._xml import CHUNK, attributes_decl, float_format, gexf_preamble, position_lines, text_sink, viz_prefix

__all__ = ["write_gexf_dynamic"]


def write_gexf_dynamic(history: History, path: str | os.PathLike, *, layers=None, node_attrs: bool = True,
                       weights: bool = True, close_at: float | str | None = "auto",
                       viz: str | None = "gexf") -> None:
    """Write ``history`` as a dynamic GEXF 1.3 file whose timeline replays the evolution.

    An edge alive from epoch ``a`` until it is pruned at epoch ``b`` gets the
    spell ``start=a end=b`` — exactly :meth:`History.edge_intervals` (lives
    that touch, a death and rebirth at the same epoch, are merged into one).
    The dynamic ``weight`` attribute holds the weight recorded at epoch ``e``
    from ``e`` to the next epoch (runs of equal values merged); nodes carry
    ``in_degree``/``out_degree`` per epoch (and ``in_strength``/``out_strength``
    at epochs with recorded weights) plus ``layer`` and ``index`` over the
    whole timeline. Gephi reads bounds as closed, so at the exact instant of
    an epoch both the pruned and the regrown edges show: place the timeline
    window between epochs to see one epoch's network.

    The text is streamed and written atomically, like :func:`write_gexf`; in
    memory are only the edge lives and weight runs of the exported layers
    (about the size of the History's own weight record) and one chunk of text.

    Parameters
    ----------
    history : History
    path : str or os.PathLike
    layers : int or sequence of int, optional
        Bipartite layers to export (default all).
    node_attrs : bool
        Write the node attributes (static ``layer``/``index`` as one
        timeline-long value, dynamic degrees and strengths).
    weights : bool
        Write the dynamic edge ``weight`` (the bulk of a large file).
    close_at : "auto", float or None
        Where lives still open at the last epoch end. ``"auto"`` (default):
        one epoch step after the last epoch (last epoch + 1 for 0, 1, 2, ...).
        A float after the last epoch: there. ``None``: omit ``end`` — open
        until +∞, as the GEXF spec and Gephi allow, but networkx's
        ``read_gexf`` cannot read such a file.
    viz : {"gexf", "viz"} or None
        Placement of the node ``position`` element, see :func:`write_gexf`.

    Examples
    --------
    >>> import topo, topo.io, tempfile, os
    >>> h = topo.History(topo.from_edges([2, 2], [([0, 1], [0, 1])]))
    >>> h.record(1, [topo.LayerChange(births=[[1], [0]], deaths=[[0], [0]])])
    >>> p = os.path.join(tempfile.mkdtemp(), "evolution.gexf")
    >>> topo.io.write_gexf_dynamic(h, p)
    >>> import networkx as nx
    >>> G = nx.read_gexf(p, node_type=int)
    >>> sorted((u, v, d["spells"]) for u, v, d in G.edges(data=True))
    [(0, 2, [(0.0, 1.0)]), (1, 2, [(1.0, 2.0)]), (1, 3, [(0.0, 2.0)])]
    """
    if not isinstance(history, History):
        raise ParameterTypeError(f"write_gexf_dynamic takes a History, got {type(history).__name__}")
    layers = check_layers(history.num_layers, layers)
    prefix = viz_prefix(viz)
    epochs = np.asarray(history.epochs, dtype=np.float64)
    end = _close_time(epochs, close_at)
    t0 = history.initial
    offs, nls = t0.offsets(), neuron_layers(layers)
    # Fragments ' start="t"' / ' end="t"' per epoch index; index len(epochs) is the closing time.
    tstr = [repr(float(e)) for e in epochs]
    sfr = np.array([f' start="{s}"' for s in tstr], dtype=object)
    efr = np.array([f' end="{s}"' for s in tstr] + ([f' end="{end!r}"'] if end is not None else [""]),
                   dtype=object)

    # Degrees describe neurons in the whole network, so their layers' lives are needed too.
    needed = set(layers) | ({k for n in nls for k in (n - 1, n) if 0 <= k < len(t0)} if node_attrs else set())
    lives = {k: _lives(history.edge_intervals(k), t0[k].n_in, epochs) for k in sorted(needed)}
    edge_runs, node_cols, weighted_epochs = _replay(history, epochs, layers, nls, lives, weights, node_attrs)

    node_decl = [("layer", "integer"), ("index", "integer"), ("in_degree", "integer"), ("out_degree", "integer")]
    if weighted_epochs.size:
        node_decl += [("in_strength", "double"), ("out_strength", "double")]
    has_w = any(r[0].size for r in edge_runs.values())
    nodes = node_frame(t0, nls)
    num_edges = sum(lives[k][0].size for k in layers)
    with text_sink(path) as write:
        write(gexf_preamble('mode="dynamic" timeformat="double" timerepresentation="interval" '
                            'defaultedgetype="directed"', viz, describe(t0, layers) + ", time = epoch"))
        if node_attrs:
            write(attributes_decl("node", "dynamic", node_decl))
        if has_w:
            write(attributes_decl("edge", "dynamic", [("weight", "double")]))
        n = len(nodes["id"])
        write(f'<nodes count="{n}">\n')
        for a in range(0, n, CHUNK):
            write(_node_chunk(nodes, a, min(n, a + CHUNK), t0.sizes, prefix, node_cols, weighted_epochs,
                              sfr, efr))
        write(f'</nodes>\n<edges count="{num_edges}">\n')
        for k in layers:
            n_in = t0[k].n_in
            keys, ptr, s, e = lives[k]
            for a in range(0, keys.size, CHUNK):
                b = min(keys.size, a + CHUNK)
                write(_edge_chunk(keys[a:b] % n_in + offs[k], keys[a:b] // n_in + offs[k + 1],
                                  ptr[a:b + 1], s, e, edge_runs[k], a, b, sfr, efr))
        write("</edges>\n</graph>\n</gexf>\n")


def _close_time(epochs: np.ndarray, close_at) -> float | None:
    if close_at is None:
        return None
    if isinstance(close_at, str):
        if close_at != "auto":
            raise ParameterError(f"close_at must be 'auto', a number or None, got {close_at!r}")
        step = epochs[-1] - epochs[-2] if epochs.size > 1 else 1.0
        return float(epochs[-1] + step)
    if isinstance(close_at, bool) or not isinstance(close_at, Real) or not math.isfinite(close_at) \
            or close_at <= epochs[-1]:
        raise ParameterError(f"close_at must be a finite time after the last epoch {epochs[-1]:g}, got {close_at!r}")
    return float(close_at)


def _lives(iv: dict, n_in: int, epochs: np.ndarray):
    """Edge lives as epoch indices: unique keys, per-key pointer into spells, spell start/end indices."""
    key = iv["dst"].astype(np.int64) * n_in + iv["src"].astype(np.int64)
    if key.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.zeros(1, dtype=np.int64), empty, empty
    s = np.searchsorted(epochs, iv["start"])
    e = np.where(np.isinf(iv["end"]), epochs.size, np.searchsorted(epochs, np.minimum(iv["end"], epochs[-1])))
    # Rows come sorted by (key, start); a life starting where the previous one ended continues it.
    new = np.ones(key.size, dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (s[1:] != e[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, key.size - 1).astype(np.int64)
    key, s, e = key[first], s[first], e[last]
    fresh = np.ones(key.size, dtype=bool)
    fresh[1:] = key[1:] != key[:-1]
    return key[fresh], np.append(np.flatnonzero(fresh), key.size), s, e


def _runs(item: np.ndarray, eidx: np.ndarray, value: np.ndarray):
    """Merge an item's consecutive epochs with equal values: (item, value, first epoch, last epoch + 1)."""
    if item.size == 0:
        return item, value, eidx, eidx
    new = np.ones(item.size, dtype=bool)
    new[1:] = (item[1:] != item[:-1]) | (eidx[1:] != eidx[:-1] + 1) | (value[1:] != value[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, item.size - 1)
    return item[first], value[first], eidx[first], eidx[last] + 1


def _replay(history: History, epochs, layers, nls, lives, weights: bool, node_attrs: bool):
    """One pass over the epochs: weight runs per layer, node degree/strength matrices (epochs x nodes).

    Works from the edge lives and :meth:`History.weights` alone: rebuilding every
    epoch's topology would cost most of the export.
    """
    t0 = history.initial
    sizes, L, n_ep = t0.sizes, len(t0), epochs.size
    rows = {}
    for k, (keys, ptr, s, e) in lives.items():
        edge = np.repeat(np.arange(keys.size), np.diff(ptr))
        rows[k] = (edge, keys[edge] % t0[k].n_in, keys[edge] // t0[k].n_in, s, e)
    base = dict(zip(nls, np.cumsum([0] + [sizes[n] for n in nls]).tolist()))
    n_nodes = sum(sizes[n] for n in nls)
    mats = {}
    if node_attrs:
        mats = {c: np.zeros((n_ep, n_nodes), dtype=np.int64 if c.endswith("degree") else np.float64)
                for c in ("in_degree", "out_degree", "in_strength", "out_strength")}
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {k: [] for k in layers}
    weighted = []
    for j, epoch in enumerate(epochs.tolist()):
        recorded = history.weights(epoch)
        ws = [None] * L if recorded is None else [layer_weights(w) for w in recorded]
        # A life covers epoch j when start <= j < end; at most one per edge, so rows stay in key order,
        # the order of the topology's edges and of the recorded weights.
        alive = {k: np.flatnonzero((r[3] <= j) & (r[4] > j)) for k, r in rows.items()}
        for k, a in alive.items():
            if ws[k] is not None and ws[k].size != a.size:
                raise TopologyError(f"layer {k} at epoch {epoch:g}: {ws[k].size} weights for {a.size} live edges")
        full = all(w is not None for w in ws)
        if node_attrs:
            weighted += [j] if full else []
            for n in nls:
                at = slice(base[n], base[n] + sizes[n])
                for k, end, deg, strength in ((n - 1, 2, "in_degree", "in_strength"),
                                              (n, 1, "out_degree", "out_strength")):
                    if not 0 <= k < L:
                        continue
                    ends = rows[k][end][alive[k]]
                    mats[deg][j, at] = np.bincount(ends, minlength=sizes[n])
                    if full:
                        mats[strength][j, at] = np.bincount(ends, weights=np.abs(ws[k]).astype(np.float64),
                                                            minlength=sizes[n])
        if weights:
            for k in layers:
                if ws[k] is not None:
                    check_finite(ws[k], f"layer {k} at epoch {epoch:g}")
                    idx = rows[k][0][alive[k]].astype(np.int32)
                    parts[k].append((idx, np.full(idx.size, j, dtype=np.int32), ws[k]))
    runs = {}
    for k in layers:
        if parts[k]:
            item, eidx, val = (np.concatenate(x) for x in zip(*parts[k]))
            order = np.argsort(item, kind="stable")  # epochs were appended in order
            runs[k] = _runs(item[order], eidx[order], val[order])
        else:
            empty = np.empty(0, dtype=np.int64)
            runs[k] = (empty, np.empty(0), empty, empty)
    return runs, mats, np.asarray(weighted, dtype=np.int64)


def _join(strings: list[str], counts: np.ndarray) -> list[str]:
    """Concatenate consecutive groups of ``counts[i]`` strings."""
    it = iter(strings)
    return ["".join(islice(it, c)) for c in counts.tolist()]


def _attvalues(name: str, vfmt: str, runs, a: int, b: int, sfr, efr) -> list[str]:
    """Per item in ``[a, b)``: its ``<attvalue>`` elements for the runs of one attribute."""
    item, val, s, e = runs
    lo, hi = np.searchsorted(item, [a, b])
    fmt = f'<attvalue for="{name}" value="{vfmt}"{{}}{{}}/>'
    strs = list(map(fmt.format, val[lo:hi].tolist(), sfr[s[lo:hi]].tolist(), efr[e[lo:hi]].tolist()))
    return _join(strs, np.bincount(item[lo:hi] - a, minlength=b - a))


def _matrix_runs(mat: np.ndarray, a: int, b: int, epoch_idx: np.ndarray):
    """Runs of columns ``a:b`` of an (epochs x nodes) matrix observed at ``epoch_idx``."""
    sub = mat[:, a:b]
    n_ep, n = sub.shape
    item = np.repeat(np.arange(a, b, dtype=np.int64), n_ep)
    return _runs(item, np.tile(epoch_idx, n), sub.T.ravel())


def _node_chunk(nodes, a, b, sizes, prefix, cols, weighted_epochs, sfr, efr) -> str:
    x, y = layered_positions(sizes, nodes["layer"][a:b], nodes["index"][a:b])
    pos = position_lines(prefix, x, y)
    ids = nodes["id"][a:b].tolist()
    layer, index = nodes["layer"][a:b].tolist(), nodes["index"][a:b].tolist()
    if not cols:
        return "".join(map('<node id="{}" label="L{}:{}">{}</node>\n'.format, ids, layer, index, pos))
    whole = f'{sfr[0]}{efr[-1]}/>'
    fixed = [f'<attvalue for="layer" value="{lv}"{whole}<attvalue for="index" value="{iv}"{whole}'
             for lv, iv in zip(layer, index)]
    n_ep = next(iter(cols.values())).shape[0]
    dyn = [_attvalues(c, "{}", _matrix_runs(cols[c], a, b, np.arange(n_ep)), a, b, sfr, efr)
           for c in ("in_degree", "out_degree")]
    if weighted_epochs.size:
        dyn += [_attvalues(c, "{!r}", _matrix_runs(cols[c][weighted_epochs], a, b, weighted_epochs), a, b, sfr, efr)
                for c in ("in_strength", "out_strength")]
    body = map("".join, zip(fixed, *dyn))
    return "".join(map('<node id="{}" label="L{}:{}"><attvalues>{}</attvalues>{}</node>\n'.format,
                       ids, layer, index, body, pos))


def _edge_chunk(src, dst, ptr, s, e, runs, a, b, sfr, efr) -> str:
    lo, hi = int(ptr[0]), int(ptr[-1])
    spells = _join(list(map("<spell{}{}/>".format, sfr[s[lo:hi]].tolist(), efr[e[lo:hi]].tolist())),
                   np.diff(ptr))
    if runs[0].size:
        atts = _attvalues("weight", float_format(runs[1].dtype), runs, a, b, sfr, efr)
        atts = [f"<attvalues>{x}</attvalues>" if x else "" for x in atts]
    else:
        atts = [""] * (b - a)
    return "".join(map('<edge id="{0}-{1}" source="{0}" target="{1}"><spells>{2}</spells>{3}</edge>\n'.format,
                       src.tolist(), dst.tolist(), spells, atts))
