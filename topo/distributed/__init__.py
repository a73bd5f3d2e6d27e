"""Data-parallel training of sparse networks with ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Every rank holds the whole model and a shard of each batch. After
``backward()``, :func:`allreduce_gradients` combines the gradients (an explicit
bucketed all-reduce rather than ``DistributedDataParallel``, whose buckets
would have to be rebuilt after every rewire); identical optimizer steps then
keep the values identical. Evolution is decided on rank 0 and replayed on the
others by :func:`broadcast_evolution`; :func:`check_consistent` compares
per-layer hashes of every rank with rank 0's and raises
:class:`~topo.errors.TopologyMismatchError` on a mismatch.

Processes come from ``torchrun`` (:func:`init_distributed` reads its
environment) or from :func:`launch`, which spawns ``nproc`` local processes on
a free loopback port.

>>> from topo.distributed import resolve_backend, shard
>>> resolve_backend("auto", "cpu"), shard(torch.arange(6), 0, 2).tolist()
('gloo', [0, 2, 4])
"""

import torch  # noqa: F401  (the doctest above uses it)

from ..errors import TopologyMismatchError
from ._collective import agree, allreduce_gradients, allreduce_sum, broadcast_model, comm_device, shard
from ._env import (
                   BACKENDS,
                   DistInfo,
                   check_nproc,
                   env_world_size,
                   find_free_port,
                   get_info,
                   init_distributed,
                   is_torchrun,
                   launch,
                   max_nproc,
                   resolve_backend,
                   shutdown,
)
from ._evolution import broadcast_evolution, check_consistent, layer_digests, sparse_layers

__all__ = ["DistInfo", "BACKENDS", "init_distributed", "shutdown", "get_info", "is_torchrun", "env_world_size",
           "resolve_backend", "max_nproc", "check_nproc", "find_free_port", "launch", "agree", "allreduce_gradients",
           "allreduce_sum", "broadcast_model", "comm_device", "shard", "broadcast_evolution", "check_consistent",
           "layer_digests", "sparse_layers", "TopologyMismatchError"]
