"""Backends of :class:`~topo.nn.SparseLinear`, their registry, and the ``"auto"`` rule that picks one per layer.

=================  ==========================================================================
``"csr"``          CSR products through torch (MKL on CPU, cuSPARSE on CUDA); memory O(edges).
``"dense"``        masked dense: values scattered into an ``n_out × n_in`` matrix, then a
                   dense GEMM. The reference; the fast choice for small or dense layers.
``"torch_sparse"`` ``torch_sparse.SparseTensor`` products (``pip install -e .[torch-sparse]``).
``"auto"``         :func:`choose_backend`, decided per layer from its density, size and device.
=================  ==========================================================================

Each backend is one entry of :data:`BACKENDS`, a :class:`~topo.utils.registry.Registry`
of :class:`Backend` records: its forward (an autograd function applied to a layer's
values and cached structure), its memory model (what :func:`topo.estimate_memory`
counts per layer) and its availability. ``SparseLinear.forward``,
:func:`check_backend`, ``topo train --backend`` and the memory estimate all read that
table; :func:`register_backend` adds one (e.g. a Triton kernel):

>>> import torch, topo
>>> from topo.nn.backends import BackendMemory, register_backend, BACKENDS
>>> def masked(layer, x):                      # the dense reference, as a toy backend
...     return x @ layer.to_dense().t() + layer.bias
>>> _ = register_backend("toy", masked, memory=lambda n_in, n_out, e: BackendMemory(0, n_in * n_out))
>>> lin = topo.nn.SparseLinear(8, 4, density=0.5, seed=0, backend="toy")
>>> torch.allclose(lin(torch.ones(2, 8)), torch.ones(2, 8) @ lin.to_dense().t() + lin.bias)
True
>>> _ = BACKENDS.unregister("toy")

The auto rule (constants measured on the development machine, see
``docs/benchmarks.md``): a layer runs ``"dense"`` when its dense matrix is small
(at most :data:`DENSE_MAX_CELLS` cells, so the dense fallback never costs much
memory) *and* its density is above the device's break-even density, where the
three dense GEMMs of a training step become cheaper than the three sparse
products; every other layer runs ``"csr"``. On CPU, with topo's kernels
(:mod:`topo.nn.kernels`), csr and dense cross between densities 0.3 and 0.9 (0.3–0.5
at 4000 neurons, 0.5–0.9 at 300–1000, by thread count), hence
:data:`CPU_BREAK_EVEN_DENSITY` = 0.4; with torch's own CSR ops (kernels off) they
crossed between 0.2 and 0.5, hence :data:`CPU_TORCH_OPS_BREAK_EVEN_DENSITY` = 0.25.
On CUDA cuSPARSE trails cuBLAS by more; :data:`CUDA_BREAK_EVEN_DENSITY` is an
estimate, not yet measured.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import NamedTuple

import torch

from ..errors import ParameterError, ParameterTypeError
from ..utils.registry import Registry
from .functional import LOW_PRECISION, csr_linear, dense_linear, torch_sparse_linear

__all__ = ["BACKENDS", "Backend", "BackendMemory", "BackendUnavailableError", "register_backend", "get_backend",
           "backend_names", "check_backend", "choose_backend", "resolve_backend", "torch_sparse_available",
           "CPU_BREAK_EVEN_DENSITY", "CPU_TORCH_OPS_BREAK_EVEN_DENSITY", "CUDA_BREAK_EVEN_DENSITY",
           "DENSE_MAX_CELLS"]

#: Above this density (and below DENSE_MAX_CELLS) "auto" picks "dense" on CPU.
CPU_BREAK_EVEN_DENSITY = 0.4
#: The same when topo's CPU kernels are off (torch's CSR ops are slower, so dense wins sooner).
CPU_TORCH_OPS_BREAK_EVEN_DENSITY = 0.25
#: Above this density (and below DENSE_MAX_CELLS) "auto" picks "dense" on CUDA.
CUDA_BREAK_EVEN_DENSITY = 0.05
#: "auto" never picks "dense" for a layer whose dense matrix has more cells than this (64 MiB in float32).
DENSE_MAX_CELLS = 2**24


class BackendUnavailableError(ParameterError, ImportError):
    """A backend was requested whose optional dependency is not installed (a ParameterError and an ImportError)."""


def torch_sparse_available() -> bool:
    """Whether the optional ``torch_sparse`` package can be imported."""
    return importlib.util.find_spec("torch_sparse") is not None


class BackendMemory(NamedTuple):
    """What one layer on a backend holds beyond its values and ``edge_index`` (for :func:`topo.estimate_memory`).

    ``indices``: persistent bytes of cached structure; ``dense_cells``: cells of a
    dense ``n_out × n_in`` matrix materialised per training step (scattered weight,
    its gradient, a temporary); ``cpu_kernels``: whether it runs topo's numba kernels
    on CPU (their runtime is then counted once).
    """

    indices: int
    dense_cells: int = 0
    cpu_kernels: bool = False


class Backend(NamedTuple):
    """One entry of :data:`BACKENDS`.

    ``forward(layer, x)``: ``y = x · Wᵀ + b`` for a :class:`~topo.nn.SparseLinear`
    ``layer`` and a non-empty 2-D input ``x`` of shape ``(batch, n_in)``, inside
    autograd (gradients to ``layer.weight``, ``layer.bias`` and ``x``). The result may be
    in any floating dtype (``SparseLinear`` casts it to the input's, or autocast's); a
    backend that cannot multiply float16/bfloat16 operands casts them to float32 itself.
    ``memory(n_in, n_out, num_edges)`` → :class:`BackendMemory`.
    ``available()`` tells whether its dependencies are installed; ``install`` completes
    "backend NAME needs ..." in the error when they are not.
    """

    forward: Callable[..., torch.Tensor]
    memory: Callable[[int, int, int], BackendMemory]
    available: Callable[[], bool]
    install: str = ""


def _always() -> bool:
    return True


def _csr_memory(n_in: int, n_out: int, num_edges: int) -> BackendMemory:
    from .memory import csr_index_bytes  # memory.py reads this table: import it on use

    return BackendMemory(csr_index_bytes(n_in, n_out, num_edges), 0, True)


def _dense_memory(n_in: int, n_out: int, num_edges: int) -> BackendMemory:
    return BackendMemory(0, n_in * n_out, False)


#: The backend registry: name → :class:`Backend`. ``"auto"`` is not an entry: it picks one per layer.
BACKENDS: Registry[Backend] = Registry("backend")


def register_backend(name: str, forward: Callable[..., torch.Tensor], *,
                     memory: Callable[[int, int, int], BackendMemory] = _csr_memory,
                     available: Callable[[], bool] = _always, install: str = "", help: str = "",
                     replace: bool = False) -> Backend:
    """Register a backend for :class:`~topo.nn.SparseLinear` (``backend=name``, ``topo train --backend``).

    Parameters
    ----------
    name : str
    forward : callable ``(layer, x) -> y``
        See :class:`Backend`; ``layer.csr_structure()`` gives the cached CSR structure.
    memory : callable ``(n_in, n_out, num_edges) -> BackendMemory``
        Its memory model; by default that of the ``"csr"`` backend.
    available : callable ``() -> bool``
        ``False`` makes :func:`check_backend` raise :class:`BackendUnavailableError` with ``install``.
    help : str
        One line for the CLI help and the docs.
    """
    if name == "auto":
        raise ParameterError("'auto' picks a backend per layer and cannot be registered")
    for what, fn in (("forward", forward), ("memory", memory), ("available", available)):
        if not callable(fn):
            raise ParameterTypeError(f"backend {name!r}: {what} must be callable, got {fn!r}")
    return BACKENDS.register(name, Backend(forward, memory, available, install), help=help, replace=replace)


def _float32_if_low(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
    """float16/bfloat16 operands as float32: no dense or torch_sparse product of those dtypes everywhere."""
    if any(t is not None and t.dtype in LOW_PRECISION for t in (x, w, b)):
        return x.float(), w.float(), None if b is None else b.float()
    return x, w, b


def _csr_forward(layer, x: torch.Tensor) -> torch.Tensor:
    # float16/bfloat16 operands are multiplied in float32 inside (topo.nn.functional.csr_linear).
    return csr_linear(x, layer.weight, layer.bias, layer.csr_structure())


def _dense_forward(layer, x: torch.Tensor) -> torch.Tensor:
    x, w, b = _float32_if_low(x, layer.weight, layer.bias)
    return dense_linear(x, w, b, layer.edge_index[0], layer.edge_index[1], layer.in_features, layer.out_features)


def _torch_sparse_forward(layer, x: torch.Tensor) -> torch.Tensor:
    x, w, b = _float32_if_low(x, layer.weight, layer.bias)
    return torch_sparse_linear(x, w, b, layer.csr_structure())


BACKENDS.register("csr", Backend(_csr_forward, _csr_memory, _always),
                  help="CSR products: topo's kernels on CPU, MKL/cuSPARSE otherwise; memory O(edges)")
BACKENDS.register("dense", Backend(_dense_forward, _dense_memory, _always),
                  help="masked dense: values scattered into an n_out x n_in matrix, one dense GEMM")
BACKENDS.register("torch_sparse",
                  Backend(_torch_sparse_forward, _csr_memory, torch_sparse_available,
                          "the optional torch-sparse package, which is not installed; install it with "
                          "`pip install -e .[torch-sparse]` (it compiles for ~15 min) or use backend='csr'"),
                  help="torch_sparse.SparseTensor products (the torch-sparse extra)")


def backend_names() -> tuple[str, ...]:
    """``"auto"`` and the registered backends: what ``backend=`` accepts."""
    return ("auto", *BACKENDS.names())


def get_backend(name: str) -> Backend:
    """The registered :class:`Backend` called ``name`` (not ``"auto"``: resolve that first)."""
    return BACKENDS.get(name)


def check_backend(name) -> str:
    """Validate a backend name; raise for unknown names or a missing optional dependency."""
    if not isinstance(name, str) or name not in backend_names():
        raise ParameterError(f"unknown backend {name!r}; choose one of {', '.join(map(repr, backend_names()))}")
    if name != "auto":
        entry = BACKENDS.get(name)
        if not entry.available():
            raise BackendUnavailableError(
                f"backend {name!r} needs {entry.install or 'an optional dependency that is not installed'}")
    return name


def choose_backend(n_in: int, n_out: int, num_edges: int, device: torch.device | str = "cpu") -> str:
    """The ``"auto"`` rule: ``"dense"`` for small, dense-enough layers, ``"csr"`` otherwise.

    Examples
    --------
    >>> choose_backend(64, 100, 3200)          # half dense, tiny: one dense GEMM wins
    'dense'
    >>> choose_backend(4000, 4000, 160_000)    # 1 % dense
    'csr'
    """
    cells = n_in * n_out
    if cells > DENSE_MAX_CELLS or cells == 0:
        return "csr"
    if torch.device(device).type == "cuda":
        threshold = CUDA_BREAK_EVEN_DENSITY
    else:
        from . import kernels
        threshold = CPU_BREAK_EVEN_DENSITY if kernels.enabled() else CPU_TORCH_OPS_BREAK_EVEN_DENSITY
    return "dense" if num_edges / cells > threshold else "csr"


def resolve_backend(name: str, n_in: int, n_out: int, num_edges: int, device: torch.device | str = "cpu") -> str:
    """The backend a layer actually runs: ``name`` itself, or :func:`choose_backend` for ``"auto"``."""
    name = check_backend(name)
    return choose_backend(n_in, n_out, num_edges, device) if name == "auto" else name
