"""How the CLI reports a failure: one line naming the bad value, exit code 2, for every expected kind of failure.

Expected failures are bad input (topo's errors, missing or existing files), the
operating system refusing (a read-only filesystem, a full disk, permissions),
allocations that cannot succeed (``MemoryError``, torch's allocator errors)
and devices that do not exist. Anything else is a bug and keeps its traceback;
``topo --debug`` (or ``topo COMMAND --debug``) shows the traceback of every failure.
"""

from __future__ import annotations

import errno
import os
import re

__all__ = ["describe"]

# torch's messages for allocations that failed, on CPU and CUDA.
_OOM = ("can't allocate memory", "not enough memory", "out of memory", "cannot allocate memory")
# torch's messages for devices that do not exist here.
_DEVICE = ("expected one of cpu", "invalid device string", "invalid device ordinal", "not compiled with cuda",
           "no cuda gpus are available", "found no nvidia driver", "device type at start of device string",
           "cuda driver", "mps backend")


def describe(err: BaseException) -> str | None:
    """The one-line message for an expected failure, ``None`` for one that deserves its traceback.

    Examples
    --------
    >>> describe(OSError(errno.EROFS, "Read-only file system", "/runs/a/config.json"))
    "cannot write '/runs/a/config.json': Read-only file system (EROFS)"
    >>> describe(RuntimeError("Expected one of cpu, cuda device type at start of device string: banana"))
    'device error: Expected one of cpu, cuda device type at start of device string: banana'
    >>> describe(AttributeError("x")) is None
    True
    """
    from ..errors import DatasetError, TopoError

    if isinstance(err, DatasetError):
        return str(err)  # its later lines are the commands that get the files: keep them
    if isinstance(err, (TopoError, FileNotFoundError, FileExistsError)) and not _is_raw_oserror(err):
        return _one_line(str(err))
    if isinstance(err, OSError):
        return _os_error(err)
    if isinstance(err, MemoryError):
        return _out_of_memory(str(err) or "an allocation failed")
    if isinstance(err, RuntimeError):
        text = str(err).lower()
        if any(s in text for s in _OOM):
            return _out_of_memory(str(err))
        if any(s in text for s in _DEVICE):
            return f"device error: {_one_line(str(err))}"
    return None


def _is_raw_oserror(err: BaseException) -> bool:
    # FileNotFoundError("cannot resume ...") written by topo has no errno; the OS's own has one.
    return isinstance(err, OSError) and err.errno is not None and err.strerror is not None and err.filename is not None


def _os_error(err: OSError) -> str:
    if err.errno is None or err.strerror is None:
        return _one_line(str(err))
    name = errno.errorcode.get(err.errno, str(err.errno))
    if err.filename is None:
        return f"{_one_line(err.strerror)} ({name})"
    where = os.fspath(err.filename)
    verb = "write" if err.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "access"
    msg = f"cannot {verb} {where!r}: {err.strerror} ({name})"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(where)
        if free is not None:
            from ..utils.resources import format_bytes

            msg += f"; {format_bytes(free)} free on its filesystem"
    return msg


def _free_bytes(path: str) -> int | None:
    p = os.path.abspath(path)
    while p and not os.path.exists(p):
        p = os.path.dirname(p)
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _out_of_memory(message: str) -> str:
    from ..utils.resources import available_memory, format_bytes

    m = re.search(r"tried to allocate (\d+) bytes", message)
    if m:
        wanted = f"an allocation of {format_bytes(int(m.group(1)))}"
    else:
        m = re.search(r"tried to allocate ([\d.]+ [KMGTP]i?B)", message)
        wanted = f"an allocation of {m.group(1)}" if m else "an allocation"
    avail = available_memory()
    have = f"; this machine has {format_bytes(avail)} available (MemAvailable)" if avail is not None else ""
    return (f"out of memory: {wanted} failed{have}; use smaller --hidden, --batch-size or density "
            f"(topo.estimate_memory says what a network needs)")


def _one_line(text: str) -> str:
    text = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", text.strip())
    first = text.splitlines()[0] if text else ""
    return first if len(text.splitlines()) <= 1 else first + " …"
