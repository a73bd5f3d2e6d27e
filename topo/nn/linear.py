"""``SparseLinear``: a truly sparse ``nn.Linear`` whose connectivity is a :class:`~topo.LayerGraph`."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError, TopologyError
from ..graph.alloc import copy, empty, zeros
from ..graph.keyset import linear_keys, match, split_into
from ..graph.layer import LayerGraph, _check_size
from ..graph.sampling import make_generator
from .backends import check_backend, get_backend, resolve_backend
from .functional import CsrStructure
from .init import bias_bound, check_init, init_values
from .optim import Moves

__all__ = ["SparseLinear", "edge_index_dtype"]


def _resize_data(p: nn.Parameter, values: torch.Tensor) -> None:
    """``p.data = values`` for a ``values`` of another length, keeping ``p`` the same object."""
    # Autograd caches a leaf's gradient accumulator together with the shape the leaf had, and torch
    # drops that cache when .data changes dtype or device but not when it changes shape. While any
    # graph from before is alive (a loss the user kept, a cycle the collector has not reached yet) the
    # next backward would check the new gradient against the old edge count and fail. Passing through
    # another dtype makes torch drop the stale accumulator.
    if values.shape != p.shape:
        p.data = values.new_empty(0, dtype=torch.float16 if values.dtype != torch.float16 else torch.float32)
    p.data = values


class SparseLinear(nn.Module):
    """``y = x · Wᵀ + b`` where ``W`` (``out × in``) is nonzero only on the edges of a layer graph.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Learn an additive bias (``nn.Linear``-style init with the effective fan-in).
    layer : LayerGraph, optional
        The edges. Its weights, if any, become the initial values.
    epsilon, density : float, optional
        Without ``layer``: draw an Erdős–Rényi layer (SET's ``ε``, or a density).
        Give exactly one of ``layer``, ``epsilon``, ``density``.
    backend : {"auto", "csr", "dense", "torch_sparse"}
        See :mod:`topo.nn.backends`; ``"auto"`` decides per device at the first call.
    seed : int or torch.Generator, optional
        Drives the random edges and the initial values. ``None`` draws from torch's
        global RNG, so ``torch.manual_seed`` makes it reproducible like ``nn.Linear``.
    init : str or ("normal", sigma)
        Initial values of unweighted edges (:mod:`topo.nn.init`): He-uniform with the
        effective fan-in (mean in-degree) by default; the ``*_dense`` schemes use
        ``n_in`` and ``n_out`` as a dense layer of the same shape would.
    device, dtype : optional
        Where and in which floating dtype the parameters live.

    Attributes
    ----------
    weight : nn.Parameter, shape ``[num_edges]``
        One value per edge, in the layer graph's ``(dst, src)`` order.
    bias : nn.Parameter or None, shape ``[out_features]``
    edge_index : buffer, ``[2, num_edges]``, int32 (int64 only for layers wider than 2³¹ − 1)
        Row 0 the source (input) index, row 1 the target (output) index of each edge.
        int32 halves its memory (8 B per edge); state dicts and checkpoints holding an
        int64 ``edge_index`` load as before (cast on load).

    Notes
    -----
    The module is an ordinary ``nn.Module``: ``state_dict`` (edge structure
    included, so loading a checkpoint with another edge count resizes the layer),
    ``.to()``, ``.double()``, hooks, any optimizer. Forward hooks see the input and
    output as usual. With the ``"csr"`` backend the output is a transposed view of
    a contiguous ``(out, batch)`` tensor — use ``.reshape`` rather than ``.view``.

    Examples
    --------
    >>> import torch, topo
    >>> lin = topo.nn.SparseLinear(20, 10, epsilon=2, seed=0)
    >>> lin.weight.shape, lin(torch.randn(4, 20)).shape
    (torch.Size([60]), torch.Size([4, 10]))
    """

    weight: nn.Parameter
    bias: nn.Parameter | None
    edge_index: torch.Tensor  # a registered buffer (nn.Module.__getattr__ alone types it Tensor | Module)
    _structure_cache: CsrStructure | None
    _resolved: tuple[tuple[str, int], str] | None  # ((device type, edge count), backend name)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 layer: LayerGraph | None = None, epsilon: float | None = None, density: float | None = None,
                 backend: str = "auto", seed=None, init="kaiming_uniform", device=None, dtype=None) -> None:
        super().__init__()
        n_in, n_out = _check_size(in_features, "in_features"), _check_size(out_features, "out_features")
        self._backend = check_backend(backend)
        init = check_init(init)
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise ParameterError(f"dtype must be a floating dtype, got {dtype}")
        gen = make_generator(int(torch.randint(0, 2**62, (1,))) if seed is None else seed)
        if layer is not None:
            if epsilon is not None or density is not None:
                raise ParameterError("give either layer= or epsilon=/density=, not both")
            _check_graph(layer, n_in, n_out)
        elif epsilon is None and density is None:
            raise ParameterError("SparseLinear needs its edges: pass layer=, epsilon= or density=")
        else:
            from ..graph.generators import erdos_renyi
            layer = erdos_renyi([n_in, n_out], epsilon=epsilon, density=density, seed=gen).layers[0]
        self.in_features, self.out_features = n_in, n_out
        e = layer.num_edges
        if layer.weight is not None:
            values = layer.weight.detach().to(dtype=dtype, copy=True)
        else:
            values = init_values(e, n_in, n_out, e, init, gen, dtype)
        self.weight = nn.Parameter(values.to(device))
        if bias:
            b = bias_bound(n_in, n_out, e, init)
            self.bias = nn.Parameter(torch.empty(n_out, dtype=dtype).uniform_(-b, b, generator=gen).to(device))
        else:
            self.register_parameter("bias", None)
        self.register_buffer("edge_index", torch.stack([layer.src, layer.dst]).to(device, self._index_dtype))
        self._invalidate()

    @classmethod
    def from_layer_graph(cls, layer: LayerGraph, bias: bool = True, **kwargs) -> SparseLinear:
        """A layer with the edges (and weights, if any) of ``layer``."""
        if not isinstance(layer, LayerGraph):
            raise ParameterTypeError(f"expected a LayerGraph, got {type(layer).__name__}")
        return cls(layer.n_in, layer.n_out, bias, layer=layer, **kwargs)

    # -- structure -----------------------------------------------------------------------
    @property
    def _index_dtype(self) -> torch.dtype:
        return edge_index_dtype(self.in_features, self.out_features)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def density(self) -> float:
        return self.num_edges / (self.in_features * self.out_features)

    @property
    def backend(self) -> str:
        """The requested backend (possibly ``"auto"``)."""
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        self._backend = check_backend(name)
        self._resolved = None

    @property
    def active_backend(self) -> str:
        """The backend the next forward runs on the parameters' current device."""
        key = (self.weight.device.type, self.num_edges)
        if self._resolved is None or self._resolved[0] != key:
            self._resolved = (key, resolve_backend(self._backend, self.in_features, self.out_features,
                                                   self.num_edges, self.weight.device))
        return self._resolved[1]

    def _invalidate(self) -> None:
        self._structure_cache = None
        self._resolved = None

    def csr_structure(self) -> CsrStructure:
        """The cached CSR structure (and transposed structure) on the parameters' device."""
        st = self._structure_cache
        dev = self.edge_index.device
        if st is None or st.device != dev or st.num_edges != self.num_edges:
            st = CsrStructure(self.edge_index[0], self.edge_index[1], self.in_features, self.out_features)
            self._structure_cache = st
        return st

    def layer_graph(self) -> LayerGraph:
        """The current edges with their current values, as a CPU :class:`~topo.LayerGraph`."""
        ei = self.edge_index.cpu()
        # edge_index is checked wherever it is set (constructor, rewire, state-dict load): sorted by
        # (dst, src), unique, in range, so the LayerGraph needs no re-check (O(E) passes on every evolution).
        # Keys alone (8 bytes per edge; src/dst are split from them if asked for): what evolution reads.
        keys = linear_keys(ei[0], ei[1], self.in_features)
        return LayerGraph._trusted_keys(self.in_features, self.out_features, keys, copy(self.weight.cpu()))

    def to_dense(self) -> torch.Tensor:
        """The dense ``(out, in)`` weight matrix (allocates ``in · out``; for small layers and tests)."""
        w = self.weight.detach()
        out = w.new_zeros(self.out_features, self.in_features)
        out[self.edge_index[1], self.edge_index[0]] = w
        return out

    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` with identical outputs (zeros off the edges; same device, dtype, bias).

        ``to_dense()`` stays the dense weight *tensor*; see also :func:`topo.nn.to_dense`."""
        from .dense import linear_from_sparse

        return linear_from_sparse(self)

    # -- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Bad input raises what nn.Linear raises (TypeError / RuntimeError), naming shapes and dtypes.
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"SparseLinear: input must be a Tensor, not {type(x).__name__}")
        n_in, n_out = self.in_features, self.out_features
        if x.dim() == 0:
            raise RuntimeError(f"SparseLinear: input must have at least 1 dimension (shape (..., {n_in})), "
                               f"got a 0-D tensor")
        if x.shape[-1] != n_in:
            rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1]} and "
                               f"{n_in}x{n_out}): input has shape {tuple(x.shape)}, its last dimension "
                               f"must be in_features={n_in}")
        w, b = self.weight, self.bias
        if x.device != w.device:
            raise RuntimeError(f"Expected all tensors to be on the same device, but the input is on "
                               f"{x.device} and the layer on {w.device}; move one of them (.to(device))")
        dev = x.device.type
        autocast = dev in ("cpu", "cuda") and torch.is_autocast_enabled(dev)
        if autocast:
            # As autocast treats nn.Linear: floating tensors other than float64 run in its dtype.
            cast = torch.get_autocast_dtype(dev)
            x_dt, w_dt = (cast if t.dtype != torch.float64 else t.dtype for t in (x, w))
        else:
            x_dt, w_dt = x.dtype, w.dtype
        if x_dt != w_dt or not x.dtype.is_floating_point:
            raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {x_dt} (input) and {w_dt} "
                               f"(layer weight); cast the input or the layer (e.g. .to({w_dt}))")
        lead = x.shape[:-1]
        x2 = x if x.dim() == 2 else x.reshape(-1, n_in)
        backend = self.active_backend
        if x2.shape[0] == 0 or self.num_edges == 0:
            # Nothing to multiply (and cuSPARSE dislikes empty operands): the output is the bias.
            y = x2.new_zeros(x2.shape[0], n_out, dtype=x_dt)
            if b is not None:
                y = y + b.to(x_dt)
        else:
            # Under autocast the product runs as the backend defines it (csr: float16/bfloat16 operands
            # multiplied in float32), then takes autocast's dtype, as nn.Linear's output does.
            with torch.autocast(dev, enabled=False) if autocast else contextlib.nullcontext():
                y = get_backend(backend).forward(self, x2)  # topo.nn.backends.BACKENDS
            y = y.to(x_dt)
        return y if x.dim() == 2 else y.reshape(*lead, n_out)

    # -- rewiring ------------------------------------------------------------------------
    def rewire(self, new_graph: LayerGraph, keep: str = "matching", init="zeros",
               generator=None) -> torch.Tensor:
        """Replace the edge structure in place; return ``old_to_new``.

        Parameters
        ----------
        new_graph : LayerGraph
            The new edges (same ``n_in``/``n_out``).
        keep : {"matching", "graph"}
            ``"matching"``: edges present before and after keep their current value,
            new edges get ``init``. ``"graph"``: every value comes from
            ``new_graph.weight`` (which must exist).
        init : str or ("normal", sigma)
            Values of new edges (:mod:`topo.nn.init`), fans from the new graph.
        generator : int, torch.Generator or None
            Randomness of ``init``; ``None`` uses torch's global RNG.

        Returns
        -------
        torch.Tensor
            int64 ``[old_num_edges]`` (CPU): the new index of each old edge, ``-1`` if removed.

        The ``weight`` Parameter stays the same object (its ``.data`` is replaced),
        so optimizers keep it; carry their state with
        :func:`topo.nn.remap_optimizer_state`. An existing ``.grad`` is remapped
        the same way (zero for new edges).
        """
        _check_graph(new_graph, self.in_features, self.out_features)
        if keep not in ("matching", "graph"):
            raise ParameterError(f"keep must be 'matching' or 'graph', got {keep!r}")
        init = check_init(init)
        if generator is not None and not isinstance(generator, torch.Generator):
            generator = make_generator(generator)
        ei = self.edge_index.detach().cpu()
        old_to_new = match(ei[0], ei[1], self.in_features, new_graph.keys())  # one walk of both key orders
        w = self.weight
        e_new = new_graph.num_edges
        moves = Moves(old_to_new)
        if keep == "graph":
            if new_graph.weight is None:
                raise ParameterError("keep='graph' needs a weighted new_graph (its weight is None)")
            values = new_graph.weight.detach().to(dtype=w.dtype, device=w.device, copy=True)
        else:
            values = init_values(e_new, self.in_features, self.out_features, e_new, init, generator,
                                 w.dtype, w.device)
            moves.carry(w.detach(), values)
        with torch.no_grad():
            if w.grad is not None:
                g = moves.carry(w.grad, zeros(e_new, w.grad.dtype) if w.grad.device.type == "cpu"
                                else w.grad.new_zeros(e_new))
                w.grad = None
                _resize_data(w, values)
                w.grad = g
            else:
                _resize_data(w, values)
        self.edge_index = _index_rows(new_graph, self._index_dtype).to(self.edge_index.device)
        self._invalidate()
        return old_to_new

    # -- nn.Module plumbing ----------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._invalidate()
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        ei = state_dict.get(prefix + "edge_index")
        if isinstance(ei, torch.Tensor):
            _check_edge_index(ei, self.in_features, self.out_features, prefix + "edge_index")
        if isinstance(ei, torch.Tensor) and ei.shape != self.edge_index.shape:
            # Resize to the checkpoint's edge count; the default loader then copies in place.
            self.edge_index = torch.empty(ei.shape, dtype=self._index_dtype, device=self.edge_index.device)
            with torch.no_grad():
                _resize_data(self.weight, self.weight.data.new_empty(ei.shape[1]))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)  # copies (and casts) int64 into int32
        self._invalidate()

    def __getstate__(self):
        # The CSR cache is derived data (and may hold torch_sparse objects): never pickle or deep-copy it.
        state = self.__dict__.copy()
        state["_structure_cache"] = None
        state["_resolved"] = None
        return state

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"edges={self.num_edges}, density={self.density:.4g}, bias={self.bias is not None}, "
                f"backend={self._backend!r}")


def edge_index_dtype(n_in: int, n_out: int) -> torch.dtype:
    """The dtype of a ``n_in → n_out`` layer's ``edge_index``: int32 when every index fits, else int64.

    Examples
    --------
    >>> edge_index_dtype(784, 1000), edge_index_dtype(2**31, 10)
    (torch.int32, torch.int64)
    """
    return torch.int32 if max(n_in, n_out) <= 2**31 - 1 else torch.int64


def _check_graph(g, n_in: int, n_out: int) -> None:
    if not isinstance(g, LayerGraph):
        raise ParameterTypeError(f"expected a LayerGraph, got {type(g).__name__}")
    if (g.n_in, g.n_out) != (n_in, n_out):
        raise TopologyError(f"layer graph is {g.n_in}->{g.n_out} but the module is {n_in}->{n_out}")


def _check_edge_index(ei: torch.Tensor, n_in: int, n_out: int, name: str) -> None:
    """A loaded edge_index must be what a LayerGraph holds: in range and sorted by (dst, src), no duplicates."""
    if ei.dim() != 2 or ei.shape[0] != 2 or ei.dtype.is_floating_point or ei.dtype == torch.bool:
        raise TopologyError(f"{name} has shape {tuple(ei.shape)} and dtype {ei.dtype}, "
                            f"expected an integer tensor of shape (2, num_edges)")
    src, dst = ei[0].to(torch.int64), ei[1].to(torch.int64)
    if src.numel() == 0:
        return
    if int(src.min()) < 0 or int(src.max()) >= n_in or int(dst.min()) < 0 or int(dst.max()) >= n_out:
        raise TopologyError(f"{name} holds indices outside a {n_in}->{n_out} layer")
    keys = dst * n_in + src
    if not bool((keys[1:] > keys[:-1]).all()):
        raise TopologyError(f"{name} is not sorted by (dst, src) without duplicates")


def _index_rows(graph: LayerGraph, dtype: torch.dtype) -> torch.Tensor:
    """``torch.stack([graph.src, graph.dst])`` in ``dtype``, each row converted once into its place."""
    e = graph.num_edges
    keys = graph.keys() if graph._keys_only else None
    if keys is not None and keys.device.type == "cpu":
        out = empty((2, e), dtype)
        split_into(keys, graph.n_in, out[0], out[1])  # straight from the keys into the rows
        return out
    if graph.src.device.type != "cpu":
        return torch.stack([graph.src, graph.dst]).to(dtype)
    out = empty((2, e), dtype)
    o = out.numpy()
    o[0] = graph.src.numpy()
    o[1] = graph.dst.numpy()
    return out
