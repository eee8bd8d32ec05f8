"""Where a command's wall time goes: `phase(name)` around each step of a start.

Each phase logs one DEBUG record, `phase <name>: <ms> ms`, when it ends (failed or not),
so `rbottle --debug start …` prints the start path step by step on stderr; without
`--debug` nothing is printed and a phase costs two clock reads. Phases nest: an inner
phase's name is prefixed with its outer one's (`launch/egress proxy`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("remotebottle.phases")

_open = threading.local()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as `name` (under the phase it runs in, on this thread)."""
    outer: list[str] = getattr(_open, "names", [])
    full = "/".join([*outer, name])
    _open.names = [*outer, name]
    started = time.perf_counter()
    try:
        yield
    finally:
        _open.names = outer
        if log.isEnabledFor(logging.DEBUG):
            log.debug("phase %s: %.0f ms", full, (time.perf_counter() - started) * 1000)
