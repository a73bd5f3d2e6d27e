"""One progress interface for long computations: nothing, a tqdm bar, or a caller's callback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress_bar"]


@contextlib.contextmanager
def progress_bar(progress, total: int, desc: str) -> Iterator[Callable[[str], None]]:
    """Yield ``tick(label)``, to be called once per finished step.

    ``progress`` is ``False``/``None`` (silent), ``True`` (a tqdm bar on stderr,
    shown only when stderr is a terminal) or a callable taking the label.
    """
    if callable(progress):
        yield progress
        return
    if not progress or not sys.stderr.isatty():
        yield lambda label: None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="step", leave=False) as bar:
        def tick(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)
        yield tick
