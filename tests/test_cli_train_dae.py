"""``topo train --model dae``: QuickSelection's sparse DAE through the CLI — its defaults, evolution, the model
file, a bit-identical resume, the report and Gephi export of the run, and the refusals."""

import pandas as pd
import pytest
import torch

import topo
from topo import datasets
from topo.cli import main
from topo.runs import RunDir

TIMINGS = ["train_seconds", "evolve_seconds"]
BASE = ["train", "--dataset", "digits", "--model", "dae", "--hidden", "24", "--quiet"]


def train(out, *extra):
    return main([*BASE, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dae") / "run"
    assert train(out, "--epochs", "3") == 0
    return out


def test_dae_run_has_quickselections_settings_and_evolves(run):
    cfg = RunDir(run).read_config()
    assert (cfg["task"], cfg["noise"], cfg["dropout"], cfg["epsilon"]) == ("reconstruct", 0.2, 0.2, 13.0)
    assert cfg["sizes"] == [64, 24, 64]
    m = pd.read_csv(run / "metrics.csv")
    assert m.epoch.tolist() == [1, 2, 3] and m.train_acc.isna().all() and m.test_loss.notna().all()
    assert m.test_loss.iloc[-1] < m.test_loss.iloc[0]  # it learns to reconstruct
    h = RunDir(run).read_history()
    assert h.epochs == [0.0, 1.0, 2.0] and h.initial.sizes == (64, 24, 64)
    assert h.frame().query("epoch > 0").births.gt(0).all()  # SET rewired both layers


def test_the_model_file_is_the_dae_and_scores_the_runs_test_loss(run):
    model = topo.load_model(run)
    assert isinstance(model, topo.nn.SparseDAE) and not model.training and model.noise == 0.2
    X = datasets.standardize(datasets.load("digits", "train")[0], datasets.load("digits", "test")[0])[1]
    X = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(model(X), X))
    assert mse == pytest.approx(pd.read_csv(run / "metrics.csv").test_loss.iloc[-1], rel=1e-6)
    saved = RunDir(run).read_topology()
    assert [g.keys().tolist() for g in model.topology()] == [g.keys().tolist() for g in saved]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(model.topology(), saved))


def test_resume_is_bit_identical(tmp_path, run):
    assert train(tmp_path / "b", "--epochs", "2") == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--epochs", "3", "--quiet"]) == 0
    a, b = (pd.read_csv(d / "metrics.csv").drop(columns=TIMINGS) for d in (run, tmp_path / "b"))
    pd.testing.assert_frame_equal(a, b)


def test_report_and_gephi_export_read_a_dae_run(run, tmp_path):
    from lxml import etree

    assert main(["export", str(run), "--format", "gexf", "--out", str(tmp_path / "dae.gexf")]) == 0
    root = etree.parse(str(tmp_path / "dae.gexf")).getroot()
    edges = root.findall(".//{*}edge")
    assert len(edges) == sum(g.num_edges for g in RunDir(run).read_topology())
    assert main(["report", str(run), "--out", str(tmp_path / "report.html")]) == 0
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_dense_baseline_and_refusals(tmp_path, capsys):
    assert train(tmp_path / "dense", "--epochs", "1", "--rule", "dense") == 0
    m = pd.read_csv(tmp_path / "dense" / "metrics.csv")
    assert m.num_edges.tolist() == [2 * 64 * 24]
    for extra, message in ((["--task", "classify"], "--model dae reconstructs its input"),
                           (["--hidden", "24,12"], "--model dae has one hidden layer")):
        out = tmp_path / "bad"
        assert train(out, "--epochs", "1", *extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()
