"""`rbottle cleanup`: what a host's engine holds of ours, with the engine open to remove it.

The cloud side (VMs and what was made for them, left by lost sessions) is `ops.orphans`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from remotebottle.backend.base import CleanupPlan
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.hosts.engine import open_engine
from remotebottle.hosts.resolve import HostTarget

Progress = Callable[[str], None]


def _refuse(_question: str) -> bool:
    return False


@contextlib.contextmanager
def cleanup_on(host: HostTarget, *, progress: Progress) -> Iterator[CleanupSession]:
    """What `rbottle cleanup` would remove on `host`, with the engine open to remove it."""
    with open_engine(host, progress=progress, consent=_refuse) as engine:
        backend = DockerBottleBackend(engine.client, progress)
        yield CleanupSession(backend, backend.prepare_cleanup())


@dataclass(frozen=True)
class CleanupSession:
    backend: DockerBottleBackend
    plan: CleanupPlan
