"""Checks a command runs before it writes anything, and the guard that removes a new run that failed.

Every bad argument must fail before the run directory exists: the device, the
output path, the backend, and whether the network fits in memory and has edges
enough to learn. When something fails later anyway (a full disk, a read-only
filesystem, an error inside the Trainer before its first checkpoint),
:func:`new_run_guard` removes what the failed command created, so a failed
``topo train`` leaves the filesystem as it found it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from ..errors import ParameterError

__all__ = ["check_device", "check_out_dir", "check_network", "new_run_guard"]


def check_device(spec) -> torch.device:
    """``spec`` as a :class:`torch.device` that exists here, else a ParameterError naming it.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("banana")
    Traceback (most recent call last):
    ...
    topo.errors.ParameterError: --device 'banana' is not a torch device (use cpu, cuda, cuda:N or mps)
    """
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ParameterError(f"--device {spec!r} is not a torch device (use cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ParameterError(f"--device {spec!r}: this machine has no CUDA GPU (or torch is a CPU build)")
        if device.index is not None and device.index >= count:
            raise ParameterError(f"--device {spec!r}: this machine has {count} CUDA GPU(s), cuda:0 to "
                                 f"cuda:{count - 1}")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ParameterError(f"--device {spec!r}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise ParameterError(f"--device {spec!r}: topo trains on cpu, cuda or mps devices")
    return device


def check_out_dir(path, resume: bool) -> None:
    """Fail now, naming the path, if a run directory cannot be created or written at ``path``.

    Creates nothing. An ancestor that is a file, a path that is a file, and a
    read-only filesystem are refused; a directory that exists is checked by
    :meth:`topo.runs.RunDir.check` (it holds a run / no run, its lock).
    """
    from ..runs import RunDir

    out = Path(path)
    if out.is_dir():
        RunDir(out).check(resume=resume)  # the directory exists: check() creates nothing
        probe = out
    else:
        if out.exists():
            raise FileExistsError(f"--out {str(out)!r} exists and is not a directory")
        if resume:
            raise FileNotFoundError(f"cannot resume: --out {str(out)!r} does not exist")
        probe = out.parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"cannot create run directory {str(out)!r}: "
                                                    f"{str(probe)!r} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        read_only = _read_only(probe)
        code = errno.EROFS if read_only else errno.EACCES
        why = "is on a read-only filesystem" if read_only else "is not writable"
        raise OSError(code, f"cannot write run directory {str(out)!r}: {str(probe)!r} {why}")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_network(sizes: Sequence[int], rule: str, epsilon, density, *, batch: int, dropout: float,
                  optimizer: str, backend: str, device, nproc: int = 1, force: bool = False,
                  history_weights="all", history_steps: int = 1) -> None:
    """Refuse, before anything is built, a network that cannot fit in memory or has layers without edges.

    Memory: :func:`topo.estimate_memory` of the run (every one of ``nproc`` local
    ranks holds the whole model; the History holds ``history_steps`` updates by the
    end) against what the device has available. Edges: a
    sparse layer with fewer edges than output neurons leaves some of them without
    input — it trains to chance. ``force=True`` (``--force``) skips both.
    """
    if force:
        return
    from ..nn.memory import _layer_edges, estimate_memory
    from ..utils.resources import check_memory

    dense = rule.strip().lower() == "dense"
    if not dense:
        for k, ((n_in, n_out), e) in enumerate(zip(zip(sizes[:-1], sizes[1:]),
                                                   _layer_edges(sizes, epsilon, density, False))):
            if e < n_out:
                what = f"--density {density}" if density is not None else f"--epsilon {epsilon}"
                raise ParameterError(f"{what} gives layer {k} ({n_in}->{n_out}) {e} edges, fewer than its {n_out} "
                                     f"output neurons: {n_out - e} or more of them get no input and the network "
                                     f"cannot learn; raise it, or pass --force to train anyway")
    slot = "sgd-momentum" if optimizer in ("sgd", "sgdw") else optimizer if optimizer in ("adam", "adamw") else "adam"
    est = estimate_memory(sizes, epsilon=None if dense else epsilon, density=1.0 if dense else density,
                          batch=batch, optimizer=slot, dropout=dropout, evolve=not (dense or rule == "static"),
                          backend="dense" if dense else backend, device=str(device), history_weights=history_weights,
                          history_steps=history_steps)
    # A dense MLP holds no edge indices; everything else is what a sparse one needs.
    need = est.total - (est.indices if dense else 0)
    ranks = f", times {nproc} processes" if nproc > 1 else ""
    check_memory(need * nproc, f"by topo.estimate_memory, the network {'-'.join(map(str, sizes))} "
                               f"({est.num_edges:,} weights{ranks})", device=device,
                 hint="use smaller --hidden, --batch-size or density, or --force to try anyway")


def _held_by_another(lock_path: Path) -> bool:
    from ..runs.lock import RunLock, RunLockedError

    try:
        RunLock(lock_path).check_free()
    except RunLockedError as err:
        return err.holder.get("pid") != os.getpid()
    return False


@contextlib.contextmanager
def new_run_guard(path, resume: bool) -> Iterator[None]:
    """If the command fails before the run's first checkpoint, remove what it created under ``path``.

    Only entries that were not there before and that a run writes (run files,
    the manifest and lock, temporary files) are removed, then the directories
    the command created, if empty. A resumed run, and a run that reached a
    checkpoint, are left alone: their last checkpoint is the state to resume.
    """
    if resume:
        yield
        return
    from ..runs import RunDir
    from ..utils.atomic import temp_target

    out = Path(path)
    first_new = out
    while not first_new.parent.exists() and first_new.parent != first_new:
        first_new = first_new.parent
    created = not out.exists()
    before = set() if created or not out.is_dir() else set(os.listdir(out))
    try:
        yield
    except Exception:
        # Another live process holding the run's lock owns whatever appeared meanwhile (a second
        # `topo train` refused with "in use" must not delete the first one's new files).
        if out.is_dir() and not (out / RunDir.CHECKPOINT).exists() and not _held_by_another(out / RunDir.LOCK):
            names = {*RunDir.FILES, RunDir.MANIFEST, RunDir.LOCK}
            for entry in os.listdir(out):
                if entry not in before and (entry in names or temp_target(entry) is not None):
                    with contextlib.suppress(OSError):
                        (out / entry).unlink()
            if created:
                d = out
                while True:
                    with contextlib.suppress(OSError):
                        d.rmdir()
                    if d == first_new or d.parent == d:
                        break
                    d = d.parent
        raise
