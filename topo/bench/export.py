"""Export speed and memory (issue 6): static and dynamic GEXF against their targets.

Targets: static GEXF of a 1M-edge topology in <= 5 s and <= 150 MB; dynamic GEXF of a 10-epoch SET
history of the 784-1000-1000-1000-10 network (epsilon 20) in <= 10 s. Prints each measurement with
its ratio to the target (< 1 meets it).

Memory is measured twice: ``tracemalloc`` peak (every Python and numpy allocation of the write) and
the peak growth of the process RSS over the write, sampled from /proc/self/statm every 5 ms (Linux).

Run: ``topo bench export [--edges 1000000] [--epochs 10] [--seed 0] [--keep DIR]``
(or ``python benchmarks/bench_export.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

import topo
import topo.io
from topo.rules import SET

from ._measure import RssPeak

__all__ = ["measure", "set_history", "add_arguments", "run", "main"]

HELP = "export speed and memory: static GEXF of 1M edges, dynamic GEXF of a 10-epoch SET history"
MB = 1 << 20


def measure(fn) -> dict:
    """Time and RSS growth of a first (cold) call, tracemalloc peak of a second one."""
    with RssPeak() as rss:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "cpu": cpu, "traced_mb": peak / MB, "rss_mb": rss.growth / MB}


def set_history(epochs: int, seed: int) -> tuple[topo.History, str]:
    """A SET run without training: each epoch SET rewires every layer, surviving weights drift."""
    gen = torch.Generator().manual_seed(seed)
    t = topo.erdos_renyi([784, 1000, 1000, 1000, 10], epsilon=20, seed=seed)
    t = t.with_weights([torch.randn(g.num_edges, generator=gen) * 0.1 for g in t.layers])
    h = topo.History(t)
    rule, how = SET(0.3), "topo.rules.SET(0.3)"
    for e in range(1, epochs + 1):
        changes, weights, layers = [], [], []
        for k, g in enumerate(t.layers):
            r = rule(g, seed * 1000 + e * 10 + k)  # births weigh 0, survivors keep theirs
            new, births, deaths = r.graph, r.births, r.deaths
            w = new.weight + torch.randn(new.num_edges, generator=gen) * 0.01  # a training drift
            changes.append(topo.LayerChange(births, deaths))
            weights.append(w)
            layers.append(new.with_weight(w))
        h.record(e, changes, weights)
        t = topo.Topology(layers)
    return h, how


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edges", type=int, default=1_000_000, help="edges of the static topology")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the SET history (default: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="directory to keep the written files in (default: a temp dir)")


def run(args) -> int:
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times inflate with it)")
    out = Path(args.keep or tempfile.mkdtemp(prefix="topo-bench-export-"))
    out.mkdir(parents=True, exist_ok=True)

    side = int(round((args.edges / 2) ** 0.5 * 2 ** 0.5))  # two square layers at density 1/2
    t = topo.erdos_renyi([side, side, side], density=0.5, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t = t.with_weights([torch.randn(g.num_edges, generator=gen) for g in t.layers])
    path = out / "static.gexf"
    r = measure(lambda: topo.io.write_gexf(t, path))
    sizes = "-".join(map(str, t.sizes))
    print(f"static GEXF, {t.num_edges:,} edges ({sizes}), {path.stat().st_size / MB:.0f} MB file:")
    print(f"  time {r['seconds']:.2f} s wall, {r['cpu']:.2f} s CPU (target 5 s, ratio {r['seconds'] / 5:.2f})")
    print(f"  memory: tracemalloc peak {r['traced_mb']:.1f} MB (target 150 MB, ratio {r['traced_mb'] / 150:.2f}), "
          f"RSS growth {r['rss_mb']:.1f} MB (ratio {r['rss_mb'] / 150:.2f})")

    t0 = time.perf_counter()
    h, how = set_history(args.epochs, args.seed)
    built = time.perf_counter() - t0
    ever = sum(topo.History.edge_intervals(h, k)["src"].size for k in range(h.num_layers))
    path = out / "evolution.gexf"
    r = measure(lambda: topo.io.write_gexf_dynamic(h, path))
    print(f"dynamic GEXF, {args.epochs}-epoch history of 784-1000-1000-1000-10 (eps 20; {how}; built in "
          f"{built:.1f} s): {h.final.num_edges:,} live edges, {ever:,} edge lives, "
          f"{path.stat().st_size / MB:.0f} MB file:")
    print(f"  time {r['seconds']:.2f} s wall, {r['cpu']:.2f} s CPU (target 10 s, ratio {r['seconds'] / 10:.2f})")
    print(f"  memory: tracemalloc peak {r['traced_mb']:.1f} MB, RSS growth {r['rss_mb']:.1f} MB")
    if not args.keep:
        for f in out.iterdir():
            f.unlink()
        out.rmdir()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
