"""Analysis speed (issue 5): degree tables of a 10M-edge history and a full ``topo report``.

Targets: degree tables of one epoch of a 10M-edge history in <= 2 s; a full ``topo report`` of the
Fashion-MNIST SET run (10 epochs, 784-1000-1000-1000-10) in <= 60 s with the default bootstrap.
Prints each measurement with its ratio to the target (< 1 meets it).

The report is timed on ``--run DIR`` (a run directory written by ``topo train --dataset fashion-mnist
--epochs 10``); without one, the benchmark trains it first into ``runs/bench-analysis-fmnist-set``
(minutes), or with ``--synthetic`` builds a 10-epoch history of the same shape with
``topo.rules.SET(0.3)`` and no training (the report's work is the same; importance means nothing).

The ``analysis`` package is imported inside :func:`run` only, as ``topo report`` does: topo never
imports analysis at module level (the dependency points the other way).

Run: ``topo bench analysis [--run DIR | --synthetic] [--edges 10000000] [--bootstrap N]``
(or ``python benchmarks/bench_analysis.py``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import topo
from topo.rules import RandomGrow, RandomPrune, Rule
from topo.runs import RunDir

__all__ = ["big_history", "synthetic_run", "add_arguments", "run", "main"]

HELP = "analysis speed: degree tables of a 10M-edge history, a full topo report of a SET run"


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def big_history(edges: int, seed: int, steps: int = 2) -> topo.History:
    """Two square layers at density 1/2 holding ``edges`` edges; ``steps`` rewirings of 30 % each."""
    side = int(round((edges / 2 / 0.5) ** 0.5))
    gen = torch.Generator().manual_seed(seed)
    t = topo.erdos_renyi([side, side, side], density=0.5, seed=seed)
    t = t.with_weights([torch.randn(g.num_edges, generator=gen) for g in t.layers])
    h = topo.History(t)
    rule = Rule(prune=RandomPrune(0.3), grow=RandomGrow())  # births weigh 0, survivors keep theirs
    for e in range(1, steps + 1):
        results = [rule(g, gen) for g in t.layers]
        h.record(e, [topo.LayerChange(r.births, r.deaths) for r in results], [r.graph.weight for r in results])
        t = topo.Topology([r.graph for r in results])
    return h


def synthetic_run(out: Path, seed: int) -> Path:
    """A 10-epoch SET history of 784-1000-1000-1000-10 (ε = 20) without training, as a run directory."""
    from topo.rules import SET

    gen = torch.Generator().manual_seed(seed)
    t = topo.erdos_renyi([784, 1000, 1000, 1000, 10], epsilon=20, seed=seed)
    t = t.with_weights([torch.randn(g.num_edges, generator=gen) * 0.1 for g in t.layers])
    h, rule = topo.History(t), SET(0.3)
    for e in range(1, 11):
        changes, weights, layers = [], [], []
        for k, g in enumerate(t.layers):
            r = rule(g, seed * 1000 + e * 10 + k)
            w = r.graph.weight + torch.randn(r.graph.num_edges, generator=gen) * 0.01
            changes.append(topo.LayerChange(r.births, r.deaths))
            weights.append(w)
            layers.append(r.graph.with_weight(w))
        h.record(e, changes, weights)
        t = topo.Topology(layers)
    return _write_run_dir(out, h, dataset="fashion-mnist")


def _write_run_dir(path: Path, history: topo.History, dataset: str) -> Path:
    """The files ``topo report`` reads, as ``topo train`` lays them out; metrics are placeholders."""
    from topo.runs import files

    path = files.check_run_dir(path, resume=False)
    frame = history.frame()
    files.write_json(path / files.CONFIG, {"dataset": dataset, "sizes": list(history.initial.sizes),
                                            "rule": "set", "seed": 0, "epochs": len(history) - 1,
                                            "epsilon": 20, "zeta": 0.3, "synthetic": True})
    rows = [{"epoch": int(e), "train_loss": 0.0, "train_acc": 0.0, "test_loss": 0.0, "test_acc": 0.0,
             "num_edges": int(frame[frame.epoch == e].num_edges.sum()), "train_seconds": 0.0,
             "evolve_seconds": 0.0} for e in history.epochs if e > 0]
    files.write_metrics(path / files.METRICS, rows)
    history.save(path / files.HISTORY)
    history.final.save(path / files.TOPOLOGY)
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edges", type=int, default=10_000_000, help="edges of the big history's epochs")
    p.add_argument("--run", help="Fashion-MNIST SET run directory to report on")
    p.add_argument("--synthetic", action="store_true", help="report on an untrained SET history instead")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="bootstrap resamples of the report (default: topo report's, 250)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    # Imported here, never at module level: the dependency points from analysis to topo.
    import analysis
    from analysis.report import DEFAULT_BOOTSTRAP, build_report

    if args.bootstrap is None:
        args.bootstrap = DEFAULT_BOOTSTRAP
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times inflate with it)")

    h, build_s, _ = timed(lambda: big_history(args.edges, args.seed))
    print(f"history: sizes {list(h.initial.sizes)}, {h.final.num_edges:,} edges per epoch, epochs {h.epochs} "
          f"(built in {build_s:.1f} s)")
    for label, epochs, strength in (
            ("last epoch, degree + strength", ["last"], True),
            ("epoch 1, degree + strength (topology replayed by History)", [1], True),
            ("last epoch, degree only (births/deaths bincounts)", ["last"], False),
            ("epoch 1, degree only (births/deaths bincounts)", [1], False)):
        d, wall, cpu = timed(lambda epochs=epochs, strength=strength: analysis.degrees(h, epochs=epochs,
                                                                                   strength=strength))
        assert int(d[d.side == "in"].degree.sum()) == h.frame().query(f"epoch == {h.resolve_epoch(epochs[0])}"
                                                                        ).num_edges.sum()
        print(f"degree table, {label}: {len(d):,} rows in {wall:.2f} s (CPU {cpu:.2f} s) "
              f"-> ratio {wall / 2.0:.2f} of the 2 s target")
    t = h.final
    d, wall, cpu = timed(lambda: analysis.degrees(t))
    s, wall2, _ = timed(lambda: analysis.degree_summary(d))
    print(f"degree table of a 10M-edge Topology: {wall:.2f} s (CPU {cpu:.2f} s), summary {wall2:.2f} s "
          f"-> ratio {(wall + wall2) / 2.0:.2f}")
    h = t = d = None  # free the big history before the report (closures above still name them)

    if args.run:
        run = Path(args.run)
    elif args.synthetic:
        run, _, _ = timed(lambda: synthetic_run(Path(tempfile.mkdtemp(prefix="topo-bench-analysis-")) / "run",
                                                args.seed))
        print(f"synthetic SET run (untrained) written to {run}")
    else:
        run = Path("runs/bench-analysis-fmnist-set")
        if not (run / RunDir.HISTORY).is_file():
            print(f"training the Fashion-MNIST SET run into {run} (10 epochs; minutes) ...", flush=True)
            subprocess.run([sys.executable, "-m", "topo", "train", "--dataset", "fashion-mnist", "--epochs", "10",
                            "--out", str(run), "--quiet"], check=True)
    sizes = RunDir(run).read_history().initial.sizes
    out, wall, cpu = timed(lambda: build_report(run, bootstrap=args.bootstrap, seed=args.seed, progress=False))
    print(f"topo report of {run} (sizes {list(sizes)}, bootstrap {args.bootstrap}): {wall:.1f} s "
          f"(CPU {cpu:.1f} s) -> ratio {wall / 60.0:.2f} of the 60 s target; {out} "
          f"({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
