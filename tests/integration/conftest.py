"""Integration fixtures: the real local Docker engine.

Under CI (CI=true) a missing engine fails the run; elsewhere the tests skip
and say how to get one (`make setup`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from remotebottle import pins
from remotebottle.backend.docker.images import has_image
from remotebottle.errors import EngineError
from remotebottle.hosts.local import connect_local_engine

# Written by tests/harness/pipelock-image.sh when the pinned pipelock cannot be had.
PIPELOCK_PROBLEM_FILE = Path("/var/lib/rbottle-harness/pipelock-unavailable")


def require(reason: str) -> None:
    """Fail under CI, skip (saying why) elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI=true: real parts must be present)")
    pytest.skip(reason)


def pipelock_missing_reason() -> str:
    recorded = ""
    if PIPELOCK_PROBLEM_FILE.is_file():
        recorded = PIPELOCK_PROBLEM_FILE.read_text().strip().removeprefix("reason=")
    return f"pipelock ({pins.pipelock_image()}) is not on the engine" + (
        f": {recorded}" if recorded else ""
    )


def require_pipelock(client: docker.DockerClient) -> None:
    """The pinned pipelock image must be on the engine (`make setup` builds it from its
    release source where no registry answers): fail under CI, skip elsewhere."""
    if not has_image(client, pins.pipelock_image()):
        require(f"{pipelock_missing_reason()}; run `make setup`")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect_local_engine(timeout=10)
    except EngineError as exc:
        require(f"no Docker engine: {exc.message}; run `make setup`")
        raise AssertionError("unreachable") from exc
    yield client
    client.close()
