"""Reader and writer for the IDX format of the MNIST family.

An IDX file is: two zero bytes, a type code, the number of dimensions ``d``,
``d`` big-endian uint32 sizes, then the values in C order, big-endian. The
MNIST and Fashion-MNIST files are distributed gzip-compressed; both forms are
read (detected by the gzip magic, not by the file name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from topo.errors import DatasetError
from topo.utils.atomic import atomic_write

__all__ = ["read_idx", "parse_idx", "idx_bytes", "write_idx"]

_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _decompress(data: bytes, source: str) -> bytes:
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{source}: corrupt gzip stream ({exc})") from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX content (raw or gzip-compressed bytes) into a numpy array.

    The result has native byte order and the file's shape; uint8 data is
    returned without copying the buffer.

    Raises
    ------
    DatasetError
        If the header is malformed or the payload size does not match it.

    Examples
    --------
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> parse_idx(idx_bytes(a)).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    data = _decompress(bytes(data) if not isinstance(data, bytes) else data, source)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{source}: not an IDX file (magic {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise DatasetError(f"{source}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DatasetError(f"{source}: IDX file declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(
            f"{source}: IDX payload is {len(data) - header} bytes, header {shape} of "
            f"{dtype.newbyteorder('=').name} needs {expected}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx1-ubyte.gz"
    >>> _ = write_idx(p, np.array([3, 1, 4], dtype=np.uint8), compress=True)
    >>> read_idx(p).tolist()
    [3, 1, 4]
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read IDX file {str(path)!r}: {exc}") from exc
    return parse_idx(data, str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as uncompressed IDX bytes.

    The encoding is canonical, so the sha256 of the result equals the sha256
    of the original (decompressed) MNIST files when given the same values.
    """
    arr = np.asarray(array)
    if arr.ndim == 0 or arr.ndim > 255:
        raise DatasetError(f"IDX needs 1..255 dimensions, got an array of shape {arr.shape}")
    native = arr.dtype.newbyteorder("=")
    if native not in _CODES:
        raise DatasetError(
            f"IDX cannot store dtype {arr.dtype}; use one of uint8, int8, int16, int32, float32, float64"
        )
    code = _CODES[native]
    if any(s >= 2**32 for s in arr.shape):
        raise DatasetError(f"IDX dimension sizes must be < 2**32, got {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write ``array`` as an IDX file atomically; gzip it when ``compress``.

    ``compress`` writes a gzip stream with mtime 0 so the output is
    byte-reproducible.
    """
    path = Path(path)
    data = idx_bytes(array)
    if compress:
        data = gzip.compress(data, mtime=0)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path
