"""The CLI fault table: every bad argument or OS refusal is one line naming the value, exit code 2, nothing written."""

import errno
import os
import warnings
from pathlib import Path

import pytest

import topo
from topo.cli import main
from topo.utils.resources import InsufficientMemoryError

TRAIN = ["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--quiet"]


def _tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _fails(argv, tmp_path, capsys, *needles):
    before = _tree(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"topo {argv[0]}: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert _tree(tmp_path) == before  # nothing written: no run directory, no temporary file
    return lines[0]


@pytest.mark.parametrize("extra, needles", [
    (["--device", "banana"], ["--device 'banana'"]),
    (["--device", "cuda:7"], ["--device 'cuda:7'"]),
    (["--epsilon", "-5"], ["epsilon", "-5"]),
    (["--backend", "torch_sparse"], ["torch_sparse"]),
    (["--backend", "nope"], ["'nope'"]),
    (["--density", "1e-9"], ["--density 1e-09", "0 edges", "--force"]),
    (["--hidden", "200000,200000", "--density", "0.5"], ["64-200000-200000-10", "MemAvailable"]),
    (["--hidden", "100000000000"], ["64-100000000000-10", "TiB", "available"]),
    (["--rule", "dense", "--hidden", "300000,300000"], ["64-300000-300000-10", "needs"]),
    (["--lr", "-1"], ["lr", "-1"]),
    (["--batch-size", "0"], ["--batch-size", "0"]),
    (["--dropout", "2"], ["--dropout", "2"]),
    (["--activation", "foo"], ["'foo'"]),
    (["--epochs", "0"], ["--epochs", "0"]),
])
def test_bad_train_arguments_fail_before_the_run_directory(tmp_path, capsys, extra, needles):
    out = tmp_path / "a" / "run"
    _fails(TRAIN + extra + ["--out", str(out)], tmp_path, capsys, *needles)


def test_out_below_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    _fails(TRAIN + ["--out", str(tmp_path / "afile" / "sub")], tmp_path, capsys, "afile", "is a file")


def test_demo_epochs_zero_writes_nothing(tmp_path, capsys):
    _fails(["demo", "--epochs", "0", "--out", str(tmp_path / "demo")], tmp_path, capsys, "--epochs", "0")


def test_read_only_filesystem_is_refused_before_anything(tmp_path, capsys, monkeypatch):
    # Root ignores permission bits, so simulate what a read-only mount answers.
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real(p, mode, **kw))
    monkeypatch.setattr(os, "statvfs", lambda p: type("S", (), {"f_flag": os.ST_RDONLY})())
    _fails(TRAIN + ["--out", str(tmp_path / "run")], tmp_path, capsys, str(tmp_path), "read-only", "EROFS")


@pytest.mark.parametrize("code, name", [(errno.ENOSPC, "ENOSPC"), (errno.EROFS, "EROFS")])
@pytest.mark.parametrize("victim", ["config.json", "checkpoint.pt"])
def test_write_failures_leave_nothing_behind(tmp_path, capsys, monkeypatch, code, name, victim):
    """The OS refuses a write mid-run (a full disk; a filesystem remounted read-only): one line, no leftovers."""
    import builtins

    import torch

    real_open, real_save = builtins.open, torch.save

    def failing_write(f):
        class Full:  # a file whose writes fail as the kernel's do
            def __init__(self, inner):
                self.inner = inner

            def write(self, data):
                raise OSError(code, os.strerror(code))

            def __getattr__(self, attr):
                return getattr(self.inner, attr)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.inner.close()
        return Full(f)

    if victim == "checkpoint.pt":
        # torch.save's zip writer swallows the OSError and says "unexpected pos": the real cause must show.
        monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: real_save(obj, failing_write(f), *a, **k))
    else:
        def fake_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            return failing_write(f) if "w" in mode and Path(str(file)).name.startswith(f".{victim}") else f
        def fake_fdopen(fd, mode="r", *a, **k):
            f = real_open(fd, mode, *a, **k)
            return failing_write(f) if "w" in mode and victim in os.readlink(f"/proc/self/fd/{fd}") else f

        monkeypatch.setattr(os, "fdopen", fake_fdopen)
        monkeypatch.setattr(builtins, "open", fake_open)
    line = _fails(TRAIN + ["--out", str(tmp_path / "run")], tmp_path, capsys, name, os.strerror(code))
    assert str(tmp_path / "run") in line and "unexpected pos" not in line


def test_oserror_and_allocation_failures_become_one_line(tmp_path, capsys, monkeypatch):
    from topo.cli import cmd_demo

    def oom(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 51200000000000 bytes. Error code 12")
    monkeypatch.setattr(cmd_demo, "run", oom)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "out of memory: an allocation of 46.57 TiB failed" in err and len(err.splitlines()) == 1
    assert main(["--debug", "demo"]) == 2  # --debug: the traceback, then the same line
    err = capsys.readouterr().err
    assert "Traceback" in err and "DefaultCPUAllocator" in err and err.strip().endswith("needs)")

    def bug(args):
        raise AttributeError("a bug")
    monkeypatch.setattr(cmd_demo, "run", bug)
    with pytest.raises(AttributeError):  # not an expected failure: its traceback is kept
        main(["demo"])


def test_library_refuses_a_topology_beyond_memory():
    with pytest.raises(InsufficientMemoryError, match=r"sizes \[10000000, 10000000\] \(50,000,000,000,000 edges\) "
                                                      r"needs .* PiB of memory, but this machine has"):
        topo.erdos_renyi([10**7, 10**7], density=0.5)
    assert issubclass(InsufficientMemoryError, MemoryError) and issubclass(InsufficientMemoryError, ValueError)


def test_library_warns_about_layers_with_fewer_edges_than_outputs():
    with pytest.warns(RuntimeWarning, match=r"layer 0 \(64->16\) gets 0 edges .* fewer than its 16 output"):
        t = topo.erdos_renyi([64, 16, 10], density=1e-9, seed=0)
    assert t.num_edges == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        topo.erdos_renyi([64, 16, 10], epsilon=2, seed=0)  # enough edges: silent


def test_force_trains_a_layer_with_few_edges(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="fewer than its"):
        assert main(TRAIN + ["--density", "0.01", "--force", "--out", str(out)]) == 0
    assert (out / "checkpoint.pt").is_file()


def test_the_memory_check_counts_every_update_the_history_keeps(tmp_path, capsys, monkeypatch):
    # The History keeps every update's births and deaths (and weights): a network that fits for a few
    # epochs can outgrow the machine over many, and the pre-flight check says so before it starts.
    from topo.cli import preflight
    from topo.utils import resources

    monkeypatch.setattr(resources, "available_memory", lambda device="cpu": 2 * 2**30)
    kw = dict(batch=128, dropout=0.3, optimizer="sgd-momentum", backend="auto", device="cpu")
    sizes = [64, 20000, 20000, 10]
    preflight.check_network(sizes, "set", 20.0, None, history_steps=9, **kw)  # ten epochs fit in 2 GiB
    with pytest.raises(InsufficientMemoryError, match="64-20000-20000-10"):
        preflight.check_network(sizes, "set", 20.0, None, history_steps=999, **kw)
    argv = ["train", "--dataset", "digits", "--hidden", "20000,20000", "--epochs", "1000", "--quiet"]
    _fails(argv + ["--out", str(tmp_path / "run")], tmp_path, capsys, "64-20000-20000-10", "needs")
    from topo.cli.cmd_train import _updates

    assert _updates({"epochs": 1000, "update_every": "epoch"}, 1437) == 999
    # RigL's schedule: every 100 steps until 75 % of 1000 epochs of ceil(1437 / 128) = 12 steps
    assert _updates({"epochs": 1000, "update_every": "100", "update_until": 0.75, "batch_size": 128}, 1437) == 90
