"""Process groups: start them from torchrun's environment or explicit ranks, pick the backend, spawn locally."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from ..errors import ParameterError, ParameterTypeError
from ..utils.signals import STOP_SIGNALS, exit_code, stop_on_signals

__all__ = ["DistInfo", "BACKENDS", "init_distributed", "shutdown", "get_info", "is_torchrun", "env_world_size",
           "resolve_backend", "max_nproc", "check_nproc", "find_free_port", "launch"]

BACKENDS = ("auto", "gloo", "nccl")
# torchrun (and torch.distributed.launch) export these to every worker.
_ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in its process group.

    ``device`` is the device this rank computes on: ``cuda:<local_rank>`` with
    NCCL, else the CPU (gloo).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes metrics, checkpoints and histories."""
        return self.rank == 0


def is_torchrun() -> bool:
    """Whether this process was started by torchrun (``RANK`` and ``WORLD_SIZE`` are in the environment)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment, 1 outside torchrun."""
    return _env_int("WORLD_SIZE", 1)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ParameterError(f"environment variable {name}={raw!r} is not an integer") from None


def resolve_backend(backend: str = "auto", device=None) -> str:
    """``"gloo"`` or ``"nccl"``: ``"auto"`` is NCCL for CUDA devices, gloo otherwise.

    Raises :class:`~topo.errors.ParameterError` for an unknown name and for NCCL on a
    machine (or torch build) without CUDA GPUs.

    Examples
    --------
    >>> resolve_backend("auto", "cpu")
    'gloo'
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ParameterError(f"unknown distributed backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    dev = torch.device(device) if device is not None else None
    if backend == "auto":
        backend = "nccl" if dev is not None and dev.type == "cuda" else "gloo"
    import torch.distributed as dist

    if not dist.is_available():
        raise ParameterError("this torch build has no torch.distributed support; distributed training is unavailable")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ParameterError("backend 'nccl' needs CUDA GPUs, and this machine has none (or torch is a CPU "
                                 "build); use backend 'gloo' to train on the CPU")
        if not dist.is_nccl_available():
            raise ParameterError("backend 'nccl' is not built into this torch; use backend 'gloo'")
    elif not dist.is_gloo_available():
        raise ParameterError("backend 'gloo' is not built into this torch")
    return backend


def max_nproc(backend: str = "gloo") -> int:
    """The most local processes :func:`check_nproc` accepts: 4 per CPU core (gloo), 1 per GPU (NCCL).

    More processes than that only time-slice the same cores and multiply the
    memory (every rank holds the whole model).
    """
    if backend == "nccl":
        return max(torch.cuda.device_count(), 1)
    return 4 * (os.cpu_count() or 1)


def check_nproc(nproc, backend: str = "gloo") -> int:
    """``nproc`` as an int in ``[1, max_nproc(backend)]``, else a ParameterError naming it."""
    if isinstance(nproc, bool) or not isinstance(nproc, int):
        raise ParameterError(f"nproc must be a positive integer, got {nproc!r}")
    if nproc < 1:
        raise ParameterError(f"nproc must be at least 1, got {nproc}")
    limit = max_nproc(backend)
    if nproc > limit:
        why = (f"{torch.cuda.device_count()} GPU(s) (NCCL needs one GPU per process)" if backend == "nccl"
               else f"{os.cpu_count()} CPU core(s) (at most 4 processes per core)")
        raise ParameterError(f"nproc={nproc} is more than this machine sensibly runs: it has {why}; "
                             f"use at most {limit}")
    return nproc


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def get_info() -> DistInfo | None:
    """The current process group's :class:`DistInfo`, or ``None`` when none is initialised."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    backend = str(dist.get_backend())
    local = _env_int("LOCAL_RANK", dist.get_rank())
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, backend, device)


def init_distributed(backend: str = "auto", rank: int | None = None, world_size: int | None = None,
                     device=None, timeout_s: float = 600.0) -> DistInfo:
    """Join (or reuse) the default process group.

    Ranks come from the arguments or from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
    ``MASTER_ADDR`` defaults to ``127.0.0.1``. With NCCL the process binds to
    ``cuda:<LOCAL_RANK>``.

    Parameters
    ----------
    backend : {"auto", "gloo", "nccl"}
        ``"auto"``: NCCL when ``device`` is a CUDA device, else gloo.
    rank, world_size : int, optional
        Override the environment.
    device : str or torch.device, optional
        The device training runs on (decides ``"auto"``).
    timeout_s : float
        How long a collective may wait for the other ranks before failing.
    """
    import torch.distributed as dist

    info = get_info()
    if info is not None:
        return info
    backend = resolve_backend(backend, device)
    rank = _env_int("RANK", 0) if rank is None else rank
    world_size = _env_int("WORLD_SIZE", 1) if world_size is None else world_size
    for name, v, lo in (("world_size", world_size, 1), ("rank", rank, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ParameterError(f"{name} must be an integer >= {lo}, got {v!r}")
    if rank >= world_size:
        raise ParameterError(f"rank {rank} is out of range for world_size {world_size}")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        if world_size > 1:
            raise ParameterError("MASTER_PORT is not set: start the ranks with torchrun, topo.distributed.launch, "
                                 "or export MASTER_ADDR/MASTER_PORT")
        os.environ["MASTER_PORT"] = str(find_free_port())
    local = _env_int("LOCAL_RANK", rank)
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise ParameterError(f"local rank {local} needs cuda:{local}, but this machine has "
                                 f"{torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(local)
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    return get_info()


def shutdown(barrier: bool = False) -> None:
    """Leave the default process group, if one is initialised.

    ``barrier=True`` first waits for every rank to get here, so that no rank tears
    its connections down while a peer still uses them (gloo can abort the peer then).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


# -- local launcher ---------------------------------------------------------------------------
def _worker(local_rank: int, fn, args, kwargs, nproc: int, port: int, backend: str, threads: int, queue) -> None:
    # SIGINT and SIGTERM both stop a rank by raising Interrupted, so atomic writes remove their temporary
    # files; the launcher started us with them blocked (see launch), and any that came meanwhile fire now.
    with stop_on_signals(once=True):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        try:
            _run_rank(local_rank, fn, args, kwargs, nproc, port, backend, threads, queue)
        except KeyboardInterrupt as stop:
            # The rank's files are closed and its stop reported by now. Leave at once: the interpreter's
            # teardown with gloo's threads and sockets still up takes seconds (measured 5 s and more).
            from multiprocessing import util

            with contextlib.suppress(Exception):
                util._exit_function()  # what a normal exit runs: finalizers unlink this rank's semaphores
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(exit_code(stop))


def _run_rank(local_rank: int, fn, args, kwargs, nproc: int, port: int, backend: str, threads: int,
              queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      WORLD_SIZE=str(nproc), LOCAL_RANK=str(local_rank), LOCAL_WORLD_SIZE=str(nproc))
    if threads:
        torch.set_num_threads(threads)
    try:
        init_distributed(backend)
        result = fn(*args, **kwargs)
        queue.put((local_rank, True, _dumps(result, "return value")))
    except BaseException as err:
        tb = traceback.format_exc()
        try:
            payload = pickle.dumps((err, tb))
        except Exception:  # an unpicklable exception still reaches the parent as text
            payload = pickle.dumps((None, tb))
        queue.put((local_rank, False, payload))
        shutdown()
        raise
    shutdown(barrier=True)


def _dumps(value, what: str) -> bytes:
    try:
        return pickle.dumps(value)
    except Exception as err:
        raise ParameterError(f"the {what} of a launched function must be picklable: {err}") from None


def launch(nproc: int, fn: Callable, *args, backend: str = "gloo", threads: int | None = None,
           timeout_s: float | None = None, stop_grace_s: float = 5.0, **kwargs) -> list[Any]:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` fresh local processes forming one process group.

    Each process gets torchrun's environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR=127.0.0.1`` and a free ``MASTER_PORT``), joins
    the group with :func:`init_distributed` and calls ``fn``, which must be
    importable (defined at module level) since processes are spawned.

    Parameters
    ----------
    nproc : int
        Number of processes, checked by :func:`check_nproc`.
    backend : {"gloo", "nccl", "auto"}
    threads : int, optional
        torch threads per process; default ``max(1, cpu_count // nproc)`` so the
        ranks do not oversubscribe the cores.
    timeout_s : float, optional
        Kill all processes and raise ``TimeoutError`` after this many seconds.
    stop_grace_s : float
        On SIGINT or SIGTERM the launcher forwards the signal to every rank (each
        stops by raising :class:`~topo.utils.signals.Interrupted`, which removes
        half-written temporary files and leaves the last complete checkpoint), waits
        this long for them to exit, kills those still running, and raises
        :class:`~topo.utils.signals.Interrupted` (a ``KeyboardInterrupt``).

    Returns
    -------
    list
        ``fn``'s return value of every rank, in rank order.

    Raises
    ------
    Exception
        The first exception a rank raised, re-raised in the caller with a note
        naming the rank and carrying its traceback (``TopologyMismatchError``
        stays a ``TopologyMismatchError``).
    """
    import torch.multiprocessing as mp

    if not callable(fn):
        raise ParameterTypeError(f"fn must be callable, got {fn!r}")
    backend = resolve_backend(backend, "cuda" if backend == "nccl" else None)
    nproc = check_nproc(nproc, backend)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // nproc)
    queue = mp.get_context("spawn").SimpleQueue()
    port = find_free_port()
    main_thread = threading.current_thread() is threading.main_thread()
    with stop_on_signals():
        # Ranks inherit the blocked signals through spawn's fork+exec: a stop signal that arrives while they
        # import waits until _worker has its handler, instead of killing a rank half-started.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if main_thread else None
        try:
            ctx = mp.start_processes(_worker, args=(fn, args, kwargs, nproc, port, backend, threads, queue),
                                     nprocs=nproc, join=False, start_method="spawn")
        except BaseException:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        try:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal pending since the start fires here
            return _wait(ctx, queue, nproc, timeout_s)
        except KeyboardInterrupt as stop:
            _stop(ctx, queue, getattr(stop, "signum", signal.SIGINT), stop_grace_s)
            raise


def _wait(ctx, queue, nproc: int, timeout_s: float | None) -> list[Any]:
    import torch.multiprocessing as mp

    results: dict[int, bytes] = {}
    errors: list[tuple[int, bytes]] = []

    def drain() -> None:
        while not queue.empty():
            rank, ok, payload = queue.get()
            (results.__setitem__(rank, payload) if ok else errors.append((rank, payload)))

    start = time.monotonic()
    try:
        while not ctx.join(timeout=0.1):
            drain()
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                _kill(ctx)
                raise TimeoutError(f"launched processes did not finish within {timeout_s} s")
    except mp.ProcessRaisedException as failure:
        drain()
        _reraise(errors, failure)
    except mp.ProcessExitedException as failure:
        drain()
        if not errors and len(results) == nproc:
            # Every rank delivered its result, then one died while tearing down (gloo can abort a
            # process whose peer closed first): the work is done, so report it and return.
            warnings.warn(f"all {nproc} processes finished, but one then exited abnormally ({failure})",
                          RuntimeWarning, stacklevel=2)
            _kill(ctx)
            return [pickle.loads(results[r]) for r in range(nproc)]
        _reraise(errors, failure)
    drain()
    if errors:  # a rank failed but exited cleanly: should not happen, but never swallow it
        _reraise(errors, None)
    return [pickle.loads(results[r]) for r in range(nproc)]


def _stop(ctx, queue, signum: int, grace_s: float) -> None:
    """Forward ``signum`` to every live rank, wait up to ``grace_s`` for all to exit, then kill the rest."""
    # A second signal must not cut this short: the ranks' stop is bounded by grace_s anyway.
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        for p in ctx.processes:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)
        deadline = time.monotonic() + grace_s
        while any(p.is_alive() for p in ctx.processes) and time.monotonic() < deadline:
            while not queue.empty():  # a rank blocked on a full pipe could not exit
                queue.get()
            time.sleep(0.05)
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
        for p in ctx.processes:
            p.join(5)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _kill(ctx) -> None:
    for p in ctx.processes:
        if p.is_alive():
            p.terminate()
    for p in ctx.processes:
        p.join(5)


def _reraise(errors: list, failure) -> None:
    # Prefer a rank's own error over the connection errors of the ranks that only lost their peer.
    loaded = [(rank, *pickle.loads(payload)) for rank, payload in errors]
    loaded.sort(key=lambda e: e[1] is None or type(e[1]) is RuntimeError or "DistBackendError" in type(e[1]).__name__)
    for rank, err, tb in loaded:
        if err is not None:
            if hasattr(err, "add_note"):
                err.add_note(f"(raised on rank {rank}; its traceback:)\n{tb}")
            raise err
    if failure is not None:
        raise failure
    raise RuntimeError(f"a launched process failed: {[tb for _, _, tb in loaded]}")
