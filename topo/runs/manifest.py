"""The manifest of a run directory: every file topo wrote there, with its size and sha256.

``manifest.json`` is written atomically after the files it lists. A commit of
new files is two-phase, so that a crash at any instant leaves a directory that
verifies: first the manifest is written with the new digests under
``"pending"`` (the old ones stay under ``"files"``), then the files are renamed
into place, then the manifest is written again without ``"pending"``. A file
verifies when its digest is the listed one or, during a commit, the pending one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import TopologyFormatError
from ..utils.atomic import atomic_write

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "RunFileError", "Manifest", "sha256_file"]

MANIFEST_FORMAT = "topo.run-manifest"
MANIFEST_VERSION = 1


class RunFileError(TopologyFormatError):
    """A run file is missing, or its bytes differ from what the manifest recorded when topo wrote it.

    ``path`` is the file.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self):
        return (type(self), (str(self), self.path))


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    """``(hex sha256, size in bytes)`` of a file, read in 1 MiB blocks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


class Manifest:
    """The ``{name: {"sha256", "bytes"}}`` table of one run directory (``path`` is ``manifest.json``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.files: dict[str, dict] = {}
        self.pending: dict[str, dict] = {}

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> Manifest:
        """Read the manifest from disk (an absent one is empty); a damaged one raises naming it."""
        self.files, self.pending = {}, {}
        if not self.path.is_file():
            return self
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise RunFileError(f"{str(self.path)!r} is not valid JSON ({err}); the run's files cannot be "
                               "verified", str(self.path)) from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise RunFileError(f"{str(self.path)!r} is not a {MANIFEST_FORMAT!r} file", str(self.path))
        if data.get("version") != MANIFEST_VERSION:
            raise RunFileError(f"{str(self.path)!r} has manifest version {data.get('version')!r}; this topo "
                               f"reads version {MANIFEST_VERSION}", str(self.path))
        for key in ("files", "pending"):
            table = data.get(key, {})
            if not isinstance(table, dict) or not all(
                    isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in table.values()):
                raise RunFileError(f"{str(self.path)!r} has a malformed {key!r} table", str(self.path))
            setattr(self, key, {str(k): dict(v) for k, v in table.items()})
        return self

    def save(self) -> None:
        data = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": dict(sorted(self.files.items()))}
        if self.pending:
            data["pending"] = dict(sorted(self.pending.items()))
        with atomic_write(self.path, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")

    def listed(self, name: str) -> bool:
        return name in self.files or name in self.pending

    def verify(self, name: str, path: str | os.PathLike) -> None:
        """Check that ``path``'s bytes are those recorded for ``name``; raise :class:`RunFileError` if not."""
        path = str(path)
        accepted = [e["sha256"] for e in (self.files.get(name), self.pending.get(name)) if e]
        if not os.path.isfile(path):
            raise RunFileError(f"{path!r} is missing, but {str(self.path)!r} lists it", path)
        digest, size = sha256_file(path)
        if digest not in accepted:
            entry = self.pending.get(name) or self.files[name]
            raise RunFileError(
                f"{path!r} is not the file topo wrote there: its sha256 {digest[:16]}… ({size} bytes) differs "
                f"from {entry['sha256'][:16]}… ({entry.get('bytes', '?')} bytes) recorded in "
                f"{str(self.path)!r}; it was changed, damaged or copied from another run", path)
