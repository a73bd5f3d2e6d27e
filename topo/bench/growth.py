"""Growth search on a wide layer: recall of the exact top-k, time and memory of every mode (issue 15 item 4).

For an ``n -> n`` Erdős–Rényi layer at each ε, the ``k = round(ζ·E)`` best
free pairs by activation cosine are found exactly (blockwise, the reference)
and with ``mode="approx"`` (FAISS and torch search backends), ``"pool"`` and
``"pool-uniform"``; each mode reports its seconds, speed-up over exact,
recall of the exact top-k, mean |cos| of its picks relative to exact, and
peak RSS growth against the ``n_in·n_out`` floats a dense score matrix would
take.

Activations (``--data``): ``lowrank`` (default) is post-ReLU activity driven
by ``--rank`` shared factors plus independent noise, as the activity of a
trained layer is; ``iid`` is ReLU of i.i.d. Gaussians, a worst case with no
structure, where every cosine is 0.5 ± O(1/√S) and the top-k is decided by
sampling noise.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from ._measure import RssPeak, write_json

HELP = "growth search on a wide layer: recall of the exact top-k vs time and memory per mode"
MB = 2 ** 20
MODES = ("approx:threshold", "approx:torch", "approx:faiss", "pool", "pool-uniform")


def activations(n: int, samples: int, data: str, rank: int, seed: int):
    """``pre, post`` ``[samples, n]`` activations (see the module notes)."""
    g = torch.Generator().manual_seed(seed)
    if data == "iid":
        return torch.relu(torch.randn(samples, n, generator=g)), torch.relu(torch.randn(samples, n, generator=g))
    z = torch.randn(samples, rank, generator=g)
    out = []
    for _ in range(2):
        w = torch.randn(rank, n, generator=g) / rank ** 0.5
        out.append(torch.relu(z @ w + 0.5 * torch.randn(samples, n, generator=g)))
    return out[0], out[1]


def _load() -> str:
    """The 1-, 5- and 15-minute load averages (other jobs on a shared machine inflate the times)."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else ""


def _timed(fn):
    with RssPeak() as rss:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    return out, seconds, rss.growth


def bench(n: int, samples: int, epsilon: float, zeta: float, data: str, rank: int, pool_factor: float,
          dim: int, seed: int = 0, modes=MODES) -> dict:
    import topo
    from topo.rules import cosine_scores
    from topo.rules.search import faiss_available

    graph = topo.erdos_renyi([n, n], epsilon=epsilon, seed=seed)[0]
    k = round(zeta * graph.num_edges)
    pre, post = activations(n, samples, data, rank, seed)
    scores = cosine_scores(pre, post)
    del pre, post
    full = n * n * 4
    print(f"{n} -> {n} layer, eps={epsilon:g}: {graph.num_edges} edges, top k={k} free pairs by |cos| "
          f"({data} activations, {samples} samples); a dense score matrix = {full / MB:.0f} MB")
    exact, t_exact, rss_exact = _timed(lambda: scores.top_nonedges(graph, k))
    truth = set(exact.tolist())
    cos_exact = scores.pairs(exact % n, exact // n).mean().item()
    out = {"n": n, "epsilon": epsilon, "edges": graph.num_edges, "k": k, "data": data, "samples": samples,
           "exact_s": t_exact, "exact_rss_growth_mb": rss_exact / MB, "modes": {}}
    print(f"  {'exact':14s} {t_exact:8.2f} s  recall 1.000  peak RSS +{rss_exact / MB:7.1f} MB  {_load()}")
    for spec in modes:
        mode, _, backend = spec.partition(":")
        if backend == "faiss" and not faiss_available():
            print(f"  {spec:14s} skipped: faiss is not installed (pip install topo[faiss])")
            continue
        kw = {"search_backend": backend or "auto", "search_dim": dim} if mode == "approx" else {}
        got, t, rss = _timed(lambda mode=mode, kw=kw: scores.top_nonedges(
            graph, k, mode=mode, pool_factor=pool_factor, generator=torch.Generator().manual_seed(seed), **kw))
        recall = len(truth & set(got.tolist())) / k
        cos = scores.pairs(got % n, got // n).mean().item() / cos_exact
        out["modes"][spec] = {"seconds": t, "speedup": t_exact / t, "recall": recall, "cos_vs_exact": cos,
                              "rss_growth_mb": rss / MB, "rss_vs_dense": rss / full}
        print(f"  {spec:14s} {t:8.2f} s  recall {recall:.3f}  mean|cos| {cos:.3f}x exact  speed-up "
              f"{t_exact / t:6.1f}x  peak RSS +{rss / MB:7.1f} MB ({rss / full:.3f} of dense)  {_load()}")
    for spec, r in out["modes"].items():
        if spec.startswith("approx"):
            print(f"  {spec}: recall >= 0.9 {'met' if r['recall'] >= 0.9 else 'NOT met'} ({r['recall']:.3f}); "
                  f"speed-up >= 10x {'met' if r['speedup'] >= 10 else 'NOT met'} ({r['speedup']:.1f}x); "
                  f"memory {r['rss_vs_dense']:.3f} of a dense score matrix")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=20000, help="layer width n (n -> n; default 20000)")
    p.add_argument("--samples", type=int, default=4096, help="activation samples (default 4096)")
    p.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 20.0], help="layer epsilons (default 1 20)")
    p.add_argument("--zeta", type=float, default=0.2, help="k = round(zeta * edges) (default 0.2, CTRE's)")
    p.add_argument("--data", choices=("lowrank", "iid"), default="lowrank", help="activations (default lowrank)")
    p.add_argument("--rank", type=int, default=32, help="shared factors of --data lowrank (default 32)")
    p.add_argument("--pool-factor", type=float, default=10.0, help="candidates per grown edge (default 10)")
    p.add_argument("--dim", type=int, default=128, help="search subspace dimension of mode approx (default 128)")
    p.add_argument("--modes", nargs="+", default=list(MODES),
                   help="modes to compare with exact; approx:BACKEND picks search_backend (threshold = auto, the "
                        "global threshold search; torch = per-neuron lists; faiss = IVF lists)")
    p.add_argument("--threads", type=int, default=2, help="torch (and FAISS) threads (default 2)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--quick", action="store_true", help="small sizes, to check that the benchmark runs")


def run(args) -> int:
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n, args.samples, args.epsilon = 3000, 512, [1.0]
    print(f"topo bench growth: {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, python {platform.python_version()}")
    results = [bench(args.n, args.samples, e, args.zeta, args.data, args.rank, args.pool_factor, args.dim,
                     modes=args.modes) for e in args.epsilon]
    if args.json:
        write_json(args.json, results)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))
