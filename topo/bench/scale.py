"""Training and evolution cost of SET-MLPs from 10 thousand to 10 million neurons.

Each size is ``784 → W → W → W → 10`` (``--depth`` hidden layers of equal width
``W``, so that the network has ``--neurons`` neurons in all), Erdős–Rényi at
SET's ``ε`` (``--epsilon``). Every size runs in a fresh process, which builds
the network, times training steps on a synthetic batch (forward, backward, SGD
with momentum and weight decay), times one :class:`~topo.Evolver` step with
``SET(ζ=0.3)`` (magnitude pruning, random regrowth) and one more training step
on the rewired network, and reports its peak RSS (VmHWM) next to
:func:`topo.estimate_memory`'s prediction. The table's per-edge columns show
whether the cost is linear in the edges.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

__all__ = ["DEFAULT_NEURONS", "hidden_width", "measure_size", "run_isolated", "run_scale", "add_arguments",
           "run", "main"]

HELP = "train/evolve time and peak RSS of SET-MLPs from 10k to 10M neurons (cost per edge, memory estimate)"
DEFAULT_NEURONS = (10_000, 100_000, 1_000_000, 3_000_000, 10_000_000)


def hidden_width(neurons: int, n_in: int = 784, n_out: int = 10, depth: int = 3) -> int:
    """Width of each of ``depth`` equal hidden layers so that the network has ``neurons`` neurons.

    Examples
    --------
    >>> hidden_width(10_000_000)
    3333068
    """
    w = (neurons - n_in - n_out) // depth
    if w < 1:
        from ..errors import ParameterError

        raise ParameterError(f"{neurons} neurons leave no room for {depth} hidden layers between {n_in} inputs "
                             f"and {n_out} outputs")
    return w


def _available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _maxrss() -> int:
    """Peak RSS of this process in bytes: VmHWM, else ``ru_maxrss``.

    ``ru_maxrss`` survives ``execve``: a process started by a big parent (a pytest run)
    reports at least the parent's peak. VmHWM belongs to the process's own memory map.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_size(neurons: int, epsilon: float = 5.0, batch: int = 32, steps: int = 3, depth: int = 3,
                 n_in: int = 784, n_out: int = 10, backend: str = "csr", dropout: float = 0.0,
                 zeta: float = 0.3, seed: int = 0, threads: int | None = 1, checkpoint: bool = False,
                 history_weights: str = "all") -> dict:
    """Measure one size in this process (see the module doc); returns a dict of numbers.

    ``threads`` sets torch's intra-op threads (``None``: leave torch's default). One
    thread is the default because on a shared machine OpenMP threads that wait for a
    busy core make timings erratic by orders of magnitude.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)

    import topo
    from topo import estimate_memory

    w = hidden_width(neurons, n_in, n_out, depth)
    sizes = [n_in] + [w] * depth + [n_out]
    out = {"neurons": sum(sizes), "width": w, "epsilon": epsilon, "batch": batch, "threads": torch.get_num_threads(),
           "rss_start": _rss()}
    t = time.perf_counter()
    topology = topo.erdos_renyi(sizes, epsilon=epsilon, seed=seed)
    out["edges"] = topology.num_edges
    model = topo.compile(topology, dropout=dropout, backend=backend, seed=seed)
    model.checkpoint_activations = checkpoint
    del topology
    out["build_s"] = time.perf_counter() - t
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, n_in, generator=g)
    y = torch.randint(0, n_out, (batch,), generator=g)

    def step() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss is {float(loss)}")
        return time.perf_counter() - t0, time.process_time() - c0

    out["first_step_s"] = step()[0]  # builds the CSR structures
    times = [step() for _ in range(steps)]
    out["step_s"] = statistics.median(t for t, _ in times)
    # CPU seconds of this process: what the work costs, whatever else shares the cores.
    out["step_cpu_s"] = statistics.median(c for _, c in times)
    out["us_per_sample"] = out["step_s"] / batch * 1e6
    out["rss_after_train"] = _rss()
    out["peak_train"] = _maxrss()
    t = time.perf_counter()
    evolver = topo.Evolver(model, topo.rules.SET(zeta), optimizer=opt, seed=seed, history_weights=history_weights)
    out["evolver_init_s"] = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    summary = evolver.step(epoch=1)
    out["evolve_s"], out["evolve_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["births"] = int(sum(r["births"] for r in summary))
    out["step_after_evolve_s"] = step()[0]
    out["peak"] = _maxrss()
    est = estimate_memory(sizes, epsilon=epsilon, batch=batch, optimizer="sgd-momentum", dropout=dropout,
                          backend=backend, history_steps=1, history_weights=history_weights, checkpoint=checkpoint)
    out.update(est_total=est.total, est_runtime=est.runtime, est_train=est.train_peak, est_parameters=est.parameters,
               parameters=sum(p.numel() * p.element_size() for p in model.parameters()))
    return out


def run_isolated(neurons: int, timeout: float | None = None, **kwargs) -> dict:
    """:func:`measure_size` in a fresh Python process (so peak RSS is this size's alone)."""
    cfg = json.dumps({"neurons": neurons, **kwargs})
    code = ("import json, sys; from topo.bench.scale import measure_size; "
            "print('@@' + json.dumps(measure_size(**json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, cfg], capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"neurons": neurons, "error": f"exit {proc.returncode}: " + " | ".join(tail)}


def _fmt_gib(n) -> str:
    return f"{n / 2**30:.2f}"


def run_scale(neurons=DEFAULT_NEURONS, **kwargs) -> list[dict]:
    """Measure every size (each isolated) and print the table; returns the rows."""
    for n in neurons:
        hidden_width(n, depth=kwargs.get("depth", 3))  # every size is valid before the first one runs
    rows = []
    head = (f"{'neurons':>11} {'edges':>12} {'build s':>8} {'step s':>8} {'step cpu':>8} {'us/sample':>10} "
            f"{'ns/edge/smp':>11} {'evolve s':>9} {'evo cpu':>8} {'ns/edge evo':>11} {'peak GiB':>9} {'est GiB':>8} "
            f"{'est err':>8}")
    print(head, flush=True)
    from .. import estimate_memory

    for n in neurons:
        w = hidden_width(n, depth=kwargs.get("depth", 3))
        est = estimate_memory([784] + [w] * kwargs.get("depth", 3) + [10], epsilon=kwargs.get("epsilon", 5.0),
                              batch=kwargs.get("batch", 32), backend=kwargs.get("backend", "csr"),
                              dropout=kwargs.get("dropout", 0.0), checkpoint=kwargs.get("checkpoint", False),
                              history_weights=kwargs.get("history_weights", "all"))
        free = _available()
        if free is not None and est.total > 0.9 * free:
            rows.append({"neurons": n, "skipped": True, "error": f"skipped: needs ~{est.total / 2**30:.1f} GiB "
                                                f"(topo.estimate_memory), {free / 2**30:.1f} GiB available"})
            print(f"{n:>11,} {rows[-1]['error']}", flush=True)
            continue
        r = run_isolated(n, **kwargs)
        rows.append(r)
        if "error" in r:
            print(f"{n:>11,} failed: {r['error']}", flush=True)
            continue
        # Per-edge costs from CPU time: wall time on a shared machine also counts the waits for a core.
        r["ns_per_edge_sample"] = r["step_cpu_s"] / r["batch"] * 1e9 / r["edges"]
        r["ns_per_edge_evolve"] = r["evolve_cpu_s"] * 1e9 / r["edges"]
        r["est_error"] = r["est_total"] / r["peak"] - 1
        print(f"{r['neurons']:>11,} {r['edges']:>12,} {r['build_s']:>8.2f} {r['step_s']:>8.3f} {r['step_cpu_s']:>8.3f} "
              f"{r['us_per_sample']:>10.1f} {r['ns_per_edge_sample']:>11.3f} {r['evolve_s']:>9.2f} "
              f"{r['evolve_cpu_s']:>8.2f} {r['ns_per_edge_evolve']:>11.1f} {_fmt_gib(r['peak']):>9} "
              f"{_fmt_gib(r['est_total']):>8} {r['est_error']:>+8.1%}", flush=True)
    ok = [r for r in rows if "error" not in r]
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        print(f"\nfrom {a['neurons']:,} to {b['neurons']:,} neurons: edges x{b['edges'] / a['edges']:.0f}, "
              f"train CPU time per sample x{b['step_cpu_s'] / a['step_cpu_s']:.0f}, "
              f"evolution CPU time x{b['evolve_cpu_s'] / a['evolve_cpu_s']:.0f}; per-edge cost ratio "
              f"(largest/smallest): "
              f"train {b['ns_per_edge_sample'] / a['ns_per_edge_sample']:.2f}, "
              f"evolve {b['ns_per_edge_evolve'] / a['ns_per_edge_evolve']:.2f} (1.00 = linear in edges)")
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--neurons", type=int, nargs="+", default=list(DEFAULT_NEURONS),
                   help="total neurons per network (default: 10k 100k 1M 3M 10M)")
    p.add_argument("--epsilon", type=float, default=5.0, help="SET's epsilon (default 5)")
    p.add_argument("--batch", type=int, default=32, help="training batch (default 32)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per size (median; default 3)")
    p.add_argument("--depth", type=int, default=3, help="hidden layers of equal width (default 3)")
    p.add_argument("--backend", default="csr", help="layer backend (default csr: the same kernel at every size)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per run (default 1: stable on a shared machine; 0 = torch's default)")
    p.add_argument("--checkpoint", action="store_true",
                   help="activation checkpointing (SparseMLP.checkpoint_activations): less memory with dropout")
    p.add_argument("--history-weights", default="all",
                   help="what the Evolver's History stores: all, every:K, none, optionally :float16 (default all)")
    p.add_argument("--json", help="also write the rows to this JSON file")


def run(args) -> int:
    from ._measure import write_json

    if any(n < 1 for n in args.neurons) or args.batch < 1 or args.steps < 1 or args.depth < 1:
        from ..errors import ParameterError

        raise ParameterError("--neurons, --batch, --steps and --depth must be positive")
    if args.threads < 0:
        from ..errors import ParameterError

        raise ParameterError(f"--threads must be >= 0, got {args.threads}")
    rows = run_scale(args.neurons, epsilon=args.epsilon, batch=args.batch, steps=args.steps, depth=args.depth,
                     backend=args.backend, dropout=args.dropout,
                     threads=args.threads or None, checkpoint=args.checkpoint, history_weights=args.history_weights)
    if args.json:
        write_json(args.json, rows)
    return 0 if all("error" not in r or r.get("skipped") for r in rows) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))
