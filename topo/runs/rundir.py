""":class:`RunDir`: a run directory as an object — its files, its lock, its manifest."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..utils.atomic import stale_temp_files, temp_name
from . import files as F
from .lock import RunLock, RunLockedError
from .manifest import Manifest, RunFileError

__all__ = ["RunDir", "RunLockedError", "RunFileError"]


class RunDir:
    """The run directory of one training run: reading and writing its files, verified, under a lock.

    ``RunDir(path)`` only stores the path: reading needs nothing more. Writing
    needs the directory's exclusive lock, taken by :meth:`create` (a new run),
    :meth:`resume` (an existing one) or :meth:`open`; a second writer fails at
    once with :class:`RunLockedError` naming the lock file and the PID holding
    it. The lock is released by :meth:`close` (or leaving a ``with`` block) and
    by the kernel when the process ends, however it ends.

    Every file written here is listed with its sha256 and size in
    ``manifest.json``, which is written atomically after the files. Reading a
    listed file whose bytes differ from the manifest raises
    :class:`RunFileError` naming it, as does a run file that the manifest
    does not list (it was not written by this run). Runs written before
    manifests existed (no ``manifest.json``) are read unverified.

    Opening the directory for writing removes, once the lock is held, the
    temporary files (``.metrics.csv.1a2b3c4d.tmp``) that a writer killed
    mid-write left beside the run's files; nothing else is touched.

    Parameters
    ----------
    path : path
        The run directory.

    Examples
    --------
    >>> import tempfile, os, topo
    >>> path = os.path.join(tempfile.mkdtemp(), "run")
    >>> with RunDir.create(path) as run:
    ...     run.write_config({"dataset": "digits", "seed": 0})
    ...     run.write_metrics([{"epoch": 1, "train_loss": 0.5}])
    ...     run.write_topology(topo.erdos_renyi([4, 3], density=0.5, seed=0))
    >>> run = RunDir(path)
    >>> run.read_config()["seed"], run.read_metrics().train_loss.tolist(), run.read_topology().num_edges
    (0, [0.5], 6)
    >>> sorted(run.manifest())
    ['config.json', 'metrics.csv', 'topology.npz']
    """

    CONFIG, METRICS, TOPOLOGY, HISTORY, CHECKPOINT = F.CONFIG, F.METRICS, F.TOPOLOGY, F.HISTORY, F.CHECKPOINT
    MODEL, MANIFEST, LOCK = F.MODEL, F.MANIFEST, F.LOCK
    #: The files a run writes (and the manifest lists).
    FILES = F.RUN_FILES

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = RunLock(self.path / F.LOCK)
        self._manifest = Manifest(self.path / F.MANIFEST)
        self._staged: list | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}{', locked' if self.locked else ''})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    # -- opening, locking ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike) -> RunDir:
        """A new run in ``path`` (created if missing), locked. A directory holding a run is refused."""
        return cls(path).open(resume=False)

    @classmethod
    def resume(cls, path: str | os.PathLike) -> RunDir:
        """The existing run in ``path``, locked for writing."""
        return cls(path).open(resume=True)

    @property
    def holds_run(self) -> bool:
        """Whether the directory holds a run (``config.json`` or ``checkpoint.pt``)."""
        return any((self.path / name).exists() for name in (F.CONFIG, F.CHECKPOINT))

    @property
    def locked(self) -> bool:
        """Whether this object holds the directory's lock."""
        return self._lock.held

    def check(self, resume: bool = False) -> RunDir:
        """Validate the directory for a new run (creating it) or a resumed one, without taking the lock.

        Raises
        ------
        FileExistsError
            ``path`` is a file, or (new run) already holds a run.
        FileNotFoundError
            (resume) ``path`` holds no run.
        RunLockedError
            Another process holds the directory's lock.
        """
        out = self.path
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"run directory {str(out)!r} exists and is not a directory")
        if out.is_dir():
            self._lock.check_free()
        if resume:
            if not self.holds_run:
                raise FileNotFoundError(f"cannot resume: {str(out)!r} holds no run ({F.CONFIG} or {F.CHECKPOINT})")
            return self
        held = [name for name in (F.CONFIG, F.CHECKPOINT) if (out / name).exists()]
        if held:
            raise FileExistsError(f"run directory {str(out)!r} already holds a run ({', '.join(held)}); "
                                  "refusing to overwrite it: resume it (--resume / resume=True) or choose another "
                                  "directory")
        out.mkdir(parents=True, exist_ok=True)
        return self

    def open(self, resume: bool = False) -> RunDir:
        """:meth:`check`, then take the lock (failing at once if it is held) and check again under it."""
        if self.locked:
            return self
        self.check(resume)
        self._lock.acquire()
        try:
            self.check(resume)  # another process may have started a run between the check and the lock
            self._manifest.load()
            self._remove_stale_temps()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _remove_stale_temps(self) -> None:
        # Under the lock no writer of this run is at work, so a temporary file of a run file is what a
        # writer killed mid-write (kill -9, power loss) left behind: it would stay there forever.
        targets = {*F.RUN_FILES, F.MANIFEST, *self._manifest.files, *self._manifest.pending}
        for path in stale_temp_files(self.path, targets):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        """Release the lock (if held). Staged, uncommitted files are discarded."""
        self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def holder(self) -> dict:
        """What the lock file records about its current holder (``{}`` when free)."""
        return self._lock.holder()

    # -- the manifest and verification --------------------------------------------------------
    def manifest(self) -> dict[str, dict]:
        """``{name: {"sha256", "bytes"}}`` of every file the manifest lists."""
        m = self._manifest if self.locked else Manifest(self.path / F.MANIFEST).load()
        return {**m.files, **m.pending}

    def verify(self, name: str | None = None) -> Path:
        """Check one file (or, with ``name=None``, every listed file) against the manifest; returns its path.

        A listed file with other bytes, a listed file that is missing, and a run
        file present but not listed (while a manifest exists) raise
        :class:`RunFileError` naming the file.
        """
        if name is None:
            for listed in self.manifest():
                self.verify(listed)
            return self.path
        path = self.path / name
        for attempt in (0, 1):
            m = self._manifest if self.locked else Manifest(self.path / F.MANIFEST).load()
            try:
                if m.listed(name):
                    m.verify(name, path)
                elif m.exists and path.exists():
                    raise RunFileError(f"{str(path)!r} is not listed in {str(m.path)!r}: it was not written by "
                                       "this run (copied from another run?)", str(path))
                return path
            except RunFileError:
                if attempt or self.locked:
                    raise
                # A writer may have committed between our reads of the manifest and of the file: look again.
        return path

    def _existing(self, name: str, what: str) -> Path:
        path = self.path / name
        if not path.is_file():
            raise FileNotFoundError(f"{str(self.path)!r} has no {what} ({name})")
        return path

    # -- reading ------------------------------------------------------------------------------
    def read_config(self, verify: bool = True) -> dict:
        """``config.json``, which must hold a JSON object; ``verify=False`` skips the manifest check
        (to check the settings' types first and name a bad one, then :meth:`verify`)."""
        path = self._existing(F.CONFIG, "run configuration")
        config = F.read_json(path)
        if not isinstance(config, dict):
            raise RunFileError(f"{str(path)!r} must hold a JSON object of settings, got "
                               f"{type(config).__name__} {_short(config)}", str(path))
        if verify:
            self.verify(F.CONFIG)
        return config

    def read_metrics(self):
        """``metrics.csv`` as a DataFrame, after checking every row is whole and numeric (and the manifest)."""
        from .table import read_metrics

        frame = read_metrics(self._existing(F.METRICS, "metrics table"))
        self.verify(F.METRICS)
        return frame

    def read_checkpoint(self, map_location="cpu") -> dict[str, Any]:
        """``checkpoint.pt`` (verified; see :func:`topo.runs.checkpoint.load_checkpoint`)."""
        from .checkpoint import load_checkpoint

        return load_checkpoint(self.verify(F.CHECKPOINT), map_location=map_location)

    def read_topology(self):
        """``topology.npz`` as a :class:`topo.Topology` (verified)."""
        from ..graph import load

        self._existing(F.TOPOLOGY, "final topology")
        return load(self.verify(F.TOPOLOGY))

    def read_history(self):
        """``history.npz`` as a :class:`topo.History` (verified)."""
        from ..graph import History

        self._existing(F.HISTORY, "history")
        return History.load(self.verify(F.HISTORY))

    def read_bytes(self, name: str) -> bytes:
        """The bytes of file ``name`` (e.g. :attr:`MODEL`), verified against the manifest."""
        path = self._existing(name, "file")
        data = path.read_bytes()
        self.verify(name)
        return data

    # -- writing ------------------------------------------------------------------------------
    def discard(self, also: tuple[str, ...] = ()) -> None:
        """Delete the run's files, its manifest and the files named in ``also`` (needs the lock)."""
        self._require_lock()
        for name in (*F.RUN_FILES, *also, F.MANIFEST):
            (self.path / name).unlink(missing_ok=True)
        self._manifest.files, self._manifest.pending = {}, {}

    def write_config(self, config: dict) -> None:
        """Write ``config.json`` (indented JSON, keys sorted)."""
        if not isinstance(config, dict):
            raise TypeError(f"a run configuration is a dict, got {type(config).__name__}")
        self.write_file(F.CONFIG, lambda p: F.write_json(p, config))

    def write_metrics(self, rows: list[dict]) -> None:
        """Write ``metrics.csv`` from per-epoch rows (:data:`topo.runs.METRIC_COLUMNS` first)."""
        from .table import write_metrics

        self.write_file(F.METRICS, lambda p: write_metrics(p, rows))

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``checkpoint.pt`` (tensors and plain values only)."""
        from .checkpoint import save_checkpoint

        self.write_file(F.CHECKPOINT, lambda p: save_checkpoint(p, state))

    def write_topology(self, topology) -> None:
        """Write ``topology.npz``."""
        self.write_file(F.TOPOLOGY, lambda p: topology.save(p))

    def write_history(self, history) -> None:
        """Write ``history.npz``."""
        self.write_file(F.HISTORY, lambda p: history.save(p))

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write raw bytes as run file ``name`` (e.g. :attr:`MODEL`, ``model.safetensors``)."""
        def write(path: Path) -> None:
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

        self.write_file(name, write)

    def write_file(self, name: str, writer: Callable[[Path], Any]) -> Path:
        """Write run file ``name`` with ``writer(path)``, which writes a whole file at the path it is given.

        The file is written beside its target under a temporary name, hashed,
        and renamed into place after the manifest records it (at once, or at
        the end of the enclosing :meth:`transaction`). Returns the final path.
        """
        self._require_lock()
        if not name or os.sep in name or name.startswith(".") or name == F.MANIFEST:
            raise ValueError(f"{name!r} is not a name a run file may have")
        target = self.path / name
        tmp = self.path / temp_name(name)
        try:
            writer(tmp)
            if target.exists():
                os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
            from .manifest import sha256_file

            digest, size = sha256_file(tmp)
        except BaseException as err:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(err, OSError):
                from ..utils.atomic import with_filename

                raise with_filename(err, target, instead_of=[tmp]) from err.__cause__
            raise
        entry = (name, tmp, {"sha256": digest, "bytes": size})
        if self._staged is not None:
            self._staged = [s for s in self._staged if s[0] != name] + [entry]
        else:
            self._commit([entry])
        return target

    @contextlib.contextmanager
    def transaction(self) -> Iterator[RunDir]:
        """Write several files as one commit: renamed in the order written, one manifest update.

        If the block raises, nothing of it reaches the run's files.
        """
        self._require_lock()
        if self._staged is not None:  # nested: part of the outer transaction
            yield self
            return
        self._staged = []
        try:
            yield self
        except BaseException:
            staged, self._staged = self._staged, None
            for _, tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
        staged, self._staged = self._staged, None
        self._commit(staged)

    def _commit(self, staged: list) -> None:
        if not staged:
            return
        m = self._manifest
        # Phase 1: the new digests are "pending" beside the old ones; the files are still the old ones.
        m.pending = {name: entry for name, _, entry in staged}
        try:
            m.save()
        except BaseException:
            m.pending = {}
            for _, tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
        for name, tmp, _ in staged:
            os.replace(tmp, self.path / name)
        # Phase 2: the new files are in place.
        m.files.update(m.pending)
        m.pending = {}
        m.save()

    def _require_lock(self) -> None:
        if not self.locked:
            raise RuntimeError(f"writing to {str(self.path)!r} needs its lock: open the run with RunDir.create, "
                               "RunDir.resume or RunDir.open")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
