"""Integration fixtures: the real local Docker engine.

Under CI (CI=true) a missing engine fails the run; elsewhere the tests skip
and say how to get one (`make setup`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from remotebottle.errors import EngineError
from remotebottle.hosts.local import connect_local_engine


def require(reason: str) -> None:
    """Fail under CI, skip (saying why) elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI=true: real parts must be present)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect_local_engine(timeout=10)
    except EngineError as exc:
        require(f"no Docker engine: {exc.message}; run `make setup`")
        raise AssertionError("unreachable") from exc
    yield client
    client.close()
