"""Model files (model.safetensors), topo.load_model, topo predict, to_dense and ONNX export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import topo
from topo.cli import main
from topo.errors import TopologyError, TopologyFormatError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 2-epoch digits run with dropout, standardized inputs and SET (test_acc is of the final model)."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "--dataset", "digits", "--hidden", "48", "--epsilon", "4", "--epochs", "2",
                 "--batch-size", "32", "--lr", "0.05", "--standardize", "--quiet", "--out", str(out)]) == 0
    return out


def _test_data(standardize=True):
    Xtr, _ = topo.datasets.load("digits", "train")
    Xte, yte = topo.datasets.load("digits", "test")
    return (topo.datasets.standardize(Xtr, Xte)[1] if standardize else Xte), yte


def test_load_model_scores_the_runs_last_test_acc(digits_run):
    model = topo.load_model(digits_run)
    assert isinstance(model, topo.nn.SparseMLP) and not model.training
    X, y = _test_data()
    with torch.no_grad():
        correct = int((model(X).argmax(1) == y).sum())
    last = pd.read_csv(digits_run / "metrics.csv").test_acc.iloc[-1]  # written with 10 digits
    assert correct == round(last * len(y)) and correct / len(y) == pytest.approx(last, abs=1e-9)
    assert correct > 0.5 * len(y)
    # biases, edges and values are those of the checkpoint's model
    ckpt = torch.load(digits_run / "checkpoint.pt", weights_only=True)["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt[k]), k
    # the topology file says plainly that it holds no biases and where the model is
    with np.load(digits_run / "topology.npz", allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    assert meta["biases"] is False and "model.safetensors" in meta["note"]
    from safetensors import safe_open

    with safe_open(str(digits_run / "model.safetensors"), "pt") as f:  # a plain safetensors file
        header = f.metadata()
        assert header["format"] == "topo.model" and json.loads(header["config"])["dataset"] == "digits"
        assert "sparse_layers.0.bias" in f.keys() and f.get_tensor("sparse_layers.0.edge_index").dtype == torch.int32


def test_predict_writes_labels_and_probabilities(digits_run, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert main(["predict", str(digits_run), "--dataset", "digits", "--out", str(out)]) == 0
    p = pd.read_csv(out)
    X, y = _test_data()
    with torch.no_grad():
        probs = torch.softmax(topo.load_model(digits_run)(X), 1).double()
    assert list(p.columns) == ["row", "label", "target"] + [f"prob_{c}" for c in range(10)]
    assert p.label.tolist() == probs.argmax(1).tolist() and p.target.tolist() == y.tolist()
    np.testing.assert_allclose(p.filter(like="prob_").to_numpy(), probs.numpy(), rtol=1e-6, atol=1e-8)
    last = pd.read_csv(digits_run / "metrics.csv").test_acc.iloc[-1]
    assert f"accuracy {last:.4f}" in capsys.readouterr().out
    # --input: raw features, preprocessed as the run was (standardized with the training statistics)
    raw, _ = _test_data(standardize=False)
    np.save(tmp_path / "X.npy", raw.numpy().astype(np.float64))
    out2 = tmp_path / "preds2.csv"
    assert main(["predict", str(digits_run), "--input", str(tmp_path / "X.npy"), "--out", str(out2)]) == 0
    q = pd.read_csv(out2)
    assert q.label.tolist() == p.label.tolist() and "target" not in q.columns


@pytest.mark.parametrize("array, message", [
    (np.zeros((3, 5)), r"shape \(3, 5\); the model takes \[rows, 64\]"),
    (np.array([{"a": 1}], dtype=object), "not a readable .npy"),
    (np.full((2, 64), np.nan), "NaN or infinite"),
])
def test_predict_bad_input_is_exit_2_and_writes_nothing(digits_run, tmp_path, capsys, array, message):
    np.save(tmp_path / "bad.npy", array, allow_pickle=True)
    out = tmp_path / "p.csv"
    assert main(["predict", str(digits_run), "--input", str(tmp_path / "bad.npy"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "topo predict: error:" in err and pytest.importorskip("re").search(message, err)
    assert not out.exists() and not list(tmp_path.glob(".p.csv*"))
    assert main(["predict", str(tmp_path), "--dataset", "digits", "--out", str(out)]) == 2
    assert "holds no model.safetensors" in capsys.readouterr().err


def test_model_files_round_trip(tmp_path):
    t = topo.erdos_renyi([10, 12, 8, 4], epsilon=2, seed=0)
    model = topo.compile(t, activation="tanh", dropout=0.2, output_dense=True, seed=1, dtype=torch.float64)
    topo.save_model(model, tmp_path / "m.safetensors")
    back = topo.load_model(tmp_path / "m.safetensors")
    assert back.sizes == model.sizes and back.output_layer is not None and back.dropouts[0].p == 0.2
    assert type(back.activations[0]) is nn.Tanh and back.sparse_layers[0].weight.dtype == torch.float64
    x = torch.randn(5, 10, dtype=torch.float64)
    assert torch.equal(back(x), model.eval()(x))
    # a dense Sequential (the dense baseline, or to_dense()) rebuilds too
    dense = model.to_dense()
    topo.save_model(dense, tmp_path / "d.safetensors")
    assert torch.equal(topo.load_model(tmp_path / "d.safetensors")(x), dense.eval()(x))
    # a user's model: saved, and loaded into an instance of it (sparse layers resize to the file's edges)
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(16, 6), nn.GELU(), nn.Linear(6, 3))
    topo.sparsify(net, density=0.5, seed=0)
    topo.save_model(net, tmp_path / "u.safetensors")
    with pytest.raises(TopologyError, match="cannot rebuild.*model=..."):
        topo.load_model(tmp_path / "u.safetensors")
    other = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(16, 6), nn.GELU(), nn.Linear(6, 3))
    topo.sparsify(other, density=0.2, seed=5)
    got = topo.load_model(tmp_path / "u.safetensors", model=other)
    xs = torch.randn(2, 1, 10)
    assert torch.equal(got(xs), net.eval()(xs))
    # damaged and foreign files
    raw = bytearray((tmp_path / "m.safetensors").read_bytes())
    (tmp_path / "cut.safetensors").write_bytes(bytes(raw[:40]))
    with pytest.raises(TopologyFormatError, match="cut.safetensors"):
        topo.load_model(tmp_path / "cut.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(TopologyFormatError, match="no topo format tag"):
        topo.load_model(tmp_path / "foreign.safetensors")


def test_to_dense_has_identical_outputs():
    model = topo.compile(topo.erdos_renyi([10, 12, 4], epsilon=2, seed=0), activation="gelu", dropout=0.3,
                         output_dense=True, seed=0).eval()
    dense = model.to_dense()
    assert [type(m).__name__ for m in dense] == ["Linear", "GELU", "Dropout", "Linear"]
    x = torch.randn(7, 10)
    torch.testing.assert_close(dense.eval()(x), model(x), rtol=1e-6, atol=1e-6)
    lin = model.sparse_layers[0].to_linear()
    assert type(lin) is nn.Linear and torch.equal(lin.weight, model.sparse_layers[0].to_dense())
    torch.testing.assert_close(lin(x), model.sparse_layers[0](x), rtol=1e-6, atol=1e-6)
    net = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 4))
    topo.sparsify(net, density=0.3, seed=0)
    twin = topo.nn.to_dense(net)
    assert all(type(m) is nn.Linear for m in (twin[0], twin[2])) and isinstance(net[0], topo.nn.SparseLinear)
    torch.testing.assert_close(twin(x), net(x), rtol=1e-6, atol=1e-6)


def test_export_onnx_runs_in_onnxruntime_like_torch(digits_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the [onnx] extra")
    pytest.importorskip("onnx", reason="onnx is the [onnx] extra")
    out = tmp_path / "model.onnx"
    assert main(["export", str(digits_run), "--format", "onnx", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    X, _ = _test_data()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": X.numpy()})[0]
    with torch.no_grad():
        want = topo.load_model(digits_run)(X).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert main(["export", str(tmp_path), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "holds no model.safetensors" in capsys.readouterr().err


def test_a_changed_model_file_of_a_run_is_refused(digits_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(digits_run, run)
    raw = bytearray((run / "model.safetensors").read_bytes())
    raw[-3] ^= 0x01  # one bit of a weight: still a valid safetensors file
    (run / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(TopologyFormatError, match="model.safetensors"):
        topo.load_model(run)
    assert main(["predict", str(run), "--dataset", "digits", "--out", str(tmp_path / "p.csv")]) == 2
    assert "model.safetensors" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
