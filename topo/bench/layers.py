"""Forward+backward time of one sparse layer, for every backend and the usual alternatives.

Methods: ``csr``, ``dense`` and ``torch_sparse`` (the backends of
:class:`~topo.nn.SparseLinear`), ``dense_x_mask`` (a dense weight multiplied by a
0/1 mask: simulated sparsity) and ``torch_sparse_autograd`` (a COO weight through
``torch.sparse.mm``). ``csr_torch_ops`` is the ``csr`` backend with topo's CPU
kernels switched off (:mod:`topo.nn.kernels`): torch's own CSR ops. One step =
forward of a ``batch × n_in`` input plus backward of a fixed upstream gradient to
the input, the values and the bias. Each method
gets its input and upstream gradient in the layout it sees inside a network of
such layers: transposed views for ``csr``/``torch_sparse`` (what they produce),
row-major for the dense methods. ``csr_rowmajor_io`` is ``csr`` fed row-major
tensors, as a lone layer or a network's first layer is: it pays the transposes;
``csr_lone`` is a lone layer called exactly as a user calls it
(``x = torch.randn(batch, n_in)``, no gradient for ``x``, ``layer(x).sum().backward()``).
The rate is
``6 · edges · batch / time``; it is compared with the dense GEMM rate measured in
the same run. Cases of at least ``--isolate-cells`` cells run in a fresh process,
whose peak RSS is reported; methods that would allocate dense matrices above
``--max-dense-gib`` are skipped, not run out of memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

__all__ = ["METHODS", "measure_case", "sgemm_rate", "run_layers", "sweep_density", "add_arguments", "run",
           "main"]

HELP = "fwd+bwd time of sparse layers per backend vs dense x mask and torch's sparse autograd"
METHODS = ("csr", "csr_torch_ops", "csr_rowmajor_io", "csr_lone", "nn_linear", "dense", "torch_sparse", "dense_x_mask",
           "torch_sparse_autograd")
# Dense matrices of size n_in*n_out each method holds at its peak (weights, grads, temporaries).
_DENSE_COPIES = {"nn_linear": 3, "dense": 3, "dense_x_mask": 5, "torch_sparse_autograd": 4}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, device, repeat: int, budget_s: float = 2.0) -> list[float]:
    step()
    step()  # warm-up: caches, allocator, lazily built structures
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat or (len(times) < 3 * repeat and time.perf_counter() - start < budget_s):
        _sync(device)
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
        if len(times) >= 3 and time.perf_counter() - start > 10 * budget_s:
            break
    return times


def sgemm_rate(device="cpu", n: int = 4000, batch: int = 128, repeat: int = 20) -> float:
    """GFLOP/s of the dense product ``(batch × n) · (n × n)`` in float32 on ``device``."""
    device = torch.device(device)
    a = torch.randn(batch, n, device=device)
    w = torch.randn(n, n, device=device)
    best = min(_time(lambda: a @ w.t(), device, repeat))
    return 2 * batch * n * n / best / 1e9


def _build_step(method, layer, batch, device, gen):
    from ..nn import SparseLinear, kernels

    n_in, n_out = layer.n_in, layer.n_out
    x_leaf = torch.randn(batch, n_in, generator=gen).to(device)
    gy = torch.randn(batch, n_out, generator=gen).to(device)
    transposed = method in ("csr", "csr_torch_ops", "torch_sparse")
    if transposed:
        # The layout these layers produce and consume inside a network (see topo.nn.functional):
        # input and upstream gradient arrive as transposed views, so no transpose copy is paid.
        x_leaf, gy = x_leaf.t().contiguous(), gy.t().contiguous().t()
    x_leaf.requires_grad_()
    x = x_leaf.t() if transposed else x_leaf
    if method == "csr_lone":
        # A lone layer exactly as a user calls it: a plain row-major input that needs no gradient,
        # a scalar loss (its upstream gradient arrives as a broadcast view).
        mod = SparseLinear.from_layer_graph(layer, backend="csr", seed=0, device=device)
        x_plain = torch.randn(batch, n_in, generator=gen).to(device)

        def step():
            mod.weight.grad = mod.bias.grad = None
            mod(x_plain).sum().backward()
        return step
    if method in ("csr", "csr_torch_ops", "dense", "torch_sparse", "csr_rowmajor_io"):
        backend = "csr" if method.startswith("csr") else method
        mod = SparseLinear.from_layer_graph(layer, backend=backend, seed=0, device=device)
        params = [mod.weight, mod.bias]

        def forward():
            return mod(x)
    elif method == "nn_linear":
        # A plain dense nn.Linear of the same shape (MKL sgemm on CPU, cuBLAS on CUDA), row-major I/O.
        lin = torch.nn.Linear(n_in, n_out, device=device)
        params = [lin.weight, lin.bias]

        def forward():
            return lin(x)
    elif method == "dense_x_mask":
        mask = torch.zeros(n_out, n_in, device=device)
        mask[layer.dst.to(device), layer.src.to(device)] = 1.0
        w = torch.nn.Parameter(torch.randn(n_out, n_in, generator=gen).to(device) * 0.01)
        b = torch.nn.Parameter(torch.zeros(n_out, device=device))
        params = [w, b]

        def forward():
            return torch.nn.functional.linear(x, w * mask, b)
    elif method == "torch_sparse_autograd":
        idx = torch.stack([layer.dst, layer.src]).to(device)
        v = torch.nn.Parameter(torch.randn(layer.num_edges, generator=gen).to(device) * 0.01)
        b = torch.nn.Parameter(torch.zeros(n_out, device=device))
        params = [v, b]

        def forward():
            w = torch.sparse_coo_tensor(idx, v, (n_out, n_in), is_coalesced=True, check_invariants=False)
            return torch.sparse.mm(w, x.t()).t() + b
    else:
        raise ValueError(f"unknown method {method!r}")

    def step():
        x_leaf.grad = None
        for p in params:
            p.grad = None
        if method == "csr_torch_ops":
            # The csr backend with topo's CPU kernels off: torch's own CSR ops (MKL / cuSPARSE).
            previous = kernels.set_enabled(False)
            try:
                forward().backward(gy)
            finally:
                kernels.set_enabled(previous)
        else:
            forward().backward(gy)
    return step


def measure_case(n_in: int, n_out: int, epsilon: float | None, batch: int, method: str, device="cpu",
                 repeat: int = 10, seed: int = 0, density: float | None = None) -> dict:
    """Time one (layer, method) case in this process; returns a dict of measurements."""
    import resource

    from ..graph.generators import erdos_renyi

    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    if density is not None:
        layer = erdos_renyi([n_in, n_out], density=density, seed=seed).layers[0]
    else:
        layer = erdos_renyi([n_in, n_out], epsilon=epsilon, seed=seed).layers[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = _build_step(method, layer, batch, device, gen)
    times = _time(step, device, repeat)
    best = min(times)
    out = {"n_in": n_in, "n_out": n_out, "density": layer.density, "edges": layer.num_edges, "batch": batch,
           "method": method,
           "device": str(device), "ms": best * 1e3, "ms_median": statistics.median(times) * 1e3,
           "runs": len(times), "gflops": 6 * layer.num_edges * batch / best / 1e9,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _isolated(case: dict) -> dict:
    cmd = [sys.executable, "-m", "topo.bench.layers", "--_child", json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {**case, "skipped": f"failed: {tail[0][:120]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _skip_reason(method, n_in, n_out, device, max_dense_gib) -> str | None:
    if method == "torch_sparse":
        from ..nn import torch_sparse_available
        if not torch_sparse_available():
            return "not installed"
    if method in _DENSE_COPIES:
        gib = _DENSE_COPIES[method] * n_in * n_out * 4 / 2**30
        if gib > max_dense_gib:
            return f"skipped: needs ~{gib:.0f} GiB of dense n_in*n_out matrices"
    return None


def run_layers(sizes, epsilon=20.0, batch=128, methods=METHODS, device="cpu", repeat=10,
               max_dense_gib=4.0, isolate_cells=10**9, seed=0, sgemm_n=4000, tune_malloc=False,
               rounds=1, log=print) -> dict:
    """Measure every (size, method) case, ``rounds`` times interleaved.

    Returns ``{"sgemm_gflops": .., "cases": [..], "rounds": [[..], ..]}``: each round
    re-measures sgemm and every case in turn, so load drift hits all methods alike;
    ``cases`` holds each case's median over the rounds (of each round's best step).
    """
    device = torch.device(device)
    if tune_malloc:
        from ..nn.allocator import tune_cpu_allocator
        tune_cpu_allocator()
    per_round, rates = [], []
    for rnd in range(rounds):
        rate = sgemm_rate(device, n=sgemm_n, batch=batch)
        rates.append(rate)
        log(f"{f'round {rnd + 1}/{rounds}: ' if rounds > 1 else ''}dense sgemm ({batch}x{sgemm_n} @ "
            f"{sgemm_n}x{sgemm_n}, float32, {device}): {rate:.1f} GFLOP/s")
        cases = []
        for n_in, n_out in sizes:
            for method in methods:
                reason = _skip_reason(method, n_in, n_out, device, max_dense_gib)
                case = {"n_in": n_in, "n_out": n_out, "epsilon": epsilon, "batch": batch, "method": method,
                        "device": str(device), "repeat": repeat, "seed": seed,
                        "threads": torch.get_num_threads(), "tune_malloc": tune_malloc}
                if reason:
                    res = {**case, "skipped": reason}
                elif n_in * n_out >= isolate_cells:
                    res = _isolated(case)
                else:
                    res = {**case, **measure_case(n_in, n_out, epsilon, batch, method, device, repeat, seed)}
                    res.pop("peak_rss_mib")  # process-wide peak, meaningless outside an isolated run
                res["sgemm_gflops"] = rate
                cases.append(res)
                log(_fmt_case(res, rate))
        per_round.append(cases)
    merged = []
    for i, first in enumerate(per_round[0]):
        runs = [r[i] for r in per_round if "skipped" not in r[i]]
        if "skipped" in first or not runs:
            merged.append(first)
            continue
        med = {**first, "ms": statistics.median(r["ms"] for r in runs),
               "ms_rounds": [r["ms"] for r in runs]}
        med["gflops"] = 6 * med["edges"] * med["batch"] / med["ms"] / 1e6
        merged.append(med)
    return {"sgemm_gflops": statistics.median(rates), "sgemm_rounds": rates, "device": str(device),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "tune_malloc": tune_malloc,
            "cases": merged, "rounds": per_round}


def _fmt_case(r: dict, rate: float) -> str:
    head = f"{r['n_in']:>6}->{r['n_out']:<6} {r['method']:<22}"
    if "skipped" in r:
        return f"{head} {r['skipped']}"
    mem = f"  peak RSS {r['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in r else ""
    if "peak_cuda_mib" in r:
        mem += f"  peak CUDA {r['peak_cuda_mib']:.0f} MiB"
    return (f"{head} {r['ms']:9.2f} ms (median {r['ms_median']:.2f})  {r['gflops']:7.1f} GFLOP/s  "
            f"{100 * r['gflops'] / rate:5.1f}% of sgemm  edges={r['edges']}{mem}")


def _median_ratio(result: dict, size, num: str, den: str) -> tuple[float, list[float]] | None:
    """Median over rounds of ``num``'s time / ``den``'s time, each pair taken in the same round."""
    vals = []
    for cases in result.get("rounds") or [result["cases"]]:
        by = {c["method"]: c for c in cases if (c["n_in"], c["n_out"]) == size and "skipped" not in c}
        if num in by and den in by:
            vals.append(by[num]["ms"] / by[den]["ms"])
    return (statistics.median(vals), vals) if vals else None


def _median_share(result: dict, size, method: str) -> float | None:
    """Median over rounds of ``method``'s rate as a fraction of the same round's sgemm rate."""
    vals = [c["gflops"] / c["sgemm_gflops"] for cases in (result.get("rounds") or [result["cases"]])
            for c in cases if (c["n_in"], c["n_out"]) == size and c["method"] == method
            and "skipped" not in c and "sgemm_gflops" in c]
    return statistics.median(vals) if vals else None


def ratios(result: dict) -> list[str]:
    """The issues' comparisons, per size (medians of same-round ratios).

    csr's speed-up over each other method, the row-major layouts against the
    in-network ``csr`` time, and the rates of ``csr`` and ``csr_lone`` vs sgemm.
    """
    lines = []
    sizes = list(dict.fromkeys((r["n_in"], r["n_out"]) for r in result["cases"]))
    methods = list(dict.fromkeys(r["method"] for r in result["cases"]))
    for size in sizes:
        parts = []
        for m in ("csr", "csr_lone"):
            share = _median_share(result, size, m)
            if share is not None:
                parts.append(f"{m} at {100 * share:.1f}% of sgemm")
        for m in methods:
            rat = _median_ratio(result, size, m, "csr") if m != "csr" else None
            if rat is None:
                continue
            if m in ("csr_rowmajor_io", "csr_lone"):
                parts.append(f"{m} / csr = {rat[0]:.2f}x")
            else:
                parts.append(f"{rat[0]:.1f}x faster than {m}")
        if parts:
            lines.append(f"{size[0]}->{size[1]}: " + ", ".join(parts))
    return lines


def sweep_density(n: int = 2000, densities=(0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5), batch: int = 128,
                  device="cpu", repeat: int = 10, log=print) -> list[dict]:
    """csr vs dense fwd+bwd time over densities at ``n -> n``: where the ``"auto"`` rule should switch."""
    from ..graph.generators import erdos_renyi

    device = torch.device(device)
    out = []
    for d in densities:
        layer = erdos_renyi([n, n], density=d, seed=0).layers[0]
        row = {"n": n, "density": d}
        for method in ("csr", "dense"):
            step = _build_step(method, layer, batch, device, torch.Generator().manual_seed(0))
            row[method] = min(_time(step, device, repeat)) * 1e3
        out.append(row)
        log(f"{n}->{n} density {d:<5} csr {row['csr']:8.2f} ms  dense {row['dense']:8.2f} ms  "
            f"-> {'csr' if row['csr'] < row['dense'] else 'dense'}")
    return out


#: Densities of the csr vs dense (cuBLAS / MKL) comparison; the default on CUDA (issue 16 item 7).
CUDA_DENSITIES = (0.001, 0.005, 0.01, 0.02, 0.05)


def compare_dense(sizes, densities=CUDA_DENSITIES, batch: int = 128, device="cpu", repeat: int = 10,
                  methods=("csr", "csr_lone", "nn_linear"), log=print) -> list[dict]:
    """csr against a plain dense ``nn.Linear`` (cuBLAS on CUDA) over densities, with peak memory.

    One row per (size, density): each method's best fwd+bwd time (and peak CUDA
    memory on CUDA) and ``dense / csr``, the csr speed-up over the dense layer.
    """
    device = torch.device(device)
    rows = []
    for n_in, n_out in sizes:
        for d in densities:
            row = {"n_in": n_in, "n_out": n_out, "density": d}
            for m in methods:
                r = measure_case(n_in, n_out, None, batch, m, device, repeat, density=d)
                row[m] = r["ms"]
                if "peak_cuda_mib" in r:
                    row[f"{m}_peak_cuda_mib"] = r["peak_cuda_mib"]
            if "csr" in row and "nn_linear" in row:
                row["dense_over_csr"] = row["nn_linear"] / row["csr"]
            rows.append(row)
            mem = "".join(f"  {m} peak {row[f'{m}_peak_cuda_mib']:.0f} MiB" for m in methods
                          if f"{m}_peak_cuda_mib" in row)
            log(f"{n_in:>6}->{n_out:<6} density {100 * d:5.2f}%  " + "  ".join(f"{m} {row[m]:8.3f} ms" for m in methods)
                + (f"  -> csr {row['dense_over_csr']:.2f}x vs dense" if "dense_over_csr" in row else "") + mem)
    return rows


def _parse_size(s: str) -> tuple[int, int]:
    a, _, b = s.partition(":")
    try:
        n_in, n_out = int(a), int(b or a)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or N_IN:N_OUT, got {s!r}") from None
    if n_in <= 0 or n_out <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {s!r}")
    return n_in, n_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--sizes", nargs="+", type=_parse_size, default=None,
                   help="layer sizes N or N_IN:N_OUT (default: 784:1000 4000 20000 100000; "
                        "4000 20000 with --densities)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--epsilon", type=float, default=20.0, help="SET epsilon of the layers (default: 20)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeat", type=int, default=10, help="timed steps per case, best reported (default: 10)")
    p.add_argument("--max-dense-gib", type=float, default=4.0,
                   help="skip methods whose dense n_in*n_out matrices would exceed this (default: 4)")
    p.add_argument("--isolate-cells", type=float, default=1e9,
                   help="run cases with n_in*n_out >= this in a fresh process and report its peak RSS")
    p.add_argument("--sweep", action="store_true", help="also sweep densities at 2000->2000 (csr vs dense)")
    p.add_argument("--densities", nargs="+", type=float, default=None, metavar="D",
                   help="compare csr with a dense nn.Linear (cuBLAS on CUDA) at these densities instead of "
                        "the epsilon table (default on --device cuda: 0.001 0.005 0.01 0.02 0.05)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json", default=None, metavar="PATH", help="write all measurements to a JSON file")
    p.add_argument("--sgemm-n", type=int, default=4000, help="size of the reference dense GEMM (default: 4000)")
    p.add_argument("--tune-malloc", action="store_true",
                   help="call topo.nn.tune_cpu_allocator() first (glibc keeps freed memory: no page faults)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every case this many times, interleaved; report medians (default: 1)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from ..errors import ParameterError

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"--device {args.device!r}: CUDA is not available on this machine")
    print(f"topo bench layers: torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"batch {args.batch}, epsilon {args.epsilon}, allocator {'tuned' if args.tune_malloc else 'default'}")
    densities = args.densities or (CUDA_DENSITIES if device.type == "cuda" else None)
    if densities:
        if any(not 0 < d <= 1 for d in densities):
            raise ParameterError(f"--densities must lie in (0, 1], got {densities}")
        if device.type == "cuda":
            print(f"GPU: {torch.cuda.get_device_name(device)}")
        sizes = args.sizes or [(4000, 4000), (20000, 20000)]
        rows = compare_dense(sizes, densities, args.batch, device, args.repeat)
        if args.json:
            from ._measure import write_json
            write_json(args.json, {"device": str(device), "torch": torch.__version__, "rows": rows})
            print(f"wrote {args.json}")
        return 0
    sizes = args.sizes or [(784, 1000), (4000, 4000), (20000, 20000), (100000, 100000)]
    result = run_layers(sizes, args.epsilon, args.batch, args.methods, device, args.repeat,
                        args.max_dense_gib, int(args.isolate_cells), args.seed, args.sgemm_n, args.tune_malloc,
                        args.rounds)
    print("\nratios (same run):")
    for line in ratios(result):
        print("  " + line)
    if args.sweep:
        print("\ndensity sweep (auto rule):")
        result["sweep"] = sweep_density(device=device, batch=args.batch, repeat=args.repeat)
    if args.json:
        from ._measure import write_json
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--_child":
        case = json.loads(sys.argv[2])
        torch.set_num_threads(case.pop("threads"))
        if case.pop("tune_malloc"):
            from ..nn.allocator import tune_cpu_allocator
            tune_cpu_allocator()
        res = measure_case(case["n_in"], case["n_out"], case["epsilon"], case["batch"], case["method"],
                           case["device"], case["repeat"], case["seed"])
        print(json.dumps(res))
        return 0
    p = argparse.ArgumentParser(prog="bench_layers", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
