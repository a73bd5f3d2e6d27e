"""XML text building for the streaming writers: escaping, number formats, the GEXF 1.3 preamble.

The writers never build a DOM: they format one chunk of elements at a time as
a string (``map`` of a format string over Python lists, which is several times
faster than ``numpy.char``) and hand it to :func:`text_sink`, which writes
UTF-8 into an atomic temporary file.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..utils.atomic import atomic_write

__all__ = ["GEXF_NS", "VIZ_NS", "XSI_NS", "escape_attr", "float_format", "text_sink", "check_out_path",
           "gexf_preamble", "attributes_decl", "viz_prefix", "position_lines", "CHUNK"]

GEXF_NS = "http://gexf.net/1.3"
VIZ_NS = "http://gexf.net/1.3/viz"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{GEXF_NS} {GEXF_NS}/gexf.xsd"

#: Elements formatted per chunk: large enough that per-chunk overhead vanishes, small enough
#: that a chunk's strings stay a few MB.
CHUNK = 50_000

# XML 1.0 forbids these code points even escaped; drop them rather than write an unreadable file.
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                          "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def escape_attr(text) -> str:
    """``text`` made safe inside a double-quoted XML attribute or element text.

    Examples
    --------
    >>> escape_attr('a<b & "c"')
    'a&lt;b &amp; &quot;c&quot;'
    """
    return _INVALID.sub("", str(text)).translate(_ESCAPES)


def float_format(dtype) -> str:
    """A ``str.format`` field that round-trips values of ``dtype`` exactly and briefly.

    ``float32`` needs 9 significant digits (``'{:.9g}'``), ``float64`` its
    shortest repr (``'{!r}'``). Both are valid ``xs:double`` lexical forms for
    finite values.
    """
    dtype = np.dtype(dtype)
    return "{:.9g}" if dtype.itemsize <= 4 else "{!r}"


def check_out_path(path) -> Path:
    """``path`` as a :class:`Path`, refusing a directory before anything is written."""
    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"cannot write {str(path)!r}: it is a directory, give a file name")
    return path


@contextlib.contextmanager
def text_sink(path) -> Iterator[Callable[[str], object]]:
    """Yield ``write(str)`` into a temporary file renamed onto ``path`` only on success.

    On any error (or interrupt) the temporary file is removed and ``path`` is
    left as it was, so a reader never sees half a file.
    """
    path = check_out_path(path)
    with atomic_write(path, "wb") as f:
        yield lambda s: f.write(s.encode("utf-8"))


def viz_prefix(viz) -> str | None:
    """The element prefix for visual attributes: ``""``, ``"viz:"`` or ``None`` (no positions)."""
    if viz is None or viz is False:
        return None
    if viz == "gexf":
        return ""
    if viz == "viz":
        return "viz:"
    raise ParameterError(f"viz must be 'gexf', 'viz' or None, got {viz!r}")


def gexf_preamble(graph_attrs: str, viz, description: str) -> str:
    """``<?xml?>``, the ``<gexf>`` root, ``<meta>`` and the opening ``<graph ...>`` tag."""
    from .. import __version__

    if viz_prefix(viz) == "viz:":
        # The RNG flavour: gexf.rng allows no xsi attributes, and pointing at gexf.xsd, which
        # rejects viz-namespace elements, would mislead validators.
        ns = f' xmlns:viz="{VIZ_NS}"'
    else:
        ns = f' xmlns:xsi="{XSI_NS}" xsi:schemaLocation="{SCHEMA_LOCATION}"'
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<gexf xmlns="{GEXF_NS}"{ns} version="1.3">\n'
            f'<meta><creator>topo {escape_attr(__version__)}</creator>'
            f'<description>{escape_attr(description)}</description></meta>\n'
            f'<graph {graph_attrs}>\n')


def attributes_decl(cls: str, mode: str, attrs: list[tuple[str, str]]) -> str:
    """An ``<attributes>`` block; each attribute's id is its title.

    graphology-gexf names an attribute by its id unless the id is numeric, so
    id = title keeps the names the same in Gephi, Gephi Lite and networkx.
    """
    if not attrs:
        return ""
    body = "".join(f'<attribute id="{a}" title="{a}" type="{t}"/>' for a, t in attrs)
    return f'<attributes class="{cls}" mode="{mode}">{body}</attributes>\n'


def position_lines(prefix: str | None, x: np.ndarray, y: np.ndarray) -> list[str]:
    """One ``<position x y/>`` element per node, or empty strings when ``prefix`` is None."""
    if prefix is None:
        return [""] * len(x)
    return list(map(f'<{prefix}position x="{{:.6g}}" y="{{:.6g}}"/>'.format, x.tolist(), y.tolist()))

