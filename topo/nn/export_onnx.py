"""ONNX export of a (sparse) model: its dense twin (:func:`topo.nn.to_dense`) as an ONNX graph.

ONNX runtimes have no kernel for topo's CSR products (exporting the ``csr``
backend fails inside torch's exporter), so the file holds the dense ``Gemm``
equivalent: outputs equal the sparse model's (``onnxruntime`` within 1e-5 of
torch), size ``4 · n_in · n_out`` bytes per layer in float32. Needs the
``[onnx]`` extra (``pip install 'topo-nets[onnx]'``: onnx, onnxruntime,
onnxscript).
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError

__all__ = ["export_onnx"]


def _in_features(model: nn.Module) -> int:
    sizes = getattr(model, "sizes", None)
    if sizes:
        return int(sizes[0])
    for m in model.modules():
        n = getattr(m, "in_features", None)
        if n is not None:
            return int(n)
    raise ParameterError(f"cannot tell the input width of {type(model).__name__}: pass example=torch.zeros(1, n)")


def export_onnx(model: nn.Module, path: str | os.PathLike, *, example: torch.Tensor | None = None,
                opset: int | None = None) -> None:
    """Write ``model`` (sparse layers made dense, eval mode, float32, CPU) as an ONNX file, atomically.

    The input ``"input"`` is ``[batch, features]`` with a dynamic batch; the output is ``"logits"``.

    Parameters
    ----------
    model : nn.Module
        A SparseMLP, a dense MLP, or any model holding SparseLinear layers.
    example : Tensor, optional
        An input to trace with (default: zeros ``[1, in_features]``).
    opset : int, optional
        ONNX opset version (default: torch's).
    """
    try:
        import onnx  # noqa: F401  (torch's exporter needs it; a clear message beats its ImportError)
    except ImportError:
        raise ImportError("ONNX export needs the onnx extra: pip install 'topo-nets[onnx]'") from None
    from ..utils.atomic import atomic_write
    from .dense import to_dense

    dense = to_dense(model).to("cpu", torch.float32).eval()
    x = torch.zeros(1, _in_features(model)) if example is None else example.detach().to("cpu", torch.float32)
    buf = io.BytesIO()
    kw: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # torch annotates f as a path, but the TorchScript exporter (dynamo=False) writes to a file object too.
        torch.onnx.export(dense, (x,), buf, input_names=["input"], output_names=["logits"],  # type: ignore[arg-type]
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, **kw)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())
