"""The `start` use case: manifest + host + command line -> a plan (and, later, a session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from remotebottle.backend.docker.engine import SAFE_ENGINE, EngineFacts, engine_facts
from remotebottle.backend.docker.planner import plan
from remotebottle.backend.spec import BottlePlan, Command
from remotebottle.errors import EngineError
from remotebottle.hosts.local import connect_local_engine
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget, resolve_host
from remotebottle.manifest import Manifest
from remotebottle.ops.link import RECONNECT_LIMIT, Progress
from remotebottle.resolve import build_spec
from remotebottle.values import Prompter, ask_no_echo

ALLOW_OLD_ENGINE_FLAG = "--allow-old-engine"


class EngineTooOld(EngineError):
    """A host's engine is older than 25.0.5 and the user did not allow it."""


@dataclass(frozen=True)
class StartRequest:
    agent: str
    host: str | None = None
    command: Command = field(default_factory=Command)
    cwd: Path | None = None
    identity: str | None = None  # set by resume; otherwise minted
    # Start on a host's engine older than 25.0.5 (CVE-2024-29018) all the same.
    allow_old_engine: bool = False
    registry: Registry = field(default=DEFAULT, compare=False, repr=False)
    # The host as a session recorded it (resume), instead of resolving `host` anew.
    recorded: HostTarget | None = None
    # Seconds to keep reconnecting to a remote host after a network cut.
    reconnect_limit: float = RECONNECT_LIMIT


@dataclass(frozen=True)
class StartPlan:
    host: HostTarget
    bottle: BottlePlan
    vm: dict[str, str] | None = None  # what a cloud host's provider will make (and bill)
    allow_old_engine: bool = False

    def to_dict(self) -> dict[str, object]:
        data = self.bottle.to_dict()
        data["host"] = {"name": self.host.name, "provider": self.host.provider}
        data["allow_old_engine"] = self.allow_old_engine
        if self.vm is not None:
            data["vm"] = dict(self.vm)
        return data


def plan_start(
    manifest: Manifest,
    request: StartRequest,
    *,
    resolve_secrets: bool,
    prompter: Prompter = ask_no_echo,
) -> StartPlan:
    """Resolve everything `start` needs without creating anything.

    The local engine is asked for its version and runtimes when it answers (nothing is
    run on it: whether gVisor runs a container is checked at start); a remote host's
    engine is asked only once connected, so its runtime shows as "auto".
    """
    host = request.recorded or resolve_host(request.host, manifest, request.registry)
    spec = build_spec(
        manifest,
        request.agent,
        command=request.command,
        host=host.name,
        cwd=request.cwd,
        identity=request.identity,
        resolve_secrets=resolve_secrets,
        prompter=prompter,
    )
    facts = _local_facts() if host.is_local else None
    vm = host.cloud_provider().preflight() if host.is_cloud else None
    bottle = plan(spec, facts)
    return StartPlan(host=host, bottle=bottle, vm=vm, allow_old_engine=request.allow_old_engine)


def _local_facts() -> EngineFacts | None:
    try:
        client = connect_local_engine(timeout=3)
    except EngineError:
        return None
    try:
        return engine_facts(client)
    except EngineError:
        return None
    finally:
        client.close()


def check_engine(
    host: HostTarget, facts: EngineFacts, *, allowed: bool, progress: Progress
) -> None:
    """Refuse a host's engine older than 25.0.5 unless the user allowed it.

    This machine's own engine is not refused: rbottle did not choose it, and the plan
    warns about it. A host's engine is one rbottle chose or installed.

    Raises:
        EngineTooOld: the engine is a host's, too old, and not allowed.
    """
    if host.is_local or not facts.leaks_internal_dns:
        return
    if allowed:
        flag = ALLOW_OLD_ENGINE_FLAG
        progress(f"Docker {facts.version} on {host.name}: started anyway, as {flag} asks")
        return
    raise EngineTooOld(
        f"Docker {facts.version} on {host.name} is older than {SAFE_ENGINE}: containers on"
        " internal networks resolve names through the host (CVE-2024-29018), a way out of"
        " the bottle; nothing was started",
        hint=f"upgrade the engine (Debian 13's docker.io is 26.1.5), or start with"
        f" {ALLOW_OLD_ENGINE_FLAG} to use it anyway",
    )
