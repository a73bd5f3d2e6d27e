"""GEXF export (topo.io): checked by real clients, not by our reader alone.

Every file written here is validated against the official GEXF 1.3 schema (../shared/gexf-1.3/gexf.xsd,
lxml), read back by networkx and parsed by graphology-gexf (the parser of Gephi Lite, run with node);
values are compared with brute-force references computed from the Topology/History themselves.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from lxml import etree

import topo
import topo.io
from _export_support import (
    assert_valid,
    dense_degrees,
    expand,
    graphology_parse,
    random_history,
    reference_weights,
    schema_rejects,
    weighted,
)
from topo.errors import ParameterError, ParameterTypeError, TopologyError, TopologyFormatError
from topo.io import gexf_dynamic, gexf_static

NS = {"g": "http://gexf.net/1.3", "viz": "http://gexf.net/1.3/viz"}


@pytest.fixture
def topology():
    return weighted(topo.erdos_renyi([7, 5, 4, 3], density=0.5, seed=3), seed=3)


@pytest.fixture
def history():
    h = random_history(seed=1)
    lives = [h.edge_intervals(k) for k in range(h.num_layers)]
    reborn = [(k, s, d) for k, iv in enumerate(lives) for s, d in zip(iv["src"], iv["dst"])
              if ((iv["src"] == s) & (iv["dst"] == d)).sum() > 1]
    assert reborn, "the test history should hold an edge that was pruned and regrown"
    return h


def no_leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- static -------------------------------------------------------------------------------------


def test_static_valid_and_networkx_reads_it_back(topology, tmp_path):
    p = tmp_path / "t.gexf"
    topo.io.write_gexf(topology, p)
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    ref = topology.to_networkx()
    assert G.number_of_nodes() == ref.number_of_nodes() == topology.num_neurons
    assert G.number_of_edges() == ref.number_of_edges() == topology.num_edges
    for u, v, w in ref.edges(data="weight"):
        assert np.float32(G[u][v]["weight"]) == np.float32(w)  # float32 weights round-trip exactly
        assert G[u][v]["id"] == f"{u}-{v}"
    ind, outd = dense_degrees(topology)
    for n, d in G.nodes(data=True):
        assert (d["layer"], d["index"]) == (ref.nodes[n]["layer"], ref.nodes[n]["index"])
        assert d["label"] == f"L{d['layer']}:{d['index']}"
        assert (d["in_degree"], d["out_degree"]) == (ind[n], outd[n])
        s_in = sum(abs(w) for _, _, w in ref.in_edges(n, data="weight"))
        s_out = sum(abs(w) for _, _, w in ref.out_edges(n, data="weight"))
        assert d["in_strength"] == pytest.approx(s_in, rel=1e-6) and d["out_strength"] == pytest.approx(s_out, rel=1e-6)
    assert topo.from_networkx(G) == topology


def test_static_header_namespaces(topology, tmp_path):
    p = tmp_path / "t.gexf"
    topo.io.write_gexf(topology, p)
    assert_valid(p)
    root = etree.parse(str(p)).getroot()
    assert root.tag == "{http://gexf.net/1.3}gexf" and root.get("version") == "1.3"
    xsi = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"
    assert root.get(xsi) == "http://gexf.net/1.3 http://gexf.net/1.3/gexf.xsd"
    graph = root.find("g:graph", NS)
    assert graph.get("defaultedgetype") == "directed" and graph.get("name") is None  # networkx's name="" bug
    assert graph.find("g:nodes", NS).get("count") == str(topology.num_neurons)
    assert graph.find("g:edges", NS).get("count") == str(topology.num_edges)


def test_read_gexf_round_trip(topology, tmp_path):
    p = tmp_path / "t.gexf"
    topo.io.write_gexf(topology, p)
    assert_valid(p)
    back = topo.io.read_gexf(p)
    assert back == topology  # structure and float32 weights, bit for bit
    unweighted = topo.erdos_renyi([6, 6, 2], density=0.3, seed=0)
    topo.io.write_gexf(unweighted, p)
    assert_valid(p)
    assert topo.io.read_gexf(p) == unweighted
    topo.io.write_gexf(topology, p, weights=False, node_attrs=False, viz=None)
    assert_valid(p)
    assert topo.io.read_gexf(p) == topology.with_weights([None] * len(topology))  # labels carry layer:index


@pytest.mark.parametrize("version", ["1.2draft", "1.3"])
def test_read_gexf_of_networkx_files(topology, tmp_path, version):
    p = tmp_path / "nx.gexf"
    nx.write_gexf(topology.to_networkx(), p, version=version)  # attribute ids "0", "1": found by title
    assert topo.io.read_gexf(p) == topology


def test_float64_weights_round_trip(tmp_path):
    t = topo.erdos_renyi([4, 3], density=1.0, seed=0)
    t = t.with_weights([torch.tensor([math.pi / 7 * i for i in range(12)], dtype=torch.float64)])
    p = tmp_path / "t.gexf"
    topo.io.write_gexf(t, p)
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    got = sorted(w for _, _, w in G.edges(data="weight"))
    assert got == sorted(t[0].weight.tolist())  # shortest repr: exact in float64


def test_layers_subset(topology, tmp_path):
    p = tmp_path / "t.gexf"
    topo.io.write_gexf(topology, p, layers=[1])
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    offs, sizes = topology.offsets(), topology.sizes
    assert sorted(G.nodes) == list(range(offs[1], offs[3]))  # neurons of neuron layers 1 and 2, global ids
    assert G.number_of_edges() == topology[1].num_edges
    assert topo.io.read_gexf(p) == topo.Topology([topology[1]])  # renumbered from neuron layer 0
    topo.io.write_gexf(topology, p, layers=(0, 2))
    assert_valid(p)
    back = topo.io.read_gexf(p)
    assert back.sizes == sizes and back[1].num_edges == 0
    assert back[0] == topology[0] and back[2] == topology[2]


def test_positions_by_layer_and_viz_flavours(topology, tmp_path):
    p, q, r = tmp_path / "gexf.gexf", tmp_path / "viz.gexf", tmp_path / "none.gexf"
    topo.io.write_gexf(topology, p)
    topo.io.write_gexf(topology, q, viz="viz")
    topo.io.write_gexf(topology, r, viz=None)
    assert_valid(p)
    assert_valid(q, "gexf.rng")  # the RelaxNG schema wants viz:position in the viz namespace ...
    assert schema_rejects(q, "gexf.xsd")  # ... which the XSD rejects: the two official schemas disagree
    assert_valid(r)
    G = nx.read_gexf(q, node_type=int)  # networkx reads positions in the viz namespace only
    offs = topology.offsets()
    for n, d in G.nodes(data=True):
        layer, index, size = d["layer"], d["index"], topology.sizes[d["layer"]]
        assert d["viz"]["position"]["x"] == 400 * layer
        assert d["viz"]["position"]["y"] == pytest.approx(500 - 1000 * index / (size - 1), abs=1e-3)
        assert n == offs[layer] + index
    assert etree.parse(str(r)).find(".//g:position", NS) is None


def test_graphology_reads_static(topology, tmp_path):
    p = tmp_path / "t.gexf"
    topo.io.write_gexf(topology, p)
    assert_valid(p)
    (g,) = graphology_parse(p)
    assert (g["type"], g["multi"]) == ("directed", False)
    assert (g["order"], g["size"]) == (topology.num_neurons, topology.num_edges)
    ref = topology.to_networkx()
    for u, v, w in ref.edges(data="weight"):
        e = g["edges"][f"{u}-{v}"]
        assert (e["source"], e["target"]) == (str(u), str(v))
        assert np.float32(e["attr"]["weight"]) == np.float32(w)
    for n, d in ref.nodes(data=True):
        a = g["nodes"][str(n)]
        assert (a["layer"], a["index"], a["label"]) == (d["layer"], d["index"], f"L{d['layer']}:{d['index']}")
        assert a["x"] == 400 * d["layer"]  # graphology finds <position> in the GEXF namespace too


def test_chunked_output_identical(topology, tmp_path, monkeypatch):
    h = random_history(seed=2)
    topo.io.write_gexf(topology, tmp_path / "a.gexf")
    topo.io.write_gexf_dynamic(h, tmp_path / "a-dyn.gexf")
    monkeypatch.setattr(gexf_static, "CHUNK", 3)
    monkeypatch.setattr(gexf_dynamic, "CHUNK", 2)
    topo.io.write_gexf(topology, tmp_path / "b.gexf")
    topo.io.write_gexf_dynamic(h, tmp_path / "b-dyn.gexf")
    assert_valid(tmp_path / "a.gexf")
    assert_valid(tmp_path / "a-dyn.gexf")
    assert (tmp_path / "a.gexf").read_bytes() == (tmp_path / "b.gexf").read_bytes()
    assert (tmp_path / "a-dyn.gexf").read_bytes() == (tmp_path / "b-dyn.gexf").read_bytes()


# -- dynamic ------------------------------------------------------------------------------------


def test_dynamic_valid_spells_and_weights(history, tmp_path):
    p = tmp_path / "evolution.gexf"
    topo.io.write_gexf_dynamic(history, p)
    assert_valid(p)
    graph = etree.parse(str(p)).getroot().find("g:graph", NS)
    assert (graph.get("mode"), graph.get("timeformat")) == ("dynamic", "double")
    epochs = history.epochs
    close = epochs[-1] + 1.0
    G = nx.read_gexf(p, node_type=int)
    ref = reference_weights(history)
    assert G.number_of_nodes() == history.initial.num_neurons
    assert G.number_of_edges() == len(ref)  # one element per edge ever alive, rebirths included
    offs = history.initial.offsets()
    for k in range(history.num_layers):
        iv = history.edge_intervals(k)
        lives: dict = {}
        for s, d, a, b in zip(iv["src"], iv["dst"], iv["start"], iv["end"]):
            lives.setdefault((int(s) + offs[k], int(d) + offs[k + 1]), []).append((a, close if b == math.inf else b))
        for (u, v), spells in lives.items():
            assert G[u][v]["spells"] == spells, (u, v)
    # networkx reads the reserved dynamic attribute `weight` as static: it keeps the last attvalue.
    for (u, v), per_epoch in ref.items():
        assert np.float32(G[u][v]["weight"]) == np.float32(per_epoch[max(per_epoch)])
    # The full timeline of every edge's weight, from the file's attvalues, equals the History's.
    for el in etree.parse(str(p)).iterfind(".//g:edge", NS):
        triples = [(float(a.get("value")), float(a.get("start")), float(a.get("end")))
                   for a in el.iterfind("g:attvalues/g:attvalue", NS)]
        u, v = int(el.get("source")), int(el.get("target"))
        got = expand(triples, epochs)
        assert {e: np.float32(w) for e, w in got.items()} == {e: np.float32(w) for e, w in ref[(u, v)].items()}


@pytest.mark.parametrize("layers", [None, [1]])
def test_dynamic_node_degrees(history, tmp_path, layers):
    p = tmp_path / "evolution.gexf"
    topo.io.write_gexf_dynamic(history, p, layers=layers)
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    offs = history.initial.offsets()
    assert sorted(G.nodes) == (list(range(history.initial.num_neurons)) if layers is None else
                               list(range(offs[1], history.initial.num_neurons)))
    if layers:
        assert {(u - offs[1], v - offs[2]) for u, v in G.edges} == {
            (s, d) for _, t in history for s, d in zip(t[1].src.tolist(), t[1].dst.tolist())}
    epochs = history.epochs
    per_epoch = {e: dense_degrees(t) for e, t in history}
    strength = {e: [np.zeros(t.num_neurons), np.zeros(t.num_neurons)] for e, t in history}
    for e, t in history:
        for u, v, w in t.to_networkx().edges(data="weight"):
            strength[e][0][v] += abs(w)
            strength[e][1][u] += abs(w)
    for n, d in G.nodes(data=True):
        (layer, s, e), = d["layer"]
        assert (s, e) == (0.0, epochs[-1] + 1) and d["label"] == f"L{layer}:{d['index'][0][0]}"
        ind, outd = expand(d["in_degree"], epochs), expand(d["out_degree"], epochs)
        assert ind == {e: per_epoch[e][0][n] for e in epochs}
        assert outd == {e: per_epoch[e][1][n] for e in epochs}
        ins, outs = expand(d["in_strength"], epochs), expand(d["out_strength"], epochs)
        assert ins == pytest.approx({e: strength[e][0][n] for e in epochs}, rel=1e-6)
        assert outs == pytest.approx({e: strength[e][1][n] for e in epochs}, rel=1e-6)


def test_dynamic_weight_gaps_and_no_weights(tmp_path):
    h = random_history(seed=4, weights_at={2, 3, 5})  # epochs 0 (initial), 2, 3, 5 have weights
    p = tmp_path / "gaps.gexf"
    topo.io.write_gexf_dynamic(h, p)
    assert_valid(p)
    ref = reference_weights(h)
    for el in etree.parse(str(p)).iterfind(".//g:edge", NS):
        triples = [(float(a.get("value")), float(a.get("start")), float(a.get("end")))
                   for a in el.iterfind("g:attvalues/g:attvalue", NS)]
        got = expand(triples, h.epochs)
        key = (int(el.get("source")), int(el.get("target")))
        assert {e: np.float32(w) for e, w in got.items()} == {e: np.float32(w) for e, w in ref[key].items()}
        assert set(got) <= {0.0, 2.0, 3.0, 5.0}
    q = tmp_path / "plain.gexf"
    topo.io.write_gexf_dynamic(h, q, weights=False, node_attrs=False)
    assert_valid(q)
    root = etree.parse(str(q)).getroot()
    assert root.find(".//g:attvalue", NS) is None and root.find(".//g:attributes", NS) is None


def test_dynamic_open_end_and_close_at(history, tmp_path):
    p = tmp_path / "open.gexf"
    topo.io.write_gexf_dynamic(history, p, close_at=None)
    assert_valid(p)
    last = history.epochs[-1]
    final = history.final
    offs = final.offsets()
    alive = {f"{s + offs[k]}-{d + offs[k + 1]}" for k, g in enumerate(final.layers)
             for s, d in zip(g.src.tolist(), g.dst.tolist())}
    for el in etree.parse(str(p)).iterfind(".//g:edge", NS):
        ends = [s.get("end") for s in el.iterfind("g:spells/g:spell", NS)]
        assert (ends[-1] is None) == (el.get("id") in alive)  # open spells: alive at the last epoch
    q = tmp_path / "closed.gexf"
    topo.io.write_gexf_dynamic(history, q, close_at=last + 2.5)
    assert_valid(q)
    ends = {float(s.get("end")) for s in etree.parse(str(q)).iterfind(".//g:spell", NS)}
    assert max(ends) == last + 2.5
    for bad in (last, math.inf, "soon", True):
        with pytest.raises(ParameterError, match="close_at"):
            topo.io.write_gexf_dynamic(history, tmp_path / "bad.gexf", close_at=bad)
    assert not (tmp_path / "bad.gexf").exists()


def test_dynamic_merges_touching_lives(tmp_path):
    t0 = topo.from_edges([2, 2], [([0, 1], [0, 1])])
    h = topo.History(t0)
    # Edge 0->0 (layer indices) dies and is reborn in the same step: alive throughout, one spell.
    h.record(1, [topo.LayerChange(births=[[0], [0]], deaths=[[0], [0]])])
    h.record(2, [topo.LayerChange(deaths=[[0], [0]])])
    h.record(3, [topo.LayerChange(births=[[0], [0]])])
    p = tmp_path / "touch.gexf"
    topo.io.write_gexf_dynamic(h, p)
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    assert G[0][2]["spells"] == [(0.0, 2.0), (3.0, 4.0)]
    assert G[1][3]["spells"] == [(0.0, 4.0)]


def test_dynamic_edge_cases(tmp_path):
    # A layer born empty and filled later, a layer emptied, and a history of epoch 0 only.
    t0 = topo.Topology([topo.LayerGraph(3, 2, [0, 1], [0, 1]), topo.LayerGraph(2, 2, [], [])])
    h = topo.History(t0)
    h.record(2, [topo.LayerChange(deaths=[[0, 1], [0, 1]]), topo.LayerChange(births=[[1], [0]])])
    p = tmp_path / "edge.gexf"
    topo.io.write_gexf_dynamic(h, p)
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    assert sorted((u, v, d["spells"]) for u, v, d in G.edges(data=True)) == [
        (0, 3, [(0.0, 2.0)]), (1, 4, [(0.0, 2.0)]), (4, 5, [(2.0, 4.0)])]  # auto close: one step (2) later
    topo.io.write_gexf_dynamic(topo.History(t0), p)
    assert_valid(p)
    G = nx.read_gexf(p, node_type=int)
    assert [d["spells"] for _, _, d in G.edges(data=True)] == [[(0.0, 1.0)]] * 2
    topo.io.write_gexf(t0, p)
    assert_valid(p)
    assert topo.io.read_gexf(p) == t0


def test_graphology_reads_dynamic(history, tmp_path):
    p, q = tmp_path / "closed.gexf", tmp_path / "open.gexf"
    topo.io.write_gexf_dynamic(history, p)
    topo.io.write_gexf_dynamic(history, q, close_at=None)
    assert_valid(p)
    assert_valid(q)
    g, o = graphology_parse(p, q)
    ref = reference_weights(history)
    assert (g["order"], g["size"]) == (history.initial.num_neurons, len(ref))
    assert (o["order"], o["size"]) == (g["order"], g["size"])
    close = history.epochs[-1] + 1
    offs = history.initial.offsets()
    checked = 0
    for k in range(history.num_layers):
        iv = history.edge_intervals(k)
        ids = [f"{s + offs[k]}-{d + offs[k + 1]}" for s, d in zip(iv["src"].tolist(), iv["dst"].tolist())]
        for eid in set(ids):
            rows = [i for i, x in enumerate(ids) if x == eid]
            want = [[iv["start"][i], iv["end"][i]] for i in rows]
            assert g["spells"][eid] == [[a, close if b == math.inf else b] for a, b in want]
            assert o["spells"][eid] == [[a, None if b == math.inf else b] for a, b in want]
            u, v = map(int, eid.split("-"))
            # graphology keeps the last attvalue of a dynamic attribute: the edge's latest weight.
            assert np.float32(g["edges"][eid]["attr"]["weight"]) == np.float32(ref[(u, v)][max(ref[(u, v)])])
            checked += len(rows) > 1
    assert checked, "a reborn edge was compared"


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dynamic", [False, True])
def test_failure_mid_write_leaves_nothing(topology, tmp_path, monkeypatch, dynamic):
    mod = gexf_dynamic if dynamic else gexf_static
    real, calls = mod._edge_chunk, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(mod, "_edge_chunk", failing)
    monkeypatch.setattr(mod, "CHUNK", 2)
    p = tmp_path / "t.gexf"
    write = (lambda: topo.io.write_gexf_dynamic(random_history(seed=3), p)) if dynamic else \
        (lambda: topo.io.write_gexf(topology, p))
    with pytest.raises(RuntimeError, match="disk full"):
        write()
    assert no_leftovers(tmp_path) == []  # neither the file nor its temporary
    p.write_text("previous export")
    calls.clear()
    with pytest.raises(RuntimeError):
        write()
    assert p.read_text() == "previous export" and no_leftovers(tmp_path) == ["t.gexf"]


def test_bad_input(topology, tmp_path):
    with pytest.raises(ParameterError, match="layer 3 out of range"):
        topo.io.write_gexf(topology, tmp_path / "x.gexf", layers=[0, 3])
    with pytest.raises(ParameterError, match="layers is empty"):
        topo.io.write_gexf(topology, tmp_path / "x.gexf", layers=[])
    with pytest.raises(ParameterError, match="viz must be"):
        topo.io.write_gexf(topology, tmp_path / "x.gexf", viz="svg")
    with pytest.raises(ParameterError, match="is a directory"):
        topo.io.write_gexf(topology, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        topo.io.write_gexf(topology, tmp_path / "missing" / "x.gexf")
    with pytest.raises(ParameterTypeError, match="takes a Topology"):
        topo.io.write_gexf(random_history(), tmp_path / "x.gexf")
    with pytest.raises(ParameterTypeError, match="takes a History"):
        topo.io.write_gexf_dynamic(topology, tmp_path / "x.gexf")
    w = [g.weight.clone() for g in topology.layers]
    w[2][1] = float("nan")
    with pytest.raises(TopologyError, match="layer 2 has 1 non-finite"):
        topo.io.write_gexf(topology.with_weights(w), tmp_path / "x.gexf")
    assert no_leftovers(tmp_path) == []


def test_read_gexf_errors(history, tmp_path):
    with pytest.raises(FileNotFoundError):
        topo.io.read_gexf(tmp_path / "none.gexf")
    p = tmp_path / "dyn.gexf"
    topo.io.write_gexf_dynamic(history, p)
    assert_valid(p)
    with pytest.raises(TopologyFormatError, match="dynamic"):
        topo.io.read_gexf(p)
    bad = tmp_path / "bad.gexf"
    bad.write_text('<gexf xmlns="http://gexf.net/1.3" version="1.3"><graph><nodes>')
    with pytest.raises(TopologyFormatError, match="well-formed"):
        topo.io.read_gexf(bad)
    bad.write_text('<gexf xmlns="http://gexf.net/1.3" version="1.3"><graph><nodes><node id="a" label="x"/>'
                   '</nodes><edges/></graph></gexf>')
    with pytest.raises(TopologyFormatError, match="node 'a' has neither"):
        topo.io.read_gexf(bad)
    bad.write_text('<gexf xmlns="http://gexf.net/1.3" version="1.3"><graph><nodes><node id="a" label="L0:0"/>'
                   '<node id="b" label="L1:0"/></nodes><edges><edge source="a" target="c"/></edges></graph></gexf>')
    with pytest.raises(TopologyFormatError, match="node 'c'"):
        topo.io.read_gexf(bad)
    bad.write_text('<gexf xmlns="http://gexf.net/1.3" version="1.3"><graph><nodes><node id="a" label="L0:0"/>'
                   '<node id="b" label="L2:0"/><node id="c" label="L1:0"/></nodes>'
                   '<edges><edge source="a" target="b"/></edges></graph></gexf>')
    with pytest.raises(TopologyFormatError, match="layered topology"):
        topo.io.read_gexf(bad)


def test_history_weights_accessor(history):
    for epoch, t in history:
        ws = history.weights(epoch)
        assert [torch.equal(w, g.weight) for w, g in zip(ws, t.layers)] == [True] * len(t)
        ws[0][0] = 1e9  # a copy: the record is untouched
        assert history.weights(epoch)[0][0] != 1e9
    h = topo.History(topo.erdos_renyi([3, 2], density=1.0, seed=0))
    h.record(1, [topo.LayerChange()])
    assert h.weights(0) is None and h.weights(1) is None and h.weights("last") is None
    with pytest.raises(ParameterError, match="not in this history"):
        history.weights(99)
