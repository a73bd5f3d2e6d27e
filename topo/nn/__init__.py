"""Truly sparse torch layers compiled from topologies.

:class:`SparseLinear` holds one value per edge and runs CSR products inside
autograd (MKL on CPU, cuSPARSE on CUDA); :func:`compile` turns a
:class:`~topo.Topology` into a :class:`SparseMLP`; :func:`remap_optimizer_state`
carries optimizer state across a rewire. :class:`SparseRBM` is a truly sparse RBM
(:mod:`topo.nn.ais` for its likelihood), :class:`SparseDAE` a sparse denoising autoencoder.
"""

from . import ais
from .allocator import tune_cpu_allocator
from .autoencoder import SparseDAE
from .backends import (
                       BACKENDS,
                       BackendUnavailableError,
                       choose_backend,
                       resolve_backend,
                       torch_sparse_available,
)
from .activations import AllReLU
from .dropout import Dropout
from .functional import CsrStructure, csr_linear, dense_linear, torch_sparse_linear
from .init import init_values
from .linear import SparseLinear
from .mlp import SparseMLP, compile
from .optim import remap_optimizer_state
from .dense import to_dense
from .model_file import load_model, save_model
from .sparsify import sparse_layers, sparsify, topology_of
from .rbm import SparseRBM

__all__ = [
                       "AllReLU",
                       "BACKENDS",
                       "BackendUnavailableError",
                       "CsrStructure",
                       "Dropout",
                       "SparseDAE",
                       "SparseLinear",
                       "SparseMLP",
                       "SparseRBM",
                       "ais",
                       "choose_backend",
                       "compile",
                       "csr_linear",
                       "dense_linear",
                       "init_values",
                       "load_model",
                       "remap_optimizer_state",
                       "resolve_backend",
                       "save_model",
                       "sparse_layers",
                       "sparsify",
                       "to_dense",
                       "topology_of",
                       "torch_sparse_available",
                       "torch_sparse_linear",
                       "tune_cpu_allocator",
]
