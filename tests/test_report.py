"""``topo report`` / analysis.report.build_report on hand-written run directories.

The HTML must be self-contained (no scripts, no external URLs, figures as data
URIs), contain every section, parse as HTML, and open in a real browser
without errors (headless Chromium when installed). Every output is written
atomically; bad run directories fail with clear errors.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import lxml.html
import pandas as pd
import pytest

import analysis.report as report
import topo
from _analysis_support import synthetic_history, write_run_dir
from analysis.report import SECTIONS, RunDirError, build_report

CSVS = ("degrees.csv", "scale_free.csv", "importance.csv", "drift.csv")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    h = synthetic_history(sizes=(64, 40, 30, 10), epsilon=4, epochs=4, seed=0,
                          informative=[27, 28, 35, 36, 19, 20, 43, 44])
    run = write_run_dir(tmp_path_factory.mktemp("run") / "digits-set", h, dataset="digits")
    ticks = []
    out = build_report(run, epochs="0,2,last", bootstrap=10, progress=ticks.append)
    return run, out, ticks


def test_report_files_and_sections(built):
    run, out, ticks = built
    assert out == run / "report.html" and out.is_file()
    for name in CSVS:
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp")), "temporary files left behind"
    assert ticks[-1] == "written" and len(ticks) == 2 * 3 * 3 + 6
    doc = lxml.html.parse(str(out)).getroot()
    ids = [s.get("id") for s in doc.iter("section")]
    assert ids == list(SECTIONS)
    assert not doc.findall(".//script") and not doc.findall(".//link") and not doc.findall(".//iframe")
    imgs = doc.findall(".//img")
    assert len(imgs) == 4 + 5 and all(i.get("src").startswith("data:image/png;base64,") for i in imgs)
    assert "input degree over epochs" in [i.get("alt") for i in imgs]
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    for a in doc.iter("a"):
        assert a.get("href").startswith("#")


def test_report_tables_are_consistent(built):
    run, out, _ = built
    sf = pd.read_csv(run / "scale_free.csv", keep_default_na=False, na_values=[""])
    assert sorted(sf.epoch.unique()) == [0.0, 2.0, 4.0]
    assert len(sf) == 3 * 3 * 2
    deg = pd.read_csv(run / "degrees.csv")
    assert sorted(deg.epoch.unique()) == [0.0, 2.0, 4.0]
    dr = pd.read_csv(run / "drift.csv")
    assert len(dr) == 5 * 3
    # In-time over-parameterisation: the layer's density at epoch 0, then it only grows while edges rewire.
    sizes = (64, 40, 30, 10)
    for k, layer in dr.groupby("layer"):
        layer = layer.sort_values("epoch")
        assert layer.itop_rate.iloc[0] == pytest.approx(layer.num_edges.iloc[0] / (sizes[k] * sizes[k + 1]))
        assert layer.itop_rate.is_monotonic_increasing and layer.itop_rate.iloc[-1] > layer.itop_rate.iloc[0]
    imp = pd.read_csv(run / "importance.csv")
    assert {"feature", "degree", "degree_rank", "strength", "strength_rank"} <= set(imp.columns)
    assert sorted(imp.feature) == list(range(64))
    doc = lxml.html.parse(str(out)).getroot()
    sel = doc.get_element_by_id("selection").text_content()
    assert "topo(degree)" in sel and "random" in sel and "variance" in sel
    # The edges table: one row per epoch, one column per layer, the counts of History.frame().
    rows = doc.get_element_by_id("edges").findall(".//tr")
    frame = topo.History.load(run / "history.npz").frame()
    cells = [[c.text_content() for c in r.findall("td")] for r in rows[1:]]
    assert [[float(x) for x in c] for c in cells] == [
        [e] + frame[frame.epoch == e].num_edges.astype(float).tolist() for e in sorted(frame.epoch.unique())]
    verdict = doc.get_element_by_id("scale-free").find_class("verdict")[0].text_content()
    # random rewiring of an ER graph: the report must not call it scale-free
    assert verdict.startswith("Not scale-free")


def test_report_opens_in_headless_chromium(built, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    _, out, _ = built
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", out.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = lxml.html.fromstring(res.stdout)
    assert [s.get("id") for s in dom.iter("section")] == list(SECTIONS)
    assert len(dom.findall(".//img")) == 7
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "shot.png"
    res = subprocess.run(cmd[:-2] + ["--window-size=1200,3000", f"--screenshot={shot}", out.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.stat().st_size > 10_000


def test_cli_report_and_errors(built, tmp_path, capsys):
    from topo.cli import main

    run, _, _ = built
    target = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(target), "--epochs", "0,last", "--bootstrap", "5",
                 "--quiet"]) == 0
    assert target.is_file() and f"wrote {target}" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(run), "--epochs", "0,soon", "--out", str(tmp_path / "x.html")]) == 2
    assert "'soon'" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
    assert main(["report", str(run), "--bootstrap", "-3"]) == 2
    assert "--bootstrap" in capsys.readouterr().err


def test_cli_is_registered():
    res = subprocess.run([sys.executable, "-m", "topo", "report", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "RUN_DIR" in res.stdout and "--bootstrap" in res.stdout


def test_incomplete_run_dirs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="missing metrics.csv, history.npz"):
        build_report(tmp_path / "empty")
    h = synthetic_history(sizes=(9, 5), epsilon=2, epochs=1)
    run = write_run_dir(tmp_path / "bad", h)
    (run / "metrics.csv").write_text("loss\n1.0\n")
    with pytest.raises(RunDirError, match="no 'epoch' column"):
        build_report(run)
    run = write_run_dir(tmp_path / "bad2", h)
    (run / "history.npz").write_bytes(b"not a zip")
    with pytest.raises(RunDirError, match="history"):
        build_report(run)
    with pytest.raises(ValueError, match="not in this history"):
        build_report(write_run_dir(tmp_path / "ok", h), epochs="0,9")


def test_unavailable_dataset_and_atomic_failure(tmp_path, monkeypatch):
    h = synthetic_history(sizes=(16, 8, 3), epsilon=2, epochs=2, weights=False)
    run = write_run_dir(tmp_path / "run", h, dataset="no-such-dataset")
    out = build_report(run, bootstrap=5, epochs="0,last")
    doc = lxml.html.parse(str(out)).getroot()
    assert "Not evaluated: dataset 'no-such-dataset'" in doc.get_element_by_id("selection").text_content()
    assert "strength" not in pd.read_csv(run / "importance.csv").columns  # unweighted run
    # a failure while drawing leaves the previous report untouched and no temporary files
    before = out.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("drawing failed")
    monkeypatch.setattr(report.build.plots, "drift_figure", boom)
    with pytest.raises(RuntimeError, match="drawing failed"):
        build_report(run, bootstrap=5, epochs="0,last")
    assert out.read_bytes() == before
    assert not [p for p in Path(run).iterdir() if p.name.endswith(".tmp")]
