"""topo.runs.RunDir: the run directory's names, lock, manifest, and the run-file faults of issue 14."""

import ast
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import topo
from topo.cli import main
from topo.runs import RunDir, RunFileError, RunLock, RunLockedError
from topo.runs.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "digits", "--hidden", "16", "--epsilon", "4", "--batch-size", "64", "--lr", "0.05",
         "--quiet"]


def snapshot(d: Path) -> dict:
    """Every file of a directory (dotfiles included) with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished two-epoch digits runs (seeds 0 and 1) to copy from."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        assert main([*TRAIN, "--epochs", "2", "--seed", str(seed), "--out", str(root / f"seed{seed}")]) == 0
    return root


@pytest.fixture
def run(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs / "seed0", out)
    return out


# -- RunDir as a library object -------------------------------------------------------------------------
def test_rundir_round_trip_and_manifest(tmp_path):
    out = tmp_path / "r"
    t = topo.erdos_renyi([6, 5, 3], density=0.5, seed=0)
    h = topo.History(t)
    with RunDir.create(out) as run:
        assert run.locked and RunLock(out / RunDir.LOCK).holder()["pid"] == os.getpid()
        with run.transaction():
            run.write_config({"seed": 3, "hidden": "5"})
            run.write_metrics([{"epoch": 1, "train_loss": 0.25, "extra": 7}])
            run.write_topology(t)
            run.write_history(h)
            run.write_checkpoint({"epoch": 1, "model": {"w": torch.arange(3.0)}, "optimizer": {}, "rng": {},
                                  "metrics": []})
            run.write_bytes(RunDir.MODEL, b"\x00raw model bytes")
            assert not (out / RunDir.CONFIG).exists()  # nothing lands before the commit
    assert not run.locked and (out / RunDir.LOCK).read_bytes() == b""
    r = RunDir(out)
    assert r.read_config() == {"seed": 3, "hidden": "5"}
    assert r.read_metrics().to_dict("records") == [{"epoch": 1, "train_loss": 0.25, "extra": 7}]
    assert r.read_topology() == t and r.read_history().initial == t
    assert torch.equal(r.read_checkpoint()["model"]["w"], torch.arange(3.0))
    assert r.read_bytes(RunDir.MODEL) == b"\x00raw model bytes"
    manifest = json.loads((out / RunDir.MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(RunDir.FILES) and "pending" not in manifest
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(RuntimeError, match="needs its lock"):
        r.write_config({})


def test_failed_transaction_changes_nothing(tmp_path):
    with RunDir.create(tmp_path / "r") as run:
        run.write_config({"a": 1})
        before = snapshot(run.path)
        with pytest.raises(ZeroDivisionError):
            with run.transaction():
                run.write_config({"a": 2})
                run.write_metrics([{"epoch": 1}])
                raise ZeroDivisionError("a failure inside the transaction")
        assert snapshot(run.path) == before


def test_crash_between_the_manifest_phases_still_verifies(tmp_path):
    # A kill after the pending manifest and the rename, before the final manifest: both files verify.
    with RunDir.create(tmp_path / "r") as run:
        run.write_bytes(RunDir.MODEL, b"old")
        m = run._manifest
        m.pending = {RunDir.MODEL: {"sha256": hashlib.sha256(b"new").hexdigest(), "bytes": 3}}
        m.save()
    assert RunDir(tmp_path / "r").read_bytes(RunDir.MODEL) == b"old"
    (tmp_path / "r" / RunDir.MODEL).write_bytes(b"new")
    assert RunDir(tmp_path / "r").read_bytes(RunDir.MODEL) == b"new"
    (tmp_path / "r" / RunDir.MODEL).write_bytes(b"odd")
    with pytest.raises(RunFileError, match="model.safetensors"):
        RunDir(tmp_path / "r").read_bytes(RunDir.MODEL)


def test_second_rundir_in_one_process_is_refused(tmp_path):
    a = RunDir.create(tmp_path / "r")
    with pytest.raises(RunLockedError) as err:
        RunDir.create(tmp_path / "r")
    assert err.value.holder["pid"] == os.getpid() and str(tmp_path / "r" / RunDir.LOCK) in str(err.value)
    assert f"PID {os.getpid()} (this process)" in str(err.value)
    a.close()
    RunDir.create(tmp_path / "r").close()  # released: free again (nothing was written, so no run there)


def test_trainer_refuses_a_locked_run_directory_and_writes_nothing(tmp_path):
    out = tmp_path / "r"
    holder = RunDir.create(out)
    model = topo.compile(topo.erdos_renyi([8, 6, 2], density=0.5, seed=0))
    X, y = torch.rand(16, 8), torch.arange(16) % 2
    with pytest.raises(RunLockedError, match="is in use"):
        topo.Trainer(model, epochs=1, batch_size=8, out_dir=out, progress=False).fit((X, y))
    assert sorted(p.name for p in out.iterdir()) == [RunDir.LOCK]
    holder.close()
    topo.Trainer(model, epochs=1, batch_size=8, out_dir=out, progress=False).fit((X, y))
    assert RunDir(out).read_checkpoint()["epoch"] == 1 and (out / RunDir.LOCK).read_bytes() == b""


# -- the lock across processes (issue 13's reproduction) ----------------------------------------------------
def test_second_train_on_the_same_directory_fails_at_once(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "topo", "train", "--dataset", "digits", "--hidden", "32", "--epochs", "12",
           "--batch-size", "1", "--quiet", "--out", str(out)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while RunLock(out / RunDir.LOCK).holder().get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        time.sleep(0.7)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        msg = second.stderr.strip()
        assert msg.startswith("topo train: error:") and len(msg.splitlines()) == 1, msg
        assert str(out / RunDir.LOCK) in msg and f"PID {first.pid}" in msg and "in use" in msg
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel dropped the lock with the killed process; the run resumes from its files.
    lock = RunLock(out / RunDir.LOCK)
    lock.acquire()
    lock.release()
    cfg = RunDir(out).read_config()
    assert cfg["epochs"] == 12 and cfg["batch_size"] == 1


# -- verified files and failed resumes ------------------------------------------------------------------------
def flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def resume(out: Path, *extra) -> int:
    return main(["train", "--out", str(out), "--resume", "--epochs", "3", "--quiet", *extra])


def test_a_flipped_byte_in_the_checkpoint_refuses_resume_and_changes_nothing(run, capsys):
    flip(run / RunDir.CHECKPOINT)
    with pytest.raises(RunFileError):  # torch.load would not notice: it does not check zip CRCs
        RunDir(run).read_checkpoint()
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert str(run / RunDir.CHECKPOINT) in err and "is not the file topo wrote there" in err
    assert snapshot(run) == before


@pytest.mark.parametrize("name", [RunDir.HISTORY, RunDir.TOPOLOGY])
def test_flipped_history_or_topology_is_refused(run, capsys, name, tmp_path):
    flip(run / name)
    before = snapshot(run)
    with pytest.raises(RunFileError, match=name):
        RunDir(run).read_history() if name == RunDir.HISTORY else RunDir(run).read_topology()
    if name == RunDir.HISTORY:
        assert resume(run) == 2
    else:
        assert main(["export", str(run), "--format", "gexf", "--out", str(tmp_path / "x.gexf")]) == 2
        assert not (tmp_path / "x.gexf").exists()
    assert str(run / name) in capsys.readouterr().err
    assert snapshot(run) == before


def test_files_copied_from_another_run_are_refused(run, runs, capsys):
    for name in (RunDir.CHECKPOINT, RunDir.HISTORY):
        shutil.copy(runs / "seed1" / name, run / name)
        before = snapshot(run)
        assert resume(run) == 2
        err = capsys.readouterr().err
        assert str(run / name) in err and "copied from another run" in err
        assert snapshot(run) == before
        shutil.copy(runs / "seed0" / name, run / name)
    # Without a manifest (a run of an older topo) the history is still checked against the checkpoint.
    (run / RunDir.MANIFEST).unlink()
    shutil.copy(runs / "seed1" / RunDir.HISTORY, run / RunDir.HISTORY)
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert str(run / RunDir.HISTORY) in err and "does not belong to" in err and RunDir.CHECKPOINT in err
    assert snapshot(run) == before


@pytest.mark.parametrize("config, message", [
    ([1, 2], "must hold a JSON object of settings, got list [1, 2]"),
    ({"hidden": 50}, "'hidden': 50, expected a string"),
    ({"lr": "fast"}, "'lr': 'fast', expected a number"),
    ("{not json", "is not valid JSON"),
])
def test_config_of_the_wrong_shape_is_named_on_resume(run, capsys, config, message):
    path = run / RunDir.CONFIG
    if isinstance(config, dict):
        config = {**json.loads(path.read_text()), **config}
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err
    assert snapshot(run) == before


def test_an_edited_config_is_refused_by_the_manifest(run, capsys):
    path = run / RunDir.CONFIG
    path.write_text(json.dumps({**json.loads(path.read_text()), "dropout": 0.0}))
    before = snapshot(run)
    assert resume(run) == 2
    assert str(path) in capsys.readouterr().err
    assert snapshot(run) == before


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0.3"], "--lr 0.3 differs"),
    (["--epochs", "1"], "2 epochs done, more than epochs=1"),
])
def test_failed_resume_leaves_every_file_as_it_was(run, capsys, argv, message):
    before = snapshot(run)
    assert main(["train", "--out", str(run), "--resume", "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(run) == before


def test_resume_extends_and_reverifies(run, runs):
    assert resume(run) == 0
    r = RunDir(run)
    r.verify()
    assert r.read_checkpoint()["epoch"] == 3 and r.read_config()["epochs"] == 3
    assert r.read_metrics().epoch.tolist() == [1, 2, 3]


# -- temporary files a killed writer left behind -------------------------------------------------------------
STALE = [".metrics.csv.k2x_9q0a.tmp",                  # atomic_write's (tempfile.mkstemp's) name
         ".checkpoint.pt.0123abcd.tmp",                # RunDir.write_file's
         "..history.npz.0123abcd.tmp.ab_cd123.tmp",    # atomic_write inside write_file
         ".manifest.json.zzzz1111.tmp"]
LOOKALIKES = [".metrics.csv.backup.tmp", "metrics.csv.k2x_9q0a.tmp", ".notes.txt.k2x_9q0a.tmp",
              ".metrics.csv.K2X_9Q0A.tmp", ".metrics.csv.k2x_9q0a.tmp.bak", ".metrics.csv.tmp", "notes.tmp"]


def test_resume_removes_stale_temporary_files_and_nothing_else(run):
    for name in STALE + LOOKALIKES:
        (run / name).write_bytes(b"half a file")
    (run / ".config.json.abcdabcd.tmp").mkdir()  # not a file: not ours
    assert resume(run) == 0
    left = {p.name for p in run.iterdir()}
    assert not left & set(STALE)
    assert set(LOOKALIKES) <= left and ".config.json.abcdabcd.tmp" in left
    assert RunDir(run).read_checkpoint()["epoch"] == 3


def test_stale_temporary_files_are_removed_only_under_the_lock(tmp_path):
    from topo.utils.atomic import atomic_write, stale_temp_files

    out = tmp_path / "r"
    with RunDir.create(out) as run:
        run.write_config({"seed": 0})
        run.write_metrics([{"epoch": 1, "train_loss": 0.5}])
        run.write_bytes("extra.bin", b"listed in the manifest")
    # The pattern is the writers' own: a live atomic_write's temporary file is recognised.
    with atomic_write(out / "notes.txt", "w") as f:
        live = stale_temp_files(out)
        f.write("a user's file\n")
    assert len(live) == 1 and live[0].name.startswith(".notes.txt.") and not live[0].exists()
    for name in STALE + [".extra.bin.00aa11bb.tmp"]:
        (out / name).write_bytes(b"x")
    RunDir(out).read_metrics()  # reading takes no lock and removes nothing
    assert len(stale_temp_files(out)) == len(STALE) + 1
    holder = RunDir.resume(out)
    assert not stale_temp_files(out)  # the first writer's open cleaned them
    (out / STALE[0]).write_bytes(b"x")  # now a live writer's, as far as anyone else can know
    with pytest.raises(RunLockedError):
        RunDir.resume(out)
    assert (out / STALE[0]).exists()
    holder.close()
    with RunDir.resume(out):
        assert not (out / STALE[0]).exists()


# -- metrics.csv -----------------------------------------------------------------------------------------------
def _truncated(text: str) -> str:
    return text[:-7]  # mid-way through the last row's last cell


def _short_row(text: str) -> str:
    return text.rsplit(",", 3)[0] + "\n"


def _not_numeric(text: str) -> str:
    head, first, second = text.rstrip("\n").split("\n")
    cells = second.split(",")
    cells[1] = "abc"
    return "\n".join([head, first, ",".join(cells)]) + "\n"


@pytest.mark.parametrize("damage, message", [
    (_truncated, "row 2 (line 3) is cut short"),
    (_short_row, "row 2 (line 3) has 7 cells, the header 10"),
    (_not_numeric, "row 2 (line 3), column 'train_loss': 'abc' is not a number"),
])
def test_bad_metrics_rows_are_named(run, capsys, damage, message):
    path = run / RunDir.METRICS
    path.write_text(damage(path.read_text()))
    with pytest.raises(RunFileError) as err:
        RunDir(run).read_metrics()
    assert message in str(err.value) and str(path) in str(err.value)
    before = snapshot(run)
    assert main(["report", str(run), "--bootstrap", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err, err
    assert snapshot(run) == before  # no report.html, no CSV


# -- topo report writes only where --out says ---------------------------------------------------------------
def test_report_never_writes_over_run_files(run, capsys):
    before = snapshot(run)
    for name in (RunDir.CHECKPOINT, RunDir.CONFIG, RunDir.MANIFEST):
        assert main(["report", str(run), "--out", str(run / name), "--bootstrap", "0", "--quiet"]) == 2
        assert f"{name} is a file of the run" in capsys.readouterr().err
    assert snapshot(run) == before


def test_report_elsewhere_leaves_the_run_untouched(run, tmp_path, capsys):
    before = snapshot(run)
    out = tmp_path / "elsewhere"
    out.mkdir()
    assert main(["report", str(run), "--out", str(out / "r.html"), "--bootstrap", "0", "--quiet"]) == 0
    assert snapshot(run) == before
    assert sorted(p.name for p in out.iterdir()) == ["degrees.csv", "drift.csv", "importance.csv", "r.html",
                                                     "scale_free.csv"]
    assert pd.read_csv(out / "drift.csv").shape[0] > 0


# -- messages that say what a file is not -------------------------------------------------------------------
def test_export_of_a_text_file_says_it_is_not_an_npz(tmp_path, capsys):
    (tmp_path / "notrun").mkdir()
    (tmp_path / "notrun" / "foo.txt").write_text("hello world\n")
    assert main(["export", str(tmp_path / "notrun" / "foo.txt"), "--format", "gexf",
                 "--out", str(tmp_path / "x.gexf")]) == 2
    err = capsys.readouterr().err
    assert "is not a topo .npz file" in err and "not a zip archive" in err and "pickled" not in err
    assert not (tmp_path / "x.gexf").exists()


class _NotPlain:
    pass


def test_weights_only_refusal_keeps_torchs_warning(tmp_path):
    path = tmp_path / "ck.pt"
    torch.save({"__format__": "topo.checkpoint", "x": _NotPlain()}, path)
    with pytest.raises(topo.TopologyFormatError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg
    assert "arbitrary code execution" in msg and "_NotPlain" in msg and "\x1b" not in msg
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(topo.TopologyFormatError, match="not a torch.save zip archive"):
        load_checkpoint(tmp_path / "t.txt")
    save_checkpoint(path, {"epoch": 1, "model": {}, "optimizer": {}, "rng": {}, "metrics": []})
    assert load_checkpoint(path)["epoch"] == 1


# -- one module spells the run files' names ----------------------------------------------------------------------
NAMES = (RunDir.CONFIG, RunDir.METRICS, RunDir.CHECKPOINT, RunDir.TOPOLOGY, RunDir.HISTORY, RunDir.MODEL,
         RunDir.MANIFEST)


def test_only_topo_runs_spells_the_run_file_names():
    """No string in the code of topo/, analysis/ or examples/ (docstrings aside) names a run file but topo/runs'."""
    found = []
    for base in ("topo", "analysis", "examples"):
        for p in sorted((ROOT / base).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel.startswith("topo/runs/"):
                continue
            tree = ast.parse(p.read_text(encoding="utf-8"))
            docs = {id(node.body[0].value) for node in ast.walk(tree)
                    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.body and isinstance(node.body[0], ast.Expr)
                    and isinstance(node.body[0].value, ast.Constant)}
            found += [f"{rel}:{node.lineno}: {name}" for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                      for name in NAMES if name in node.value]
    assert not found, found
    assert len(NAMES) == len(set(NAMES)) == 7


def test_a_holder_without_a_record_is_a_probe_and_is_waited_for(tmp_path):
    # Two ranks probing (check_free) and a launcher acquiring at the same moment: a flock held without a
    # record lasts milliseconds, so it must not be reported as "in use" (the resumed --nproc 2 race).
    import fcntl
    import threading

    from topo.runs.lock import RunLock

    path = tmp_path / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.2, os.close, [fd]).start()
    lock = RunLock(path)
    lock.acquire()
    assert lock.held and lock.holder()["pid"] == os.getpid()
    lock.release()


def test_a_refused_second_run_leaves_the_first_runs_new_files_alone(tmp_path):
    # The race behind a once-flaky CI run: a second `topo train` on a directory in use fails, and its
    # cleanup must not delete what the first run (another process, holding the lock) wrote meanwhile.
    from topo.cli.preflight import new_run_guard

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from topo.runs import RunLock; l = RunLock(sys.argv[1]); l.acquire(); "
        "print('held', flush=True); time.sleep(60)"), str(out / RunDir.LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError), new_run_guard(out, resume=False):
            (out / RunDir.CONFIG).write_text("{}")  # the first run writes while the second is starting
            RunLock(out / RunDir.LOCK).acquire()
        assert (out / RunDir.CONFIG).exists() and (out / RunDir.LOCK).exists()
    finally:
        holder.kill()
        holder.wait()
    # With the lock free (its holder gone) a failing new run cleans up what it created, as before.
    with pytest.raises(RuntimeError), new_run_guard(out, resume=False):
        (out / RunDir.METRICS).write_text("")
        raise RuntimeError("boom")
    assert not (out / RunDir.METRICS).exists() and (out / RunDir.CONFIG).exists()
