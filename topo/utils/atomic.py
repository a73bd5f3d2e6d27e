"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "temp_name", "stale_temp_files"]

# A temporary file is ".<target name>.<8 characters>.tmp" beside its target. The 8 characters are
# tempfile.mkstemp's (lowercase letters, digits, "_") or, from temp_name, hex digits: one pattern
# for both, so that stale_temp_files recognises exactly what topo's writers leave behind.
_TEMP_PREFIX, _TEMP_SUFFIX = ".", ".tmp"
_TEMP = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the destination directory so the final
    ``os.replace`` is a same-filesystem rename (atomic on POSIX). On any
    exception the temporary file is removed and ``path`` is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_write(p, "w") as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{path.name}.", suffix=_TEMP_SUFFIX, dir=directory)
    try:
        # mkstemp creates the file 0600; without this every file topo writes would be private to
        # its owner. Keep an existing target's mode, else honour the umask like open() does.
        os.chmod(tmp, _target_mode(path))
        f = os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise with_filename(err, path)  # noqa: B904 - the same OSError, now naming the file
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temp_name(name: str) -> str:
    """A fresh temporary name for a file that will be renamed onto ``name`` (same directory).

    Examples
    --------
    >>> t = temp_name("metrics.csv"); t.startswith(".metrics.csv.") and t.endswith(".tmp") and len(t) == 25
    True
    """
    return f"{_TEMP_PREFIX}{name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"


def temp_target(entry: str) -> str | None:
    """The file a temporary name of :func:`atomic_write` or :func:`temp_name` was to become, else ``None``.

    A temporary of a temporary (a writer writing through :func:`atomic_write` to a path it got
    from :func:`temp_name`) gives the final target.

    Examples
    --------
    >>> temp_target(".metrics.csv.k2x_9q0a.tmp"), temp_target("..config.json.0123abcd.tmp.zz99aa11.tmp")
    ('metrics.csv', 'config.json')
    >>> temp_target(".metrics.csv.tmp"), temp_target("metrics.csv.k2x_9q0a.tmp"), temp_target(".a.ABCDEFGH.tmp")
    (None, None, None)
    """
    match = _TEMP.fullmatch(entry)
    if match is None:
        return None
    target = match["target"]
    return temp_target(target) or target if target.startswith(_TEMP_PREFIX) else target


def stale_temp_files(directory: str | os.PathLike, targets=None) -> list[Path]:
    """The temporary files topo's atomic writers left in ``directory`` (a process killed mid-write).

    Only names of the writers' exact pattern (see :func:`temp_target`) that are plain files count,
    and with ``targets`` only those that were to become one of these names. The caller must know
    that no writer is at work in the directory (a run directory's lock), or it would list a live
    writer's file.
    """
    directory = Path(directory)
    wanted = None if targets is None else set(targets)
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        target = temp_target(entry)
        if target is not None and (wanted is None or target in wanted) and (directory / entry).is_file() \
                and not (directory / entry).is_symlink():
            found.append(directory / entry)
    return found


def with_filename(err: OSError, path, instead_of=()) -> OSError:
    """``err`` naming ``path`` when it names no file (``write`` on a full disk raises a bare ENOSPC)
    or one of ``instead_of`` (a temporary file the user never asked for)."""
    if err.errno is None or (err.filename is not None and os.fspath(err.filename) not in map(os.fspath, instead_of)):
        return err
    named = type(err)(err.errno, err.strerror, os.fspath(path))
    named.__cause__ = err.__cause__
    named.__traceback__ = err.__traceback__
    return named


def _target_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)  # the only portable way to read the umask is to set it
        os.umask(umask)
        return 0o666 & ~umask
