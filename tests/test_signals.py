"""Stop signals: SIGINT/SIGTERM stop a command (and every rank of ``--nproc``) cleanly, leaving a resumable run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from topo.utils.signals import Interrupted, exit_code, stop_on_signals

ROOT = Path(__file__).resolve().parents[1]


def test_stop_on_signals_turns_both_signals_into_interrupted():
    before = signal.getsignal(signal.SIGTERM)
    for signum in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(Interrupted) as info:
            with stop_on_signals():
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler raises long before this ends
        assert info.value.signum == signum and exit_code(info.value) == 128 + signum
        assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_once_ignores_the_second_signal_during_cleanup():
    cleaned = []
    with pytest.raises(Interrupted):
        with stop_on_signals(once=True):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # would cut the cleanup short without once=True
                time.sleep(0.05)
                cleaned.append(True)
    assert cleaned == [True]


def test_interrupted_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert isinstance(err, Interrupted) and err.signum == signal.SIGTERM and err.exit_code == 143


def test_cli_exits_143_on_sigterm(monkeypatch, capsys, tmp_path):
    from topo import cli
    from topo.cli import cmd_demo

    def command(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(cmd_demo, "run", command)  # the parser reads it when main() builds it
    assert cli.main(["demo", "--out", str(tmp_path / "d")]) == 143
    assert "interrupted by SIGTERM" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False


def _train(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "topo", "train", "--dataset", "digits", "--hidden", "32",
                             "--epsilon", "5", "--batch-size", "1", "--quiet", "--out", str(out), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads rank pids from /proc")
@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_launcher_stops_every_rank_and_the_run_resumes(tmp_path, signum):
    out = tmp_path / "run"
    # 500 epochs of batch size 1: ranks that kept training after the signal could never finish in time.
    proc = _train(out, "--epochs", "500", "--nproc", "2")
    try:
        deadline = time.monotonic() + 600
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.1)
        ranks = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(ranks) == 2
        t0 = time.monotonic()
        proc.send_signal(signum)
        while any(_alive(p) for p in ranks):
            # The launcher's grace period is 5 s; a rank that keeps training would take hours.
            assert time.monotonic() - t0 < 60, "ranks still running a minute after the signal"
            time.sleep(0.05)
        ranks_stopped = time.monotonic() - t0
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert "Traceback" not in err and "leaked" not in err
    assert ranks_stopped < 30
    # Resumable: the last complete checkpoint, no half-written temporary files.
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    done = len((out / "metrics.csv").read_text().splitlines()) - 1
    assert done >= 1
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 500
    resumed = _train(out, "--resume", "--epochs", str(done + 1), "--nproc", "2")
    stdout, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"epoch {done + 1}," in stdout
    assert len((out / "metrics.csv").read_text().splitlines()) - 1 == done + 1
