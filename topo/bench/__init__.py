"""Benchmarks behind ``topo bench TARGET`` (and the thin scripts in ``benchmarks/``).

Each target is a module ``topo.bench.<target>`` exposing ``add_arguments(parser)``
(its options), ``run(args) -> int`` and a one-line ``HELP``; :func:`targets`
finds them, so adding a benchmark is adding a module. Speed targets are printed
as ratios measured in one run, never asserted in unit tests.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["targets", "load_target"]


def targets() -> list[str]:
    """Names of the benchmark modules present in this installation."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load_target(name: str):
    """Import ``topo.bench.<name>``; raise a ``TopologyError`` naming unknown targets."""
    from ..errors import ParameterError

    if name not in targets():
        raise ParameterError(f"unknown or not yet available benchmark target {name!r}; "
                             f"available: {', '.join(targets()) or 'none'}")
    return importlib.import_module(f"{__name__}.{name}")
