"""The local engine: the embedded default when no `--host` is given."""

from __future__ import annotations

import docker
import docker.errors

from remotebottle.errors import EngineError

ENGINE_HINT = (
    "start the engine (`sudo systemctl start docker`, or run `dockerd`), or set DOCKER_HOST"
)


def connect_local_engine(timeout: float = 10.0) -> docker.DockerClient:
    """A client for the local engine (DOCKER_HOST or the default socket), checked with a ping.

    Raises:
        EngineError: no engine answers.
    """
    try:
        client = docker.from_env(timeout=int(max(timeout, 1)))
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"no Docker engine answers: {_short(exc)}", hint=ENGINE_HINT) from None
    return client


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
