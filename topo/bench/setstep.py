"""Cost of one SET step per edge (issue 16 item 6: <= 0.2 us per edge at 100M edges), new vs old code.

For each size an ``n -> n`` SparseLinear at SET's ``epsilon`` (``n = edges / (2 epsilon)``,
the shape of ``topo bench scale``'s hidden layers) gets trained-like weights, a
gradient and an SGD momentum buffer; then one :class:`~topo.Evolver` step with
``SET(zeta)`` (prune, regrow, rewire, optimizer state, History record) is timed, and,
on an identical copy with the same seed, the pre-rewrite implementation of the same
step (:mod:`topo.bench._set_reference`). Both must give the same edges, values and
momentum; the table prints CPU microseconds per edge and the ratio. A warm-up step on a
small layer first loads the numba kernels (their one-off cost, ~1 s, is printed apart).

The Evolver's seed differs from the graph's: with the same seed, the first regrowth
draws exactly the keys that built the Erdos-Renyi layer and rejects most of them.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import torch

__all__ = ["measure", "add_arguments", "run", "main"]

HELP = "one SET step's CPU cost per edge (Evolver: prune, regrow, rewire, optimizer state, History), new vs old"


def _layer(edges: int, epsilon: float, seed: int):
    import topo

    n = max(2, round(edges / (2 * epsilon)))
    g = torch.Generator().manual_seed(seed)
    lin = topo.nn.SparseLinear(n, n, epsilon=epsilon, seed=seed, backend="csr")
    with torch.no_grad():
        lin.weight.normal_(0.0, 0.05, generator=g)  # trained-like: few ties, both signs
    lin.weight.grad = torch.randn(lin.num_edges, generator=g)
    opt = torch.optim.SGD(lin.parameters(), lr=0.01, momentum=0.9)
    opt.step()  # a momentum buffer to carry
    lin.weight.grad = torch.randn(lin.num_edges, generator=g)
    return lin, opt


def _copy(lin, opt):
    lin2 = copy.deepcopy(lin)
    lin2.weight.grad = lin.weight.grad.clone()  # deepcopy leaves .grad behind
    opt2 = torch.optim.SGD(lin2.parameters(), lr=0.01, momentum=0.9)
    opt2.state[lin2.weight]["momentum_buffer"] = opt.state[lin.weight]["momentum_buffer"].clone()
    return lin2, opt2


def measure(edges: int, epsilon: float = 5.0, zeta: float = 0.3, seed: int = 0, reference: bool = True,
            history_weights: str = "none", later: int = 0) -> dict:
    """Time one new and (``reference``) one old SET step on the same ``n -> n`` layer; a dict of numbers.

    ``later`` more new steps follow on the rewired layer (as at the next epochs of a run); their CPU
    seconds are in ``later_cpu_s``. The first step of a process also pays its first touches of memory.
    """
    import topo

    from ._set_reference import reference_history_keys, reference_step

    lin, opt = _layer(edges, epsilon, seed)
    out = {"edges": lin.num_edges, "n": lin.in_features, "epsilon": epsilon, "zeta": zeta}
    old = _copy(lin, opt) if reference else None
    ev = topo.Evolver(lin, topo.rules.SET(zeta), optimizer=opt, seed=seed + 1, history_weights=history_weights)
    t, c = time.perf_counter(), time.process_time()
    ev.step(epoch=1)
    out["new_s"], out["new_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    if old is not None:
        lin2, opt2 = old
        keys = reference_history_keys(lin2)
        t, c = time.perf_counter(), time.process_time()
        reference_step(lin2, opt2, zeta, torch.Generator().manual_seed(seed + 1), keys)
        out["old_s"], out["old_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        out["identical"] = bool(
            torch.equal(lin.edge_index, lin2.edge_index) and torch.equal(lin.weight, lin2.weight)
            and torch.equal(lin.weight.grad, lin2.weight.grad)
            and torch.equal(opt.state[lin.weight]["momentum_buffer"], opt2.state[lin2.weight]["momentum_buffer"]))
        del old, lin2, opt2
    out["later_cpu_s"] = []
    for epoch in range(2, 2 + later):
        lin.weight.grad = torch.randn(lin.num_edges, generator=torch.Generator().manual_seed(seed + epoch))
        c = time.process_time()
        ev.step(epoch=epoch)
        out["later_cpu_s"].append(time.process_time() - c)
    return out


def _warm_up() -> float:
    """Load the numba kernels (compiled once, cached on disk) with a step on a small layer; its CPU seconds."""
    c = time.process_time()
    measure(20_000, reference=False)
    return time.process_time() - c


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edges", type=int, nargs="+", default=[1_000_000, 10_000_000],
                   help="edges of the n -> n layer, one measurement each (default: 1M 10M)")
    p.add_argument("--epsilon", type=float, default=5.0, help="SET's epsilon, sets n = edges / (2 eps) (default 5)")
    p.add_argument("--zeta", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--history-weights", default="none", help="the Evolver's History weights (default none)")
    p.add_argument("--later", type=int, default=2,
                   help="new-code steps timed after the first, on the rewired layer (default 2; 0: none)")
    p.add_argument("--no-reference", action="store_true", help="skip the old implementation (memory, time)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 keeps torch's default)")
    p.add_argument("--tune-allocator", action="store_true",
                   help="topo.nn.tune_cpu_allocator() first: glibc keeps freed memory, so later steps reuse "
                        "faulted-in pages (what a long training run gets with it)")
    p.add_argument("--json", help="also write the rows to this JSON file")


def run(args) -> int:
    from ..errors import ParameterError
    from ._measure import write_json

    if any(e < 1 for e in args.edges) or args.epsilon <= 0 or args.threads < 0:
        raise ParameterError(f"--edges must be positive, --epsilon > 0 and --threads >= 0, got {args.edges}, "
                             f"{args.epsilon}, {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False
    if getattr(args, "tune_allocator", False):
        from ..nn.allocator import tune_cpu_allocator

        tuned = tune_cpu_allocator()
    tag = " (glibc allocator tuned)" if tuned else ""
    print(f"SET step per edge{tag}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"warm-up (numba kernels, a 20k-edge step): {_warm_up():.2f} s CPU")
    print(f"{'edges':>12} {'n':>10} {'new s':>8} {'new cpu':>8} {'us/edge':>8} {'old s':>8} {'old cpu':>8} "
          f"{'us/edge':>8} {'speed-up':>8} identical  later steps us/edge")
    rows = []
    for e in args.edges:
        r = measure(e, args.epsilon, args.zeta, args.seed, not args.no_reference, args.history_weights,
                    args.later)
        r["new_us_per_edge"] = r["new_cpu_s"] / r["edges"] * 1e6
        line = (f"{r['edges']:>12,} {r['n']:>10,} {r['new_s']:>8.3f} {r['new_cpu_s']:>8.3f} "
                f"{r['new_us_per_edge']:>8.3f}")
        if "old_s" in r:
            r["old_us_per_edge"] = r["old_cpu_s"] / r["edges"] * 1e6
            r["speedup"] = r["old_cpu_s"] / r["new_cpu_s"]
            line += (f" {r['old_s']:>8.3f} {r['old_cpu_s']:>8.3f} {r['old_us_per_edge']:>8.3f} "
                     f"{r['speedup']:>7.1f}x {r['identical']!s:>9}")
        else:
            line += " " * 46
        if r["later_cpu_s"]:
            r["later_us_per_edge"] = [t / r["edges"] * 1e6 for t in r["later_cpu_s"]]
            line += "  " + " ".join(f"{u:.3f}" for u in r["later_us_per_edge"])
        print(line, flush=True)
        rows.append(r)
    worst = max(r["new_us_per_edge"] for r in rows)
    steady = [min(r["later_us_per_edge"]) for r in rows if r.get("later_us_per_edge")]
    if steady:
        print(f"largest later-step cost {max(steady):.3f} us/edge (best of the later steps of each size)")
    print(f"largest first-step cost {worst:.3f} us/edge (target <= 0.2 at 100M edges: ratio to target "
          f"{worst / 0.2:.2f}); "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        write_json(args.json, rows)
    return 0 if all(r.get("identical", True) for r in rows) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))
