"""Facts about a Docker engine that shape a bottle: version, runtimes, images present,
and whether gVisor actually runs a container there."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from remotebottle import pins
from remotebottle.backend.docker.images import agent_image, has_image
from remotebottle.errors import EngineError

# CVE-2024-29018: engines before 25.0.5 leak DNS from --internal networks.
SAFE_ENGINE_VERSION = (25, 0, 5)
SAFE_ENGINE = ".".join(map(str, SAFE_ENGINE_VERSION))
GVISOR = "runsc"
# The role label of the container that checks gVisor (cleanup finds a stray one by it).
GVISOR_CHECK_ROLE = "gvisor-check"
# How long a container under runsc may take to start and exit before gVisor counts as broken.
GVISOR_CHECK_SECONDS = 60


@dataclass(frozen=True)
class EngineFacts:
    """What `docker version` and `docker info` say.

    Attributes:
        version: the engine's version ("26.1.5+dfsg1").
        runtimes: the OCI runtimes the engine has registered, by name.
        runtime_args: the arguments the engine passes to each runtime (daemon.json's
            `runtimeArgs`: `{"runsc": ("--network=host",)}`); runtimes without any are absent.
        engine_id: the engine's ID, telling engines apart (empty when unknown).
    """

    version: str
    runtimes: frozenset[str]
    runtime_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    engine_id: str = ""

    @property
    def has_gvisor(self) -> bool:
        return GVISOR in self.runtimes

    @property
    def gvisor_args(self) -> tuple[str, ...]:
        return self.runtime_args.get(GVISOR, ())

    @property
    def leaks_internal_dns(self) -> bool:
        return version_tuple(self.version) < SAFE_ENGINE_VERSION

    def described_runtimes(self) -> list[str]:
        """Each runtime with its arguments ("runsc --network=host"), the engine's internal
        aliases (io.containerd.*) left out."""
        return [
            " ".join((name, *self.runtime_args.get(name, ())))
            for name in sorted(self.runtimes)
            if not name.startswith("io.containerd.")
        ]


@dataclass(frozen=True)
class GvisorCheck:
    """Whether a container ran under runsc on an engine, and if not, the engine's reason."""

    works: bool
    reason: str = ""


def version_tuple(version: str) -> tuple[int, ...]:
    """'20.10.24+dfsg1' -> (20, 10, 24); unparseable parts count as 0."""
    parts: list[int] = []
    for piece in version.split("+")[0].split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def engine_facts(client: docker.DockerClient) -> EngineFacts:
    """Ask the engine for its version and runtimes (with their arguments).

    Raises:
        EngineError: the engine did not answer.
    """
    try:
        info = client.info()
        version = client.version().get("Version", "0")
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"the Docker engine did not answer: {exc}") from None
    described: dict[str, Any] = info.get("Runtimes") or {}
    args = {
        name: tuple(str(a) for a in (runtime or {}).get("runtimeArgs") or ())
        for name, runtime in described.items()
        if isinstance(runtime, dict) and runtime.get("runtimeArgs")
    }
    return EngineFacts(
        version=str(version),
        runtimes=frozenset(described),
        runtime_args=args,
        engine_id=str(info.get("ID") or ""),
    )


# Checked once per engine and runsc configuration in a process (a `start` asks twice:
# when planning, and at launch when planning found no image to check with).
_gvisor_checks: dict[tuple[str, tuple[str, ...]], GvisorCheck] = {}


def known_gvisor_check(facts: EngineFacts) -> GvisorCheck | None:
    """The result of an earlier `check_gvisor` on this engine in this process, if any."""
    if not facts.engine_id:
        return None
    return _gvisor_checks.get((facts.engine_id, facts.gvisor_args))


def gvisor_check_image(client: docker.DockerClient) -> str | None:
    """An image on the engine to run gVisor's check with: the agent image, else the base
    image it is built from; None when the engine has neither (a VM before shipping)."""
    return next((ref for ref in (agent_image(), pins.base_image()) if has_image(client, ref)), None)


def check_gvisor(
    client: docker.DockerClient, facts: EngineFacts, image: str, labels: Mapping[str, str]
) -> GvisorCheck:
    """Run `true` in `image` under runsc (no network, no capability) and say whether it ran.

    A registered runsc can still fail to run anything: a platform the machine refuses,
    nested virtualisation, or runsc's own network stack on a kernel it misreads (Debian
    13's runsc 20240729 on Linux 6.11+, google/gvisor#10704). The container carries
    `labels` (so cleanup finds it if this process dies) and is removed whatever happens.

    Raises:
        EngineError: the engine failed at something other than running the container.
    """
    known = known_gvisor_check(facts)
    if known is not None:
        return known
    try:
        container = client.containers.create(
            image,
            [],
            entrypoint=["true"],
            name=f"rb-gvisor-check-{secrets.token_hex(4)}",
            runtime=GVISOR,
            network_mode="none",
            labels=dict(labels),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        )
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not create a container to check gVisor with: {exc}") from None
    try:
        check = _run_check(container)
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
    if facts.engine_id:
        _gvisor_checks[(facts.engine_id, facts.gvisor_args)] = check
    return check


def _run_check(container: Any) -> GvisorCheck:
    try:
        container.start()
        code = int(container.wait(timeout=GVISOR_CHECK_SECONDS).get("StatusCode", -1))
    except docker.errors.APIError as exc:
        return GvisorCheck(works=False, reason=_engine_reason(exc))
    except (docker.errors.DockerException, OSError) as exc:
        # The wait timed out (a read timeout) or the connection broke.
        return GvisorCheck(works=False, reason=f"no answer in {GVISOR_CHECK_SECONDS}s ({exc})")
    if code != 0:
        tail = container.logs().decode(errors="replace").strip().splitlines()[-1:]
        said = f": {tail[0][:200]}" if tail else ""
        return GvisorCheck(works=False, reason=f"`true` exited with status {code}{said}")
    return GvisorCheck(works=True)


def _engine_reason(exc: docker.errors.APIError) -> str:
    """The engine's own words, without docker-py's request URL and the OCI boilerplate."""
    text = str(exc.explanation or exc).strip()
    for prefix in ("OCI runtime start failed: ", "OCI runtime create failed: "):
        if prefix in text:
            text = text.split(prefix, 1)[1]
    text = text.removesuffix(": unknown").removesuffix(".").removesuffix(": unknown")
    return text[:300]


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
