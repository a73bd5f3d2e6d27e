"""``estimate_memory``: what a sparse MLP will need in RAM (or GPU memory) before it is built.

The estimate mirrors what topo allocates, component by component:

* **parameters** — one value per edge plus biases (a dense output layer: ``n_in·n_out``);
  exact, equal to ``sum(p.numel() * p.element_size())`` of the compiled model.
* **gradients** — the same again (``.grad``).
* **optimizer_state** — per value: 0 (SGD), 1 (SGD with momentum), 2 (Adam/AdamW moments).
* **indices** — :class:`~topo.nn.SparseLinear` keeps ``edge_index`` (int32, 8 B per
  edge; int64 for layers wider than 2³¹ − 1); its cached CSR structure adds column
  indices of ``W`` and ``Wᵀ`` (int32 where they fit), the permutation between them and row pointers (read off
  :class:`topo.nn.CsrStructure`, so the count follows it). Layers the ``"auto"``
  backend runs dense hold no CSR.
* **activations** — what autograd keeps for one training batch: per hidden neuron the
  ReLU output, and with dropout its mask and output; the transposed input copy; logits.
  With activation checkpointing only every block's input, plus one block being recomputed.
* **workspace** — transient buffers of one step: backward gradients of the widest
  layer, the permuted values for ``Wᵀ``, SGD's weight-decay copy of the gradients, and
  the dense matrices of layers that run on the dense backend.
* **evolution** — the peak scratch of one evolution step: rules run layer by layer, so
  that part scales with the *largest* layer's edges (``EVOLVE_BYTES_PER_EDGE``), plus what
  scales with all edges (``RECORD_BYTES_PER_EDGE``: the History's change lists and key update). Both measured.
* **history** — what :class:`~topo.Evolver` keeps: its History's weighted epoch-0
  topology and running keys, and per evolution step the births, deaths and (as
  ``history_weights`` says) the weights.
* **runtime** — the Python interpreter with torch and topo imported, plus numba and
  the compiled kernels when csr layers run topo's CPU kernels.

Training peaks at the persistent parts plus the larger of (activations + workspace)
and evolution. ``topo bench scale`` compares the estimate with measured peak RSS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from ..errors import ParameterError

__all__ = ["MemoryEstimate", "estimate_memory", "format_bytes", "OPTIMIZER_SLOTS", "EVOLVE_BYTES_PER_EDGE",
           "RECORD_BYTES_PER_EDGE", "RUNTIME_BYTES", "KERNELS_RUNTIME_BYTES"]

#: Per-value optimizer state tensors.
OPTIMIZER_SLOTS = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}
#: Peak scratch of evolving one layer (SET: magnitude prune + random growth, rewire, optimizer-state
#: remap), bytes per edge of the *largest* layer: its keys and weight copy, the kept keys and values, the
#: new keys and values, the rewire's matching, the carried values, gradient and momentum and the new
#: int32 edge_index. Measured (VmHWM over a step, torch 2.13, 10M edges): 48-49.
EVOLVE_BYTES_PER_EDGE = 50
#: Scratch of the step that scales with *all* edges (the History's change lists and key update, the
#: allocator's retained chunks of the other layers), bytes per edge of the whole network. Measured: 9-11.
RECORD_BYTES_PER_EDGE = 10
#: RSS of a Python process that imported torch and topo and ran a first training step (MKL, OpenMP and
#: autograd state, allocator arenas); measured on CPU with torch 2.13: ~220 MiB after the imports, ~85 MiB more.
RUNTIME_BYTES = 300 * 2**20
#: Added to the runtime when csr layers run topo's CPU kernels (topo.nn.kernels): numba and llvmlite
#: imported (~115 MiB) and the kernels loaded or compiled (~65 MiB from numba's cache, more while LLVM
#: compiles in a fresh checkout). Measured with torch 2.13 / numba 0.68: a 1M-edge run peaked 187 MiB
#: (cached) to 266 MiB (compiling) above the estimate made without it.
KERNELS_RUNTIME_BYTES = 220 * 2**20
_INT32_MAX = 2**31 - 1
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units.

    Examples
    --------
    >>> format_bytes(3 * 2**30 + 2**29)
    '3.50 GiB'
    """
    n = float(n)
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class MemoryEstimate:
    """Bytes per component (see :mod:`topo.nn.memory`); ``total`` is the expected peak."""

    sizes: tuple
    edges: list = field(default_factory=list)
    parameters: int = 0
    gradients: int = 0
    optimizer_state: int = 0
    indices: int = 0
    activations: int = 0
    workspace: int = 0
    evolution: int = 0
    history: int = 0
    runtime: int = 0

    @property
    def num_edges(self) -> int:
        return int(sum(self.edges))

    @property
    def num_neurons(self) -> int:
        return int(sum(self.sizes))

    @property
    def persistent(self) -> int:
        """Bytes held for the whole run: runtime, values, gradients, optimizer state, indices, history."""
        return (self.runtime + self.parameters + self.gradients + self.optimizer_state + self.indices
                + self.history)

    @property
    def train_peak(self) -> int:
        """Peak of a training step: persistent + activations + workspace."""
        return self.persistent + self.activations + self.workspace

    @property
    def total(self) -> int:
        """Expected peak: persistent + the larger of a training step's and an evolution step's scratch."""
        return self.persistent + max(self.activations + self.workspace, self.evolution)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(num_edges=self.num_edges, num_neurons=self.num_neurons, total=self.total)
        return d

    def __str__(self) -> str:
        rows = [("parameters", self.parameters), ("gradients", self.gradients),
                ("optimizer state", self.optimizer_state), ("indices", self.indices),
                ("activations", self.activations), ("step workspace", self.workspace),
                ("evolution scratch", self.evolution), ("evolver history", self.history),
                ("python + torch (+ numba kernels)", self.runtime)]
        head = (f"memory estimate for sizes {list(self.sizes)}: {self.num_neurons:,} neurons, "
                f"{self.num_edges:,} edges")
        lines = [head] + [f"  {name:<18} {format_bytes(v):>11}" for name, v in rows]
        lines.append(f"  {'expected peak':<18} {format_bytes(self.total):>11}  (persistent + max(training step, "
                     f"evolution step))")
        return "\n".join(lines)


def _layer_edges(sizes, epsilon, density, output_dense) -> list[int]:
    from ..graph.generators import _layer_densities

    pairs = list(zip(sizes[:-1], sizes[1:]))
    dens = _layer_densities(sizes, epsilon, density)
    edges = [min(a * b, int(round(d * a * b))) for (a, b), d in zip(pairs, dens)]
    if output_dense:
        edges[-1] = pairs[-1][0] * pairs[-1][1]
    return edges


def estimate_memory(sizes: Sequence[int], epsilon: float | None = None, density=None, batch: int = 128,
                    dtype: torch.dtype = torch.float32, optimizer: str = "sgd-momentum", *, bias: bool = True,
                    output_dense: bool = False, dropout: float = 0.0, weight_decay: bool = True,
                    evolve: bool = True, history_steps: int | None = 1, history_weights="all",
                    backend: str = "auto", device="cpu", checkpoint: bool = False) -> MemoryEstimate:
    """Estimate the memory of training a SET-style sparse MLP, before building it.

    Parameters
    ----------
    sizes : sequence of int
        Neuron layer sizes, inputs first (as for :func:`topo.erdos_renyi`).
    epsilon, density : float, optional
        SET's ε or the density (exactly one), as :func:`topo.erdos_renyi` takes them.
    batch : int
        Training batch per process.
    dtype : torch.dtype
        Floating dtype of values and activations.
    optimizer : {"sgd", "sgd-momentum", "adam", "adamw"}
    bias, output_dense : bool
        As for :func:`topo.compile`.
    dropout : float
        Dropout probability (> 0 keeps a mask and an extra copy per hidden activation).
    weight_decay : bool
        SGD with weight decay allocates a temporary copy of all gradients per step.
    evolve : bool
        Count the evolution scratch and the :class:`~topo.Evolver` history.
    history_steps : int or None
        Evolution steps whose births, deaths and weights the History holds
        (``None``: none — a run without an Evolver history).
    history_weights : str or int
        The Evolver's ``history_weights`` (``"all"``, ``"every:K"``, ``"none"``, optionally ``":float16"``):
        which of those steps also keep a copy of every weight, in which dtype.
    backend : str
        The layers' backend (``"auto"`` picks dense for small dense-enough layers).
    device : str
        Decides the ``"auto"`` backend and the runtime overhead (counted on CPU only).
    checkpoint : bool
        Activation checkpointing (``SparseMLP.checkpoint_activations = True``): only
        each block's input is kept, plus one block's activations while it is recomputed.

    Returns
    -------
    MemoryEstimate
        Bytes per component, ``total`` (expected peak) and a readable ``str()``.

    Examples
    --------
    >>> est = estimate_memory([784, 1000, 1000, 10], epsilon=20, batch=128)
    >>> est.num_edges, est.parameters == 4 * (est.num_edges + 2010)
    (85680, True)
    """
    from ..graph.history import parse_history_weights
    from ..graph.topology import check_sizes
    from .backends import check_backend, get_backend, resolve_backend

    sizes = check_sizes(sizes)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ParameterError(f"batch must be a positive integer, got {batch!r}")
    if optimizer not in OPTIMIZER_SLOTS:
        raise ParameterError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZER_SLOTS)}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ParameterError(f"dtype must be a floating torch dtype, got {dtype!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ParameterError(f"dropout must be in [0, 1), got {dropout!r}")
    if history_steps is not None and (isinstance(history_steps, bool) or not isinstance(history_steps, int)
                                      or history_steps < 0):
        raise ParameterError(f"history_steps must be a non-negative int or None, got {history_steps!r}")
    check_backend(backend)
    s = torch.empty(0, dtype=dtype).element_size()
    edges = _layer_edges(sizes, epsilon, density, output_dense)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    n_layers = len(pairs)
    est = MemoryEstimate(sizes=tuple(sizes), edges=edges)
    est.runtime = RUNTIME_BYTES if torch.device(device).type == "cpu" else 0
    n_values = sum(edges) + (sum(sizes[1:]) if bias else 0)
    est.parameters = n_values * s
    est.gradients = n_values * s
    est.optimizer_state = OPTIMIZER_SLOTS[optimizer] * n_values * s
    dense_cells, uses_kernels = 0, False
    for k, ((n_in, n_out), e) in enumerate(zip(pairs, edges)):
        if output_dense and k == n_layers - 1:
            continue
        est.indices += (8 if max(n_in, n_out) <= _INT32_MAX else 16) * e  # edge_index [2, E], int32 if it fits
        # The backend's own memory model (topo.nn.backends.BACKENDS): csr holds the CSR of W and Wᵀ and the
        # permutation between them; dense scatters the values into a dense matrix every step.
        held = get_backend(resolve_backend(backend, n_in, n_out, e, device)).memory(n_in, n_out, e)
        est.indices += held.indices
        dense_cells = max(dense_cells, held.dense_cells)
        uses_kernels = uses_kernels or held.cpu_kernels
    if uses_kernels and torch.device(device).type == "cpu":
        from . import kernels
        if kernels.enabled():
            est.runtime += KERNELS_RUNTIME_BYTES
    hidden = sum(sizes[1:-1])
    # ReLU output, plus with dropout its output and its mask: none on CPU where topo's Dropout
    # regenerates it from a seed (float32/float64 with the kernels), a float one without them, a
    # bool one from CUDA's fused kernel.
    if torch.device(device).type != "cpu":
        mask = 1
    else:
        from . import kernels
        mask = 0 if kernels.enabled() and dtype in (torch.float32, torch.float64) else s
    per_neuron = s + ((mask + s) if dropout > 0 else 0)
    widest = max(sizes[1:])
    if checkpoint:
        est.activations = batch * (sum(sizes[:-1]) * s + widest * per_neuron + 2 * sizes[-1] * s)
    else:
        est.activations = batch * (hidden * per_neuron + 2 * sizes[0] * s + 2 * sizes[-1] * s)
    sparse_edges = [e for k, e in enumerate(edges) if not (output_dense and k == n_layers - 1)]
    biggest = max(sparse_edges, default=0)
    if output_dense:
        dense_cells = max(dense_cells, pairs[-1][0] * pairs[-1][1])
    # Backward holds a layer's output and input gradients beside the saved activations, plus the
    # permuted values of the largest Wᵀ; a dense-backend layer its scattered weight, gradient and a
    # temporary.
    step_ws = 2 * batch * widest * s + biggest * s + 3 * dense_cells * s
    # SGD with weight decay copies all gradients in optimizer.step(), after the activations are freed.
    opt_ws = est.gradients if (weight_decay and optimizer.startswith("sgd")) else 0
    est.workspace = max(step_ws, opt_ws - est.activations)
    if evolve:
        n_edges = sum(edges)
        # Layers evolve one at a time: the largest one's scratch on top of what scales with all edges.
        est.evolution = EVOLVE_BYTES_PER_EDGE * biggest + RECORD_BYTES_PER_EDGE * n_edges
        if history_steps is not None:
            hw = parse_history_weights(history_weights)
            kept = -(-history_steps // hw.every) if hw.every else 0
            w_s = torch.empty(0, dtype=hw.dtype).element_size()
            # The initial topology (keys + values) and the running keys, then per step births + deaths
            # ([2, k] rows of the index dtype, k = 0.3·E under SET) and, on the steps that keep them,
            # every weight.
            i_s = 4 if max(sizes) < 2**31 - 1 else 8
            est.history = (int((16 + s) * n_edges + history_steps * 2 * 2 * i_s * 0.3 * n_edges)
                           + kept * w_s * n_edges)
    return est


def _csr_layout() -> list[tuple[str, int, bool]]:
    """What topo.nn's CsrStructure allocates: ``(kind, itemsize, follows_index_dtype)`` per tensor.

    ``kind`` is ``"edge"`` (one entry per edge), ``"row"`` (``n_out + 1``) or ``"col"``
    (``n_in + 1``). Read off a tiny structure, so the estimate follows changes to topo.nn.
    """
    global _LAYOUT
    if _LAYOUT is None:
        from .functional import CsrStructure

        n_in, n_out, e = 3, 5, 7  # distinct lengths: 7 per edge, 6 = n_out + 1, 4 = n_in + 1
        keys = torch.tensor([0, 2, 4, 6, 8, 10, 14])
        src, dst = keys % n_in, keys // n_in
        st = CsrStructure(src, dst, n_in, n_out, index_dtype=torch.int32)
        kinds = {e: "edge", n_out + 1: "row", n_in + 1: "col"}
        layout = []
        for name in type(st).__slots__:
            t = getattr(st, name, None)
            if not isinstance(t, torch.Tensor) or name in ("src", "dst"):  # src/dst: views of edge_index
                continue
            layout.append((kinds.get(t.numel(), "edge"), t.element_size(), t.dtype == torch.int32))
        _LAYOUT = layout
    return _LAYOUT


_LAYOUT: list[tuple[str, int, bool]] | None = None


def csr_index_bytes(n_in: int, n_out: int, e: int) -> int:
    """Bytes of the CSR structure (``CsrStructure``) of an ``n_in → n_out`` layer with ``e`` edges."""
    wide = max(n_in, n_out, e) >= _INT32_MAX  # topo.nn.functional.index_dtype_for picks int64 then
    count = {"edge": e, "row": n_out + 1, "col": n_in + 1}
    return sum(count[kind] * (8 if wide and int32 else size) for kind, size, int32 in _csr_layout())
