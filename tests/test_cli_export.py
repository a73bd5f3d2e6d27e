"""``topo export``: run directories, topology and history files to GEXF/GraphML/CSV, and its errors."""

from __future__ import annotations

import re
import subprocess
import sys

import igraph as ig
import networkx as nx
import pandas as pd
import pytest

import topo
import topo.io
from _export_support import assert_valid, random_history, reference_weights
from topo.cli import main


@pytest.fixture
def run_dir(tmp_path):
    """A run directory as ``topo train`` leaves it: history.npz (weights every epoch) and topology.npz."""
    d = tmp_path / "run"
    d.mkdir()
    h = random_history(seed=7, epochs=4)
    h.save(d / "history.npz")
    h.final.save(d / "topology.npz")
    return d, h


def files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_export_formats_from_run_dir(run_dir, tmp_path, capsys):
    d, h = run_dir
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", str(d), "--format", "gexf", "--out", str(out / "final.gexf")]) == 0
    assert_valid(out / "final.gexf")
    assert topo.io.read_gexf(out / "final.gexf") == h.final
    assert main(["export", str(d), "--format", "gexf-dynamic", "--out", str(out / "evolution.gexf")]) == 0
    assert_valid(out / "evolution.gexf")
    G = nx.read_gexf(out / "evolution.gexf", node_type=int)
    assert G.number_of_edges() == len(reference_weights(h))
    assert main(["export", str(d), "--format", "graphml", "--out", str(out / "t.graphml"), "--layers", "0"]) == 0
    assert ig.Graph.Read_GraphML(str(out / "t.graphml")).ecount() == h.final[0].num_edges
    assert main(["export", str(d), "--format", "edgelist-csv", "--out", str(out / "e.csv"), "--epoch", "2"]) == 0
    assert len(pd.read_csv(out / "e.csv")) == h.topology(2).num_edges
    assert "wrote" in capsys.readouterr().out
    assert files(out) == ["e.csv", "evolution.gexf", "final.gexf", "t.graphml"]


def test_export_epoch_and_history_file(run_dir, tmp_path):
    d, h = run_dir
    p = tmp_path / "e1.gexf"
    assert main(["export", str(d / "history.npz"), "--format", "gexf", "--out", str(p), "--epoch", "1"]) == 0
    assert_valid(p)
    assert topo.io.read_gexf(p) == h.topology(1)
    assert main(["export", str(d), "--format", "gexf", "--out", str(p), "--epoch", "-1", "--layers", "1"]) == 0
    assert_valid(p)
    assert topo.io.read_gexf(p) == topo.Topology([h.final[1]])
    assert main(["export", str(d / "history.npz"), "--format", "gexf", "--out", str(p)]) == 0  # last epoch
    assert_valid(p)
    assert topo.io.read_gexf(p) == h.final
    assert main(["export", str(d / "topology.npz"), "--format", "gexf", "--out", str(p), "--no-weights",
                 "--viz", "viz"]) == 0
    assert_valid(p, "gexf.rng")
    assert topo.io.read_gexf(p) == h.final.with_weights([None] * len(h.final))


@pytest.mark.parametrize("argv, message", [
    (["--format", "gexf", "--epoch", "9"], "epoch '9' is not in the history of .*available epochs: 0, 1, 2, 3, 4"),
    (["--format", "gexf", "--layers", "0,5"], "layer 5 out of range"),
    (["--format", "gexf", "--layers", "a"], "--layers must be"),
    (["--format", "gexf-dynamic", "--epoch", "1"], "drop --epoch"),
])
def test_export_errors_exit_2_and_write_nothing(run_dir, tmp_path, capsys, argv, message):
    d, _ = run_dir
    out = tmp_path / "x.gexf"
    assert main(["export", str(d), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("topo export: error:")
    assert re.search(message, err), err
    assert not out.exists()


def test_export_bad_sources_and_targets(run_dir, tmp_path, capsys):
    d, _ = run_dir
    cases = [
        ([str(d / "topology.npz"), "--format", "gexf-dynamic", "--out", str(tmp_path / "x.gexf")], "needs a history"),
        ([str(d / "topology.npz"), "--format", "gexf", "--epoch", "1", "--out", str(tmp_path / "x.gexf")],
         "--epoch needs a history"),
        ([str(tmp_path / "nothing"), "--format", "gexf", "--out", str(tmp_path / "x.gexf")], "no such run"),
        ([str(d), "--format", "gexf", "--out", str(tmp_path / "missing" / "x.gexf")], "does not exist"),
        ([str(d), "--format", "gexf", "--out", str(d / "topology.npz" / "x.gexf")], "does not exist"),
        ([str(d), "--format", "gexf", "--out", str(tmp_path)], "is a directory"),
    ]
    (tmp_path / "not.npz").write_text("hello")
    cases.append(([str(tmp_path / "not.npz"), "--format", "gexf", "--out", str(tmp_path / "x.gexf")],
                  "not a topo .npz"))
    empty = tmp_path / "empty-run"
    empty.mkdir()
    cases.append(([str(empty), "--format", "gexf-dynamic", "--out", str(tmp_path / "x.gexf")], "history.npz"))
    for argv, message in cases:
        assert main(["export", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert files(tmp_path) == ["empty-run", "not.npz", "run"]
    assert files(d) == ["history.npz", "topology.npz"]


def test_unknown_format_is_a_usage_error(run_dir, tmp_path):
    d, _ = run_dir
    r = subprocess.run([sys.executable, "-m", "topo", "export", str(d), "--format", "pdf",
                        "--out", str(tmp_path / "x.pdf")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "invalid choice: 'pdf'" in r.stderr and "gexf-dynamic" in r.stderr
    assert not (tmp_path / "x.pdf").exists()
