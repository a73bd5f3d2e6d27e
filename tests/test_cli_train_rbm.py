"""``topo train --model rbm``: a SET-RBM run directory from the command line, resumed, and its errors."""

import json

import pandas as pd

import topo
from topo.cli import main

BASE = ["train", "--model", "rbm", "--dataset", "digits", "--batch-size", "50", "--lr", "0.05", "--quiet"]


def test_rbm_run_directory_and_resume(tmp_path, capsys):
    out = tmp_path / "rbm"
    assert main([*BASE, "--hidden", "16", "--epsilon", "3", "--epochs", "2", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "rbm" and cfg["sizes"] == [64, 16] and cfg["rule"] == "set" and cfg["k"] == 1
    m = pd.read_csv(out / "metrics.csv")
    assert list(m.epoch) == [1, 2] and {"pseudo_likelihood", "test_reconstruction_error"} <= set(m.columns)
    h = topo.History.load(out / "history.npz")
    assert list(h.initial.sizes) == [64, 16] and h.epochs == [0.0, 1.0]
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert list(pd.read_csv(out / "metrics.csv").epoch) == [1, 2, 3]
    assert topo.History.load(out / "history.npz").epochs == [0.0, 1.0, 2.0]
    assert "digits rbm set 64-16" in capsys.readouterr().out


def test_rbm_dense_and_static_baselines(tmp_path):
    for rule, edges in (("dense", 64 * 8), ("static", None)):
        out = tmp_path / rule
        assert main([*BASE, "--hidden", "8", "--rule", rule, "--epochs", "1", "--cd-k", "2", "--persistent",
                     "--out", str(out)]) == 0
        m = pd.read_csv(out / "metrics.csv")
        if edges:
            assert int(m.num_edges.iloc[0]) == edges
        assert json.loads((out / "config.json").read_text())["persistent"] is True


def test_rbm_bad_settings(tmp_path, capsys):
    assert main([*BASE, "--hidden", "8,8", "--out", str(tmp_path / "x")]) == 2
    assert "one hidden layer" in capsys.readouterr().err
    assert main([*BASE, "--hidden", "8", "--cd-k", "0", "--out", str(tmp_path / "y")]) == 2
    assert "--cd-k" in capsys.readouterr().err
    assert not (tmp_path / "x" / "config.json").exists()


def test_report_and_export_of_an_rbm_run(tmp_path):
    # The analyses read an RBM run like an MLP run: visible→hidden is layer 0 of its topology.
    import lxml.html
    from lxml import etree

    out = tmp_path / "rbm"
    assert main([*BASE, "--hidden", "16", "--epsilon", "3", "--epochs", "3", "--out", str(out)]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "report.html"), "--bootstrap", "20"]) == 0
    sf = pd.read_csv(tmp_path / "scale_free.csv")
    assert sorted(sf.epoch.unique()) == [0.0, 1.0, 2.0] and set(sf.layer) == {0}
    assert set(sf.side) == {"in", "out"}  # CSN fits of the visible and the hidden degrees
    imgs = [i.get("alt") for i in lxml.html.parse(str(tmp_path / "report.html")).getroot().iter("img")]
    assert "input degree over epochs" in imgs  # the visible degrees as 8×8 images, epochs 0–2
    assert main(["export", str(out), "--format", "gexf", "--out", str(tmp_path / "rbm.gexf")]) == 0
    edges = etree.parse(str(tmp_path / "rbm.gexf")).getroot().findall(".//{*}edge")
    assert len(edges) == topo.History.load(out / "history.npz").final.num_edges
