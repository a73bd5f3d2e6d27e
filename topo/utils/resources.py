"""What the machine can hold: available memory, and a clear refusal before an allocation that cannot fit.

A request far beyond the machine's memory otherwise ends in one of three bad
ways: torch's ``DefaultCPUAllocator: can't allocate memory`` traceback, a bare
``MemoryError``, or — worst, with overcommit — the kernel's OOM killer taking
the process (or a neighbour) minutes later. Checking the size first turns all
three into one error that says how much is needed and how much there is.
"""

from __future__ import annotations

import os

from ..errors import TopologyError

__all__ = ["InsufficientMemoryError", "available_memory", "check_memory", "format_bytes"]


class InsufficientMemoryError(TopologyError, MemoryError):
    """The work asked for needs more memory than the machine has available.

    ``needed`` and ``available`` are in bytes. It is a :class:`MemoryError` (what
    Python raises for a failed allocation) and a :class:`~topo.errors.TopologyError`.
    """

    def __init__(self, message: str, needed: int = 0, available: int = 0) -> None:
        super().__init__(message)
        self.needed, self.available = int(needed), int(available)

    def __reduce__(self):
        return (type(self), (str(self), self.needed, self.available))


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units.

    Examples
    --------
    >>> format_bytes(3 * 2**30 + 2**29), format_bytes(512)
    ('3.50 GiB', '512 B')
    """
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_memory(device="cpu") -> int | None:
    """Bytes a new allocation can get without swapping: ``MemAvailable`` (Linux), free GPU memory for CUDA.

    ``None`` when the platform does not say (then no check refuses anything).

    Examples
    --------
    >>> n = available_memory()
    >>> n is None or n > 0
    True
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other POSIX systems: free physical pages (an underestimate: no page cache)
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(needed: int, what: str, device="cpu", available: int | None = None, hint: str = "") -> None:
    """Raise :class:`InsufficientMemoryError` when ``needed`` bytes exceed what ``device`` has available.

    ``what`` says what needs the memory ("the model", "layer 0's edges"); the
    message names it, both sizes and where the available figure comes from, then ``hint``.

    Examples
    --------
    >>> check_memory(2**20, "a small buffer", available=2**30)
    >>> check_memory(2**40, "the model", available=2**30)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    topo.utils.resources.InsufficientMemoryError: the model needs 1.00 TiB of memory, ... has 1.00 GiB available
    """
    if available is None:
        available = available_memory(device)
        source = " (MemAvailable)" if available is not None and str(device).startswith("cpu") else ""
    else:
        source = ""
    if available is None or needed <= available:
        return
    where = "this machine" if str(device).startswith("cpu") else f"device {device}"
    raise InsufficientMemoryError(f"{what} needs {format_bytes(needed)} of memory, but {where} has "
                                  f"{format_bytes(available)} available{source}{'; ' + hint if hint else ''}",
                                  needed, available)
