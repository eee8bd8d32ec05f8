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

# Written by tests/harness/setup.sh when the pinned pipelock cannot be built here.
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
    return (
        f"pipelock ({pins.pipelock_image()}) is not on the engine and cannot be had on this"
        f" machine: {recorded or 'no container registry is reachable'}"
    )


def skip_without_pipelock(client: docker.DockerClient) -> None:
    """pipelock truly cannot exist on machines with no registry and no Go module for it:
    that is the one real part we skip for, with the harness's recorded reason, even in CI."""
    if not has_image(client, pins.pipelock_image()):
        pytest.skip(pipelock_missing_reason())


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect_local_engine(timeout=10)
    except EngineError as exc:
        require(f"no Docker engine: {exc.message}; run `make setup`")
        raise AssertionError("unreachable") from exc
    yield client
    client.close()
