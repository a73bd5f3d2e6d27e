"""Pickle-free persistence of topologies (``.npz`` with a format tag and version).

File layout (``numpy.savez``, read with ``allow_pickle=False``):

=====================  ===============================================================
key                    content
=====================  ===============================================================
``__format__``         ``"topo.topology"`` (or ``"topo.history"``, see :mod:`.history`)
``__version__``        int, currently 1
``sizes``              int64 ``[L + 1]`` neuron layer sizes
``layer{k}.src``       int32 (int64 if a size exceeds 2**31-1) input index per edge
``layer{k}.dst``       same dtype, output index per edge; edges sorted by (dst, src)
``layer{k}.weight``    optional float array of edge weights
``meta``               optional JSON string
=====================  ===============================================================
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import TopoError, TopologyError, TopologyFormatError
from ..utils.atomic import atomic_write
from ..utils.zipcheck import check_directory, check_end
from .layer import LayerGraph
from .topology import Topology

__all__ = ["save_topology", "load", "write_npz", "read_npz", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def index_dtype(sizes) -> np.dtype:
    return np.dtype(np.int32) if max(sizes) < 2**31 - 1 else np.dtype(np.int64)


def write_npz(path: str | os.PathLike, kind: str, arrays: dict, meta: dict | None = None) -> None:
    """Write ``arrays`` plus format tag/version (and JSON ``meta``) atomically."""
    payload: dict[str, Any] = {"__format__": np.array(kind), "__version__": np.array(FORMAT_VERSION, dtype=np.int64)}
    if meta is not None:
        payload["meta"] = np.array(json.dumps(meta))
    payload.update(arrays)
    with atomic_write(path, "wb") as f:
        np.savez(f, **payload)


def read_npz(path: str | os.PathLike, kind: str, length: int | None = None) -> dict:
    """Read every array of a topo ``.npz``; raise :class:`TopologyFormatError` for anything wrong.

    The archive must be whole (see :mod:`topo.utils.zipcheck`: no bytes after it, every member's
    CRC-32 right) and hold only ``.npy`` arrays of plain dtypes, each exactly as long as its header
    says. ``length`` reads only the file's first ``length`` bytes (a history's last whole save).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    try:
        if length is None:
            with open(path, "rb") as f:
                data = _read_arrays(f)
        else:
            with open(path, "rb") as f:
                data = _read_arrays(io.BytesIO(f.read(length)))
    except Exception as err:  # noqa: BLE001 - a damaged zip raises many types (NotImplementedError, RuntimeError, ...)
        raise TopologyFormatError(f"{str(path)!r} is not a readable topo file ({type(err).__name__}: "
                                  f"{_short(str(err))})") from None
    fmt = data.get("__format__")
    found = str(fmt) if fmt is not None and fmt.shape == () and fmt.dtype.kind == "U" else ""
    if found != kind:
        raise TopologyFormatError(f"{str(path)!r} holds {found or 'no topo format tag'!r}, expected {kind!r}")
    ver = data.get("__version__")
    version = int(ver) if ver is not None and ver.shape == () and ver.dtype.kind in "iu" else None
    if version != FORMAT_VERSION:
        raise TopologyFormatError(
            f"{str(path)!r} has format version {version if version is not None else ver!r}; "
            f"this topo reads version {FORMAT_VERSION}")
    if "meta" in data:
        try:
            data["meta"] = json.loads(str(data["meta"]))
        except ValueError as err:
            raise TopologyFormatError(f"{str(path)!r} has unreadable meta ({err})") from None
        if not isinstance(data["meta"], dict):
            raise TopologyFormatError(
                f"{str(path)!r} has meta of type {type(data['meta']).__name__}, expected an object")
    return data


def _short(text: str, limit: int = 300) -> str:
    # zipfile quotes whole damaged headers (kilobytes of bytes) in its messages.
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _read_arrays(f: IO[bytes]) -> dict[str, np.ndarray]:
    count = check_end(f)
    with zipfile.ZipFile(f) as z:
        check_directory(z, count)
        return {_array_name(info.filename): _read_member(z, info) for info in z.infolist()}


def _array_name(member: str) -> str:
    if not member.endswith(".npy"):
        raise ValueError(f"member {member!r} is not a .npy array")
    return member[:-4]


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    # Read by hand rather than with np.load: numpy reads only as many bytes as the array header
    # announces, so a damaged header (a smaller shape) would load other data and skip the CRC check.
    with z.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(m)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(m)
        else:
            raise ValueError(f"member {info.filename!r} has .npy version {version}")
        if dtype.hasobject:
            raise ValueError(f"member {info.filename!r} holds Python objects (pickles are never loaded)")
        nbytes = math.prod(shape) * dtype.itemsize
        if m.tell() + nbytes != info.file_size:
            raise ValueError(f"member {info.filename!r} is {info.file_size} bytes, its header announces "
                             f"{m.tell() + nbytes}")
        raw = bytearray(m.read())  # to the member's end, which makes zipfile check its CRC-32
    if len(raw) != nbytes:
        raise ValueError(f"member {info.filename!r} holds {len(raw)} bytes of data, expected {nbytes}")
    return np.ndarray(shape, dtype=dtype, buffer=raw, order="F" if fortran else "C")


def check_keys(data: dict, expected: set, path) -> None:
    """Reject arrays the format does not define: a damaged name would otherwise drop an optional array."""
    unknown = set(data) - expected - {"__format__", "__version__", "meta"}
    if unknown:
        raise TopologyFormatError(f"{str(path)!r} has unexpected arrays {sorted(unknown)[:5]}")


def topology_keys(data: dict, prefix: str = "") -> set:
    """Array names a topology with the ``sizes`` found in ``data`` may have."""
    sizes = data.get(f"{prefix}sizes")
    n = sizes.size - 1 if isinstance(sizes, np.ndarray) and sizes.ndim == 1 else 0
    return {f"{prefix}sizes"} | {f"{prefix}layer{k}.{a}" for k in range(n) for a in ("src", "dst", "weight")}


def topology_arrays(t: Topology, prefix: str = "") -> dict:
    dt = index_dtype(t.sizes)
    out = {f"{prefix}sizes": np.asarray(t.sizes, dtype=np.int64)}
    for k, g in enumerate(t.layers):
        out[f"{prefix}layer{k}.src"] = g.src.cpu().numpy().astype(dt)
        out[f"{prefix}layer{k}.dst"] = g.dst.cpu().numpy().astype(dt)
        if g.weight is not None:
            out[f"{prefix}layer{k}.weight"] = g.weight.detach().cpu().numpy()
    return out


def topology_from_arrays(data: dict, path, prefix: str = "") -> Topology:
    try:
        if data[f"{prefix}sizes"].ndim != 1:
            raise TopologyError(f"sizes has shape {data[f'{prefix}sizes'].shape}, expected 1-D")
        sizes = [int(s) for s in data[f"{prefix}sizes"]]
        layers = []
        for k in range(len(sizes) - 1):
            w = data.get(f"{prefix}layer{k}.weight")
            layers.append(LayerGraph(sizes[k], sizes[k + 1],
                                     torch.from_numpy(data[f"{prefix}layer{k}.src"].astype(np.int64)),
                                     torch.from_numpy(data[f"{prefix}layer{k}.dst"].astype(np.int64)),
                                     None if w is None else torch.from_numpy(w.copy())))
        return Topology(layers)
    except KeyError as err:
        raise TopologyFormatError(f"{str(path)!r} is missing array {err}") from None
    except TopoError as err:
        raise TopologyFormatError(f"{str(path)!r} holds an invalid topology: {err}") from None
    except (TypeError, ValueError) as err:  # e.g. string arrays where numbers belong
        raise TopologyFormatError(f"{str(path)!r} holds malformed topology arrays ({err})") from None


def save_topology(t: Topology, path: str | os.PathLike, meta: dict | None = None) -> None:
    write_npz(path, "topo.topology", topology_arrays(t), meta)


def load(path: str | os.PathLike) -> Topology:
    """Load a :class:`Topology` written by :meth:`Topology.save`.

    Raises
    ------
    topo.errors.TopologyFormatError
        If the file is truncated, corrupt, not a topology, or of another format version.

    Examples
    --------
    >>> import topo, tempfile, os
    >>> t = topo.erdos_renyi([5, 4], density=0.5, seed=1)
    >>> p = os.path.join(tempfile.mkdtemp(), "t.npz")
    >>> t.save(p); topo.load(p) == t
    True
    """
    data = read_npz(path, "topo.topology")
    check_keys(data, topology_keys(data), path)
    return topology_from_arrays(data, path)
