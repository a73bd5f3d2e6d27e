"""``checkpoint.pt``: pickle-free training checkpoints.

A checkpoint is a ``torch.save`` of a dict holding only tensors and plain
Python values (dicts, lists, tuples, numbers, strings), so it is read back with
``torch.load(weights_only=True)``, which executes no code from the file. It is
written with :func:`topo.utils.atomic_write`: a crash while saving leaves the
previous checkpoint in place. (What a checkpoint holds is the trainer's
business: :mod:`topo.train.checkpoint`.)
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import IO, Any

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "topo.checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = ("epoch", "model", "optimizer", "rng", "metrics")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values only) to ``path`` atomically, tagged with format and version."""
    import torch

    from ..utils.atomic import atomic_write

    payload = {"__format__": CHECKPOINT_FORMAT, "__version__": CHECKPOINT_VERSION, **state}
    with atomic_write(path, "wb") as f:
        out = _Writes(f)
        try:
            torch.save(payload, out)  # type: ignore[arg-type]  # torch.save needs only write() and flush()
        except RuntimeError:
            # torch's zip writer swallows the write's OSError and reports "unexpected pos N vs M";
            # raise the real cause (a full disk: ENOSPC), naming the file.
            if out.error is not None:
                raise OSError(out.error.errno, out.error.strerror, os.fspath(path)) from out.error
            raise


class _Writes:
    """A file wrapper that remembers the first OSError of ``write`` (torch.save hides it)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.f.flush()


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    topo.errors.TopologyFormatError
        If the file is not a torch zip archive, is truncated, corrupt (a member
        fails its CRC-32) or has bytes after the archive, holds
        anything but tensors and plain values, is not a topo checkpoint, or is
        of another format version.
    """
    import torch

    from ..errors import TopologyFormatError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {str(path)!r}")
    if not _head(path).startswith(b"PK\x03\x04"):
        # torch.load would fall back to the legacy pickle reader and fail with a bare KeyError.
        raise TopologyFormatError(f"{str(path)!r} is not a topo checkpoint: not a torch.save zip archive "
                                  f"(it starts with {_head(path)!r})")
    try:
        _check_archive(path)
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise TopologyFormatError(f"{str(path)!r} is not a plain topo checkpoint: {_refusal(str(err))}") from None
    except Exception as err:  # noqa: BLE001 - a damaged archive makes torch raise many types
        msg = str(err).splitlines()[0] if str(err) else ""
        raise TopologyFormatError(
            f"{str(path)!r} is not a readable topo checkpoint (truncated or corrupt?): "
            f"{type(err).__name__}: {msg[:200]}") from None
    if not isinstance(data, dict) or data.get("__format__") != CHECKPOINT_FORMAT:
        found = data.get("__format__") if isinstance(data, dict) else type(data).__name__
        raise TopologyFormatError(f"{str(path)!r} holds {found!r}, expected a {CHECKPOINT_FORMAT!r} file")
    if data.get("__version__") != CHECKPOINT_VERSION:
        raise TopologyFormatError(f"{str(path)!r} has checkpoint version {data.get('__version__')!r}; "
                                  f"this topo reads version {CHECKPOINT_VERSION}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise TopologyFormatError(f"{str(path)!r} is missing checkpoint entries {missing}")
    return data


def _check_archive(path: Path) -> None:
    """The zip archive whole, every member's CRC-32 right: torch's reader checks no CRC, so a flipped
    byte inside a tensor would otherwise load as another value."""
    from ..utils.zipcheck import check_directory, check_end, verify_crcs

    with open(path, "rb") as f:
        count = check_end(f)
        with zipfile.ZipFile(f) as z:
            check_directory(z, count)
            verify_crcs(z)


def _head(path: Path, n: int = 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _refusal(text: str) -> str:
    """torch's weights-only refusal on one line: what it refused, and its warning about the unsafe way round."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    what = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("WeightsUnpickler error:")),
                lines[-1] if lines else "refused by torch.load(weights_only=True)")
    what = what.split(". Please use")[0].rstrip(".")  # drop torch's allowlisting advice: topo reads no classes
    sentences = re.split(r"(?<=\.)\s+", " ".join(lines))
    warning = next((s for s in sentences if "arbitrary code execution" in s), "")
    warning = warning or ("loading it with torch.load(weights_only=False) can result in arbitrary code execution.")
    return (f"torch.load(weights_only=True) refused it ({what}); topo loads no pickled objects. "
            f"torch warns: {warning.split('(1) ')[-1]} Do it only if you got the file from a trusted source.")
