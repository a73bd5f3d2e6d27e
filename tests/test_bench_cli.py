"""``topo bench`` reaches every benchmark module: export and analysis run on tiny inputs (no speed asserted)."""

import re

import torch

import topo
from topo.cli import main


def test_every_benchmark_module_is_a_target():
    from topo import bench

    assert {"analysis", "export", "layers", "training", "evolve", "scale", "setstep"} <= set(bench.targets())
    assert not hasattr(bench, "KNOWN_TARGETS")


def test_bench_export_runs_small(tmp_path, capsys):
    keep = tmp_path / "keep"
    assert main(["bench", "export", "--edges", "2000", "--epochs", "1", "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    edges = int(re.search(r"static GEXF, ([\d,]+) edges", out).group(1).replace(",", ""))
    assert "dynamic GEXF, 1-epoch history" in out
    # The file it timed is a real GEXF holding the edges it reported.
    assert topo.io.read_gexf(keep / "static.gexf").num_edges == edges > 1000


def test_bench_setstep_times_new_and_old_and_they_agree(tmp_path, capsys):
    import json

    out = tmp_path / "rows.json"
    assert main(["bench", "setstep", "--edges", "30000", "--json", str(out)]) == 0  # 1 if the two differ
    (row,) = json.loads(out.read_text())
    assert row["identical"] is True and row["edges"] > 20000 and row["new_us_per_edge"] > 0
    assert "load average" in capsys.readouterr().out


def test_bench_setstep_tune_allocator_in_its_own_process(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "rows.json"  # a subprocess: the tuning is process-wide and would stay in pytest's
    done = subprocess.run([sys.executable, "-m", "topo", "bench", "setstep", "--edges", "20000", "--no-reference",
                           "--later", "1", "--tune-allocator", "--json", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "(glibc allocator tuned)" in done.stdout
    (row,) = json.loads(out.read_text())
    assert len(row["later_cpu_s"]) == 1 and row["new_us_per_edge"] > 0


def test_bench_analysis_runs_on_a_run_directory(tmp_path, capsys):
    from topo.bench.analysis import _write_run_dir

    t = topo.erdos_renyi([20, 16, 4], epsilon=3, seed=0)
    gen = torch.Generator().manual_seed(0)
    t = t.with_weights([torch.randn(g.num_edges, generator=gen) for g in t.layers])
    h = topo.History(t)
    for e in (1, 2):
        results = [topo.rules.SET(0.3)(g, e * 10 + k) for k, g in enumerate(t.layers)]
        h.record(e, [topo.LayerChange(r.births, r.deaths) for r in results], [r.graph.weight for r in results])
        t = topo.Topology([r.graph for r in results])
    run = _write_run_dir(tmp_path / "run", h, dataset="synthetic")
    assert main(["bench", "analysis", "--run", str(run), "--edges", "4000", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "degree table, last epoch" in out and f"topo report of {run}" in out
    assert (run / "report.html").is_file()
