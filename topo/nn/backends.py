"""Backends of :class:`~topo.nn.SparseLinear` and the ``"auto"`` rule that picks one per layer.

=================  ==========================================================================
``"csr"``          CSR products through torch (MKL on CPU, cuSPARSE on CUDA); memory O(edges).
``"dense"``        masked dense: values scattered into an ``n_out × n_in`` matrix, then a
                   dense GEMM. The reference; the fast choice for small or dense layers.
``"torch_sparse"`` ``torch_sparse.SparseTensor`` products (``pip install -e .[torch-sparse]``).
``"auto"``         :func:`choose_backend`, decided per layer from its density, size and device.
=================  ==========================================================================

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

import torch

from ..errors import TopologyError

__all__ = ["BACKENDS", "BackendUnavailableError", "check_backend", "choose_backend", "resolve_backend",
           "torch_sparse_available", "CPU_BREAK_EVEN_DENSITY", "CPU_TORCH_OPS_BREAK_EVEN_DENSITY",
           "CUDA_BREAK_EVEN_DENSITY", "DENSE_MAX_CELLS"]

BACKENDS = ("auto", "csr", "dense", "torch_sparse")

#: Above this density (and below DENSE_MAX_CELLS) "auto" picks "dense" on CPU.
CPU_BREAK_EVEN_DENSITY = 0.4
#: The same when topo's CPU kernels are off (torch's CSR ops are slower, so dense wins sooner).
CPU_TORCH_OPS_BREAK_EVEN_DENSITY = 0.25
#: Above this density (and below DENSE_MAX_CELLS) "auto" picks "dense" on CUDA.
CUDA_BREAK_EVEN_DENSITY = 0.05
#: "auto" never picks "dense" for a layer whose dense matrix has more cells than this (64 MiB in float32).
DENSE_MAX_CELLS = 2**24


class BackendUnavailableError(TopologyError, ImportError):
    """A backend was requested whose optional dependency is not installed (a ValueError and an ImportError)."""


def torch_sparse_available() -> bool:
    """Whether the optional ``torch_sparse`` package can be imported."""
    return importlib.util.find_spec("torch_sparse") is not None


def check_backend(name) -> str:
    """Validate a backend name; raise for unknown names or a missing optional dependency."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise TopologyError(f"unknown backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}")
    if name == "torch_sparse" and not torch_sparse_available():
        raise BackendUnavailableError(
            "backend 'torch_sparse' needs the optional torch-sparse package, which is not installed; "
            "install it with `pip install -e .[torch-sparse]` (it compiles for ~15 min) or use backend='csr'")
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
