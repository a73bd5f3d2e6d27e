"""Distributed data-parallel training (issue 8): gloo ranks on the CPU, spawned with torch.multiprocessing.

The worker functions live at module level because spawned processes import them.
Each ``launch`` costs a few seconds (every rank imports torch), so the scenarios are
grouped into two launches.
"""

from __future__ import annotations

import functools

import pytest
import torch

import topo
import topo.distributed as D
from topo.errors import ParameterError, TopoError, TopologyError, TopologyMismatchError

SIZES = [20, 40, 30, 5]
N, BATCH = 96, 24


def _data():
    g = torch.Generator().manual_seed(7)
    X = torch.randn(N, SIZES[0], generator=g)
    y = torch.randint(0, SIZES[-1], (N,), generator=g)
    return X, y


def _model(seed: int):
    return topo.compile(topo.erdos_renyi(SIZES, epsilon=3, seed=seed), seed=seed, backend="csr")


def _state(model) -> list[torch.Tensor]:
    out = []
    for layer in model.sparse_layers:
        out += [layer.edge_index.clone(), layer.weight.detach().clone(), layer.bias.detach().clone()]
    return out


# -- workers (run inside the spawned ranks) ------------------------------------------------------------
def _train_worker(epochs: int) -> dict:
    info = D.get_info()
    # Rank 1 starts from another network on purpose: broadcast_model must make it rank 0's.
    model = _model(seed=0 if info.rank == 0 else 99)
    D.broadcast_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    # Different evolver seeds per rank: identical topologies can only come from the broadcast.
    evolver = topo.Evolver(model, topo.rules.SET(0.3), optimizer=opt, seed=1000 + info.rank)
    X, y = _data()
    first_grads, digests = None, []
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, N, BATCH):
            idx = D.shard(perm[i:i + BATCH], info.rank, info.world_size)
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            D.allreduce_gradients(model, weight=len(idx) / BATCH)
            if first_grads is None:
                first_grads = [p.grad.clone() for p in model.parameters()]
            opt.step()
        D.broadcast_evolution(model, lambda epoch=epoch: evolver.step(epoch=epoch), optimizer=opt,
                              where=f"after epoch {epoch}")
        digests.append(D.check_consistent(model, values=True))
    momenta = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    return {"grads": first_grads, "state": _state(model), "digests": digests, "momenta": momenta,
            "rank": info.rank, "world": info.world_size}


def _failure_worker() -> dict:
    info = D.get_info()
    model = _model(seed=0)
    seen = {}
    # 1. A rank whose topology was changed behind the others' back is named, on every rank.
    if info.rank == 1:
        layer = model.sparse_layers[1]
        g = topo.rules.SET(0.5)(layer.layer_graph(), 5)
        layer.rewire(g.graph, generator=5)
    try:
        D.check_consistent(model)
    except TopologyMismatchError as err:
        seen["check"] = (err.ranks, err.layer, str(err))
    # 2. The same divergence is caught when rank 0's next evolution step is replayed.
    try:
        D.broadcast_evolution(model, lambda: topo.Evolver(model, "set", seed=0).step(epoch=1))
    except TopologyMismatchError as err:
        seen["evolve"] = (err.ranks, err.layer)
    D.broadcast_model(model)  # heal rank 1
    seen["healed"] = D.check_consistent(model, values=True)
    # 3. A failing evolution step on rank 0 fails every rank instead of leaving them waiting.
    try:
        D.broadcast_evolution(model, lambda: 1 / 0)
    except ZeroDivisionError:
        seen["step_error"] = "ZeroDivisionError"
    except TopologyError as err:
        seen["step_error"] = str(err)
    # 4. Identical values are checked too: perturb one value on rank 1.
    if info.rank == 1:
        with torch.no_grad():
            model.sparse_layers[2].weight[0] += 1e-3
    try:
        D.check_consistent(model)  # structure only: still equal
        D.check_consistent(model, values=True)
    except TopologyMismatchError as err:
        seen["values"] = (err.ranks, err.layer)
    return seen


@functools.lru_cache(maxsize=1)
def _digits():
    from topo import datasets

    return datasets.load("digits", "train"), datasets.load("digits", "test")


def _fit(out, epochs, resume=False, dropout=0.3):
    model = topo.compile(topo.erdos_renyi([64, 48, 48, 10], epsilon=4, seed=0), dropout=dropout, seed=0)
    evolver = topo.Evolver(model, "set", seed=0)
    trainer = topo.Trainer(model, evolver=evolver, epochs=epochs, batch_size=50, lr=0.05, seed=0,
                           out_dir=out, resume=resume, progress=False)
    return trainer.fit(*_digits()), model


def _trainer_worker(root: str) -> dict:
    from pathlib import Path

    root = Path(root)
    a, model_a = _fit(root / "a", 3)
    _fit(root / "b", 2)
    b, model_b = _fit(root / "b", 3, resume=True)
    c, _ = _fit(None, 2, dropout=0.0)
    return {"a": a.metrics_.to_dict("list"), "b": b.metrics_.to_dict("list"), "c": c.metrics_.to_dict("list"),
            "digest_a": D.check_consistent(model_a, values=True), "digest_b": D.check_consistent(model_b, values=True)}


# -- tests -----------------------------------------------------------------------------------------------
def test_two_gloo_ranks_train_with_identical_topologies_and_values():
    epochs = 3
    results = D.launch(2, _train_worker, epochs, timeout_s=240)
    r0, r1 = results
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    # All-reduced gradients are bit-identical across ranks ...
    for a, b in zip(r0["grads"], r1["grads"]):
        assert torch.equal(a, b)
    # ... and equal the gradient of the whole first global batch computed in one process.
    ref = _model(seed=0)
    X, y = _data()
    idx = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:BATCH]
    torch.nn.functional.cross_entropy(ref(X[idx]), y[idx]).backward()
    for p, g in zip(ref.parameters(), r0["grads"]):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    # Topologies, values and optimizer state stay identical for the whole run.
    assert r0["digests"] == r1["digests"] and len(set(r0["digests"])) == epochs
    for a, b in zip(r0["state"] + r0["momenta"], r1["state"] + r1["momenta"]):
        assert torch.equal(a, b)
    # The evolution really rewired the network (rank 0's decisions, replayed on rank 1).
    start = _state(_model(seed=0))
    for k in range(len(SIZES) - 1):
        assert r0["state"][3 * k].shape == start[3 * k].shape  # SET keeps the edge count
        assert not torch.equal(r0["state"][3 * k], start[3 * k])


DETERMINISTIC = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "num_edges"]


def test_trainer_data_parallel_resume_and_agreement_with_one_process(tmp_path):
    r0, r1 = D.launch(2, _trainer_worker, str(tmp_path), timeout_s=300)
    # Identical models on both ranks, metrics over all ranks on both.
    assert r0["digest_a"] == r1["digest_a"] and r0["digest_b"] == r1["digest_b"]
    for run in ("a", "b", "c"):
        assert {k: r0[run][k] for k in DETERMINISTIC} == {k: r1[run][k] for k in DETERMINISTIC}
    # A distributed resume continues bit-identically (rank 0 wrote, every rank read the checkpoint).
    assert {k: r0["a"][k] for k in DETERMINISTIC} == {k: r0["b"][k] for k in DETERMINISTIC}
    assert r0["digest_a"] == r0["digest_b"]
    assert topo.load(tmp_path / "a" / "topology.npz") == topo.load(tmp_path / "b" / "topology.npz")
    import json

    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["nproc"] == 2 and config["dist_backend"] == "gloo"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["config.json", "metrics.csv", "topology.npz", "history.npz", "checkpoint.pt", "manifest.json", ".lock",
         "model.safetensors"])
    assert topo.History.load(tmp_path / "a" / "history.npz").epochs == [0.0, 1.0, 2.0]
    # Without dropout two ranks take the same steps as one process on the whole batch.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each rank; OpenMP threads waiting for a busy core cost 30x here
    try:
        one, _ = _fit(None, 2, dropout=0.0)
    finally:
        torch.set_num_threads(threads)
    m1, m2 = one.metrics_, r0["c"]
    assert m2["num_edges"] == list(m1.num_edges)
    assert m2["train_loss"][0] == pytest.approx(m1.train_loss[0], rel=1e-5)
    assert m2["test_acc"][0] == pytest.approx(m1.test_acc[0], abs=2e-3)
    assert m2["test_acc"][-1] == pytest.approx(m1.test_acc.iloc[-1], abs=0.03)


def test_cli_nproc_trains_with_two_processes(tmp_path, capsys):
    from topo.cli import main

    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--hidden", "32", "--epsilon", "4", "--epochs", "2", "--quiet",
            "--out", str(out)]
    assert main(args + ["--nproc", "2"]) == 0
    import json

    assert json.loads((out / "config.json").read_text())["nproc"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    assert main(args + ["--nproc", "2"]) == 2  # the run exists: refused before any process starts
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("extra, match", [
    (["--nproc", "0"], "nproc must be at least 1"),
    (["--nproc", "100000"], "more than this machine sensibly runs"),
    (["--nproc", "2", "--dist-backend", "nccl"], "nccl" if not torch.cuda.is_available() else "GPU"),
])
def test_cli_bad_distributed_input(tmp_path, capsys, extra, match):
    from topo.cli import main

    code = main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "r")] + extra)
    assert code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_nproc_conflicting_with_torchrun(tmp_path, capsys, monkeypatch):
    from topo.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    code = main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--quiet", "--nproc", "3",
                 "--out", str(tmp_path / "r")])
    assert code == 2 and "conflicts with torchrun's WORLD_SIZE=1" in capsys.readouterr().err


def test_diverged_rank_is_detected_on_every_rank():
    seen0, seen1 = D.launch(2, _failure_worker, timeout_s=240)
    for seen in (seen0, seen1):  # every rank raised, none was left waiting
        ranks, layer, msg = seen["check"]
        assert ranks == (1,) and layer == 1
        assert "rank(s) [1]" in msg and "sparse layer 1" in msg
        assert seen["evolve"] == ((1,), 1)
        assert seen["values"] == ((1,), 2)
    assert seen0["healed"] == seen1["healed"]
    assert seen0["step_error"] == "ZeroDivisionError"
    assert "evolution step failed on rank 0" in seen1["step_error"]


def test_launch_reraises_the_failing_ranks_error_with_its_rank():
    import pickle

    from topo.distributed._env import _reraise

    lost = RuntimeError("Connection closed by peer")
    real = TopologyMismatchError("topology mismatch: rank(s) [1] differ", ranks=[1], layer=3)
    errors = [(0, pickle.dumps((lost, "tb0"))), (1, pickle.dumps((real, "Traceback rank 1")))]
    with pytest.raises(TopologyMismatchError) as info:
        _reraise(errors, None)
    assert info.value.ranks == (1,) and info.value.layer == 3
    if hasattr(info.value, "__notes__"):
        assert "rank 1" in info.value.__notes__[0] and "Traceback rank 1" in info.value.__notes__[0]
    with pytest.raises(RuntimeError, match="Connection closed"):
        _reraise([(0, pickle.dumps((lost, "tb")))], None)


# -- bad input and single-process behaviour ---------------------------------------------------------------
@pytest.mark.parametrize("nproc", [0, -1, 10**6, 2.0, "2", True, None])
def test_bad_nproc(nproc):
    with pytest.raises(TopoError, match="nproc"):
        D.check_nproc(nproc)
    with pytest.raises(TopoError, match="nproc"):
        D.launch(nproc, _train_worker, 1)


def test_nproc_limit_names_the_machine():
    limit = D.max_nproc("gloo")
    assert D.check_nproc(limit) == limit
    with pytest.raises(ParameterError, match=f"at most {limit}"):
        D.check_nproc(limit + 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_nccl_without_gpu_is_a_clear_error():
    with pytest.raises(ParameterError, match="nccl.*CUDA"):
        D.resolve_backend("nccl")
    with pytest.raises(ParameterError, match="nccl"):
        D.launch(1, _train_worker, 1, backend="nccl")
    with pytest.raises(ParameterError, match="unknown distributed backend"):
        D.resolve_backend("mpi")
    assert D.resolve_backend("auto", "cpu") == "gloo"


def test_init_distributed_rejects_bad_ranks(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ParameterError, match="rank 2 is out of range"):
        D.init_distributed("gloo", rank=2, world_size=2)
    with pytest.raises(ParameterError, match="world_size"):
        D.init_distributed("gloo", rank=0, world_size=0)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ParameterError, match="WORLD_SIZE='two'"):
        D.init_distributed("gloo")
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ParameterError, match="MASTER_PORT"):
        D.init_distributed("gloo")
    assert D.is_torchrun() and D.env_world_size() == 2
    assert D.get_info() is None


def test_single_process_fallbacks():
    model = _model(seed=0)
    X, y = _data()
    torch.nn.functional.cross_entropy(model(X), y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    D.allreduce_gradients(model, weight=0.5)  # no process group: only the weight applies
    for b, p in zip(before, model.parameters()):
        torch.testing.assert_close(p.grad, b * 0.5)
    digest = D.check_consistent(model)
    assert digest == D.check_consistent(_model(seed=0)) != D.check_consistent(_model(seed=1))
    assert D.allreduce_sum([1, 2.5]).tolist() == [1.0, 2.5]
    parts = [D.shard(torch.arange(10), r, 3) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    assert max(p.numel() for p in parts) - min(p.numel() for p in parts) <= 1
    assert D.broadcast_evolution(model, lambda: "stepped") == "stepped"
    with pytest.raises(ParameterError, match="weight"):
        D.allreduce_gradients(model, weight=-1)


def test_layer_digests_follow_structure_and_values():
    a, b = _model(seed=0), _model(seed=0)
    assert D.layer_digests(a) == D.layer_digests(b)
    with torch.no_grad():
        b.sparse_layers[0].weight.mul_(2)
    assert D.layer_digests(a) == D.layer_digests(b)
    va, vb = D.layer_digests(a, values=True), D.layer_digests(b, values=True)
    assert va[0] != vb[0] and va[1:] == vb[1:]
    # The digest sees the same structure topo.Topology.fingerprint does.
    t = topo.erdos_renyi(SIZES, epsilon=3, seed=0)
    t2 = t.copy()
    g = t2.layers[2]
    t2.layers[2] = topo.LayerGraph(g.n_in, g.n_out, g.src[1:], g.dst[1:])
    assert (D.layer_digests(topo.compile(t)) == D.layer_digests(topo.compile(t2))) == \
        (t.fingerprint() == t2.fingerprint())
