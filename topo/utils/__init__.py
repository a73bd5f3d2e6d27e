"""Small utilities every layer of topo uses (the bottom of the import graph)."""

from .atomic import atomic_write

__all__ = ["atomic_write"]
