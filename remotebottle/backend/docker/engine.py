"""Facts about a Docker engine that shape a bottle: version, runtimes, images present."""

from __future__ import annotations

from dataclasses import dataclass

import docker
import docker.errors

from remotebottle.errors import EngineError

# CVE-2024-29018: engines before 25.0.5 leak DNS from --internal networks.
SAFE_ENGINE_VERSION = (25, 0, 5)


@dataclass(frozen=True)
class EngineFacts:
    version: str
    runtimes: frozenset[str]

    @property
    def has_gvisor(self) -> bool:
        return "runsc" in self.runtimes

    @property
    def leaks_internal_dns(self) -> bool:
        return version_tuple(self.version) < SAFE_ENGINE_VERSION


def version_tuple(version: str) -> tuple[int, ...]:
    """'20.10.24+dfsg1' -> (20, 10, 24); unparseable parts count as 0."""
    parts: list[int] = []
    for piece in version.split("+")[0].split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def engine_facts(client: docker.DockerClient) -> EngineFacts:
    """Ask the engine for its version and runtimes.

    Raises:
        EngineError: the engine did not answer.
    """
    try:
        info = client.info()
        version = client.version().get("Version", "0")
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"the Docker engine did not answer: {exc}") from None
    return EngineFacts(version=str(version), runtimes=frozenset(info.get("Runtimes") or {}))


def missing_images(client: docker.DockerClient, refs: list[str]) -> list[str]:
    """The references among `refs` that the engine does not have."""
    missing = []
    for ref in refs:
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            missing.append(ref)
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not inspect image {ref}: {exc}") from None
    return missing
