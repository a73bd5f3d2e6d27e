"""Truly sparse torch layers compiled from topologies.

:class:`SparseLinear` holds one value per edge and runs CSR products inside
autograd (MKL on CPU, cuSPARSE on CUDA); :func:`compile` turns a
:class:`~topo.Topology` into a :class:`SparseMLP`; :func:`remap_optimizer_state`
carries optimizer state across a rewire; :func:`param_groups` gives sparse weights a
density-scaled learning rate. :class:`SparseRBM` is a truly sparse RBM
(:mod:`topo.nn.ais` for its likelihood), :class:`SparseDAE` a sparse denoising autoencoder.
"""

from . import ais
from .activations import ACTIVATIONS, AllReLU, make_activation, register_activation
from .allocator import tune_cpu_allocator
from .autoencoder import SparseDAE
from .backends import (
                       BACKENDS,
                       Backend,
                       BackendMemory,
                       BackendUnavailableError,
                       backend_names,
                       choose_backend,
                       get_backend,
                       register_backend,
                       resolve_backend,
                       torch_sparse_available,
)
from .dense import to_dense
from .dropout import Dropout
from .functional import CsrStructure, csr_linear, dense_linear, torch_sparse_linear
from .init import init_values
from .linear import SparseLinear
from .mlp import SparseMLP, compile
from .model_file import load_model, save_model
from .optim import remap_optimizer_state
from .param_groups import layer_lr, param_groups
from .rbm import SparseRBM
from .sparsify import sparse_layers, sparsify, topology_of

__all__ = ["SparseLinear", "SparseMLP", "SparseRBM", "SparseDAE", "AllReLU", "ais", "Dropout", "compile",
           "sparsify", "sparse_layers", "topology_of", "to_dense", "load_model", "save_model",
           "remap_optimizer_state", "param_groups", "layer_lr",
           "BACKENDS", "BackendUnavailableError", "choose_backend", "resolve_backend",
           "torch_sparse_available", "CsrStructure", "csr_linear", "dense_linear", "torch_sparse_linear",
           "init_values", "tune_cpu_allocator", "Backend", "BackendMemory", "register_backend", "get_backend",
           "backend_names", "ACTIVATIONS", "register_activation", "make_activation"]
