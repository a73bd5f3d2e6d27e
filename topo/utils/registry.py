"""``Registry``: one name → object table per extension point of topo.

Rules, prune and grow criteria (:mod:`topo.rules`), backends (:mod:`topo.nn.backends`),
activations (:mod:`topo.nn.activations`) and exporters (:mod:`topo.io.exporters`) each
keep one :class:`Registry`. The CLI help, argument validation and the docs read the
same table, so a name registered by a user is known everywhere at once.

Examples
--------
>>> colours = Registry("colour")
>>> colours.register("red", "#f00", help="warm")
'#f00'
>>> @colours.register("blue", help="cold")
... def blue():
...     return "#00f"
>>> colours.names(), colours.get("BLUE")(), colours.help("red")
(('red', 'blue'), '#00f', 'warm')
>>> colours.get("green")
Traceback (most recent call last):
...
topo.errors.ParameterError: unknown colour 'green'; choose one of 'red', 'blue'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered table of named entries, each with a one-line help.

    Names are registered in lower case; lookups ignore case and surrounding spaces
    (``"SET "`` finds ``"set"``), as the CLI always did.

    Parameters
    ----------
    kind : str
        What an entry is (``"rule"``, ``"backend"``, ...): names the table in errors.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    @overload
    def register(self, name: str, obj: T, *, help: str = "", replace: bool = False) -> T: ...

    @overload
    def register(self, name: str, obj: None = None, *, help: str = "",
                 replace: bool = False) -> Callable[[T], T]: ...

    def register(self, name: str, obj: T | None = None, *, help: str = "", replace: bool = False) -> Any:
        """Add ``obj`` under ``name`` (also usable as a decorator: ``@registry.register(name)``).

        A name already taken raises :class:`~topo.errors.ParameterError` unless
        ``replace=True`` (so a typo cannot silently shadow a built-in entry).
        """
        from ..errors import ParameterError, ParameterTypeError

        if not isinstance(name, str):
            raise ParameterTypeError(f"a {self.kind} name must be a string, got {name!r}")
        if not name or name != name.strip().lower():
            raise ParameterError(f"a {self.kind} name must be non-empty lower case without surrounding spaces, "
                                 f"got {name!r}")
        if obj is None:
            def decorator(fn: T) -> T:
                return self.register(name, fn, help=help, replace=replace)
            return decorator
        key = name
        if key in self._entries and not replace:
            raise ParameterError(f"a {self.kind} named {key!r} is already registered; pass replace=True "
                                 f"to replace it")
        self._entries[key] = obj
        self._help[key] = help
        return obj

    def unregister(self, name: str) -> T:
        """Remove and return the entry called ``name``."""
        key = self._key(name)
        self._help.pop(key)
        return self._entries.pop(key)

    def get(self, name: str) -> T:
        """The entry called ``name``; unknown names raise :class:`~topo.errors.ParameterError` listing the known."""
        return self._entries[self._key(name)]

    def _key(self, name: str) -> str:
        from ..errors import ParameterError, ParameterTypeError

        if not isinstance(name, str):
            raise ParameterTypeError(f"a {self.kind} name must be a string, got {name!r}")
        key = name.strip().lower()
        if key not in self._entries:
            raise ParameterError(f"unknown {self.kind} {name!r}; choose one of {self.choices()}")
        return key

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order (built-ins first)."""
        return tuple(self._entries)

    def items(self) -> tuple[tuple[str, T], ...]:
        """``(name, entry)`` pairs, in registration order (a snapshot, like ``dict.items()`` listed)."""
        return tuple(self._entries.items())

    def help(self, name: str) -> str:
        """The one-line help of ``name``."""
        return self._help[self._key(name)]

    def choices(self) -> str:
        """The names quoted and comma separated, for error messages and CLI help."""
        return ", ".join(map(repr, self._entries))

    def describe(self) -> str:
        """One ``name: help`` line per entry (the table the docs and ``--help`` show)."""
        return "\n".join(f"{k}: {h}" if h else k for k, h in self._help.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
