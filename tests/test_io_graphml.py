"""GraphML (igraph) and edge-list CSV export: read back by igraph, networkx and pandas."""

from __future__ import annotations

import igraph as ig
import networkx as nx
import numpy as np
import pandas as pd
import pytest

import topo
import topo.io
from _export_support import weighted
from topo.errors import ParameterError, TopologyFormatError


@pytest.fixture
def topology():
    return weighted(topo.erdos_renyi([6, 5, 4, 2], density=0.5, seed=5), seed=5)


def test_graphml_read_by_igraph_and_networkx(topology, tmp_path):
    p = tmp_path / "t.graphml"
    topo.io.write_graphml(topology, p)
    g = ig.Graph.Read_GraphML(str(p))
    assert g.is_directed()
    assert (g.vcount(), g.ecount()) == (topology.num_neurons, topology.num_edges)
    ref = {(u, v): w for u, v, w in topology.to_networkx().edges(data="weight")}
    got = {(int(g.vs[e.source]["neuron"]), int(g.vs[e.target]["neuron"])): w for e, w in zip(g.es, g.es["weight"])}
    assert got.keys() == ref.keys()
    assert all(np.float32(got[k]) == np.float32(ref[k]) for k in ref)  # float32 weights survive exactly
    offs = topology.offsets()
    for v in g.vs:
        assert v["neuron"] == offs[int(v["layer"])] + v["index"]
    G = nx.read_graphml(p)
    assert (G.number_of_nodes(), G.number_of_edges()) == (topology.num_neurons, topology.num_edges)
    assert sorted(np.float32(w) for _, _, w in G.edges(data="weight")) == sorted(np.float32(list(ref.values())))
    assert topo.io.read_graphml(p) == topology


def test_graphml_layers_and_unweighted(topology, tmp_path):
    p = tmp_path / "t.graphml"
    topo.io.write_graphml(topology, p, layers=[1, 2])
    g = ig.Graph.Read_GraphML(str(p))
    offs = topology.offsets()
    assert sorted(int(n) for n in g.vs["neuron"]) == list(range(offs[1], topology.num_neurons))
    assert g.ecount() == topology[1].num_edges + topology[2].num_edges
    assert topo.io.read_graphml(p) == topo.Topology([topology[1], topology[2]])
    plain = topo.erdos_renyi([3, 3], density=0.5, seed=0)
    topo.io.write_graphml(plain, p)
    assert "weight" not in ig.Graph.Read_GraphML(str(p)).es.attributes()
    assert topo.io.read_graphml(p) == plain


def test_graphml_atomic_and_errors(topology, tmp_path, monkeypatch):
    p = tmp_path / "t.graphml"
    p.write_text("old")

    def partial(self, f, *a, **k):
        with open(f, "w") as fh:
            fh.write("<graphml>")  # half a file, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(ig.Graph, "write_graphml", partial)
    with pytest.raises(OSError, match="disk full"):
        topo.io.write_graphml(topology, p)
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["t.graphml"]
    monkeypatch.undo()
    with pytest.raises(ParameterError, match="out of range"):
        topo.io.write_graphml(topology, p, layers=[7])
    with pytest.raises(FileNotFoundError):
        topo.io.write_graphml(topology, tmp_path / "no" / "t.graphml")
    with pytest.raises(ParameterError, match="is a directory"):
        topo.io.write_graphml(topology, tmp_path)
    bad = tmp_path / "bad.graphml"
    bad.write_text("<graphml><graph")
    with pytest.raises(TopologyFormatError):
        topo.io.read_graphml(bad)


def test_edgelist_csv(topology, tmp_path):
    p = tmp_path / "edges.csv"
    topo.io.write_edgelist_csv(topology, p)
    df = pd.read_csv(p)
    assert list(df.columns) == ["layer", "src", "dst", "source_id", "target_id", "weight"]
    assert len(df) == topology.num_edges
    ref = topology.edges_frame()
    assert (df[["layer", "src", "dst"]].to_numpy() == ref[["layer", "src", "dst"]].to_numpy()).all()
    assert (df["weight"].to_numpy(np.float32) == ref["weight"].to_numpy(np.float32)).all()
    offs = topology.offsets()
    assert (df["source_id"] == df["src"] + df["layer"].map(lambda k: offs[k])).all()
    assert (df["target_id"] == df["dst"] + df["layer"].map(lambda k: offs[k + 1])).all()
    back = topo.from_edges_frame(df.astype({"weight": np.float32}), topology.sizes)
    assert back == topology
    topo.io.write_edgelist_csv(topology, p, layers=[2])
    assert set(pd.read_csv(p)["layer"]) == {2}
    with pytest.raises(ParameterError, match="out of range"):
        topo.io.write_edgelist_csv(topology, tmp_path / "x.csv", layers=[3])
    assert not (tmp_path / "x.csv").exists()
