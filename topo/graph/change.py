"""What one evolution step did to one layer: :class:`LayerChange` (births and deaths)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import TopologyError

__all__ = ["LayerChange"]


def _edge_index(x) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.int64)
    if t.numel() == 0:
        return torch.empty(2, 0, dtype=torch.int64)
    if t.dim() != 2 or t.shape[0] != 2:
        raise TopologyError(f"edge lists must have shape [2, k] (src row, dst row), got {tuple(t.shape)}")
    return t


@dataclass
class LayerChange:
    """What one evolution step did to one layer.

    ``births`` and ``deaths`` are int64 tensors of shape ``[2, k]`` (row 0:
    input index, row 1: output index), like PyG's ``edge_index``.
    """

    births: torch.Tensor = field(default_factory=lambda: torch.empty(2, 0, dtype=torch.int64))
    deaths: torch.Tensor = field(default_factory=lambda: torch.empty(2, 0, dtype=torch.int64))
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.births, self.deaths = _edge_index(self.births), _edge_index(self.deaths)
