"""Value objects: what to run (`BottleSpec`) and how it will run (`BottlePlan`).

A plan is data: `--dry-run` prints `plan.to_dict()`, which never holds a secret
value (secrets are `SecretStr` and are reported by name and source only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from remotebottle.backend.defaults import CLAUDE_CODE_HOSTS, effective_allowlist

ANTHROPIC_ROLE = "anthropic-base-url"


@dataclass(frozen=True)
class Secretish:
    """A manifest value: how it is sourced, and (once resolved) the value itself.

    An unresolved value carries its `resolver` (read the environment, ask the user), so
    the spec the user confirmed is the one that gets its values, once, at start.
    """

    source: str
    value: SecretStr | None = None
    resolver: Callable[[], SecretStr] | None = field(default=None, compare=False, repr=False)

    def resolved(self) -> Secretish:
        """This value, resolved now if it was not (a prompt is asked here)."""
        if self.value is not None or self.resolver is None:
            return self
        return Secretish(self.source, self.resolver())


@dataclass(frozen=True)
class GitRemoteSpec:
    host: str  # the alias the agent uses in remote URLs
    user: str
    port: int
    known_host_key: str  # `keytype base64`, pinned for `target`
    identity_file: Path | None = None
    hostname: str | None = None  # the machine the gate connects to; default `host`
    extra_hosts: dict[str, str] = field(default_factory=dict)
    # What the gate forwards beyond fast-forwards of commits without CI changes.
    allow_force_push: bool = False
    allow_deletes: bool = False
    allow_ci_changes: bool = False

    @property
    def url_prefix(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}/"

    @property
    def target(self) -> str:
        return self.hostname or self.host


@dataclass(frozen=True)
class RouteSpec:
    name: str
    upstream: str
    role: str | None = None
    inject: dict[str, Secretish] = field(default_factory=dict)
    # What the manifest lets an `anthropic-base-url` route pass beyond Claude Code's own
    # requests: server-side tools and connectors by name (see docs/credentials.md).
    grants: tuple[str, ...] = ()
    # The local variable rbottle made this route from (no route in the manifest), if so.
    login: str | None = None


@dataclass(frozen=True)
class Command:
    """What runs in the agent container: interactive claude, `claude -p`, or argv."""

    mode: Literal["interactive", "print", "exec"] = "interactive"
    prompt: str | None = None
    argv: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "print":
            out["prompt"] = self.prompt
        if self.mode == "exec":
            out["argv"] = list(self.argv)
        return out


@dataclass(frozen=True)
class BottleSpec:
    """Everything the manifest and the command line say about one bottle launch."""

    identity: str
    agent: str
    bottle: str
    command: Command = field(default_factory=Command)
    skills: tuple[Path, ...] = ()
    prompt: str | None = None
    prompt_file: Path | None = None
    env: dict[str, Secretish] = field(default_factory=dict)
    egress_enabled: bool = True
    egress_allowlist: tuple[str, ...] = ()
    git: tuple[GitRemoteSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    host: str = "local"
    cwd: Path | None = None

    def with_values(self) -> BottleSpec:
        """This spec with every value resolved: env first, then the routes' headers."""
        env = {name: value.resolved() for name, value in self.env.items()}
        routes = tuple(
            replace(r, inject={h: v.resolved() for h, v in r.inject.items()}) for r in self.routes
        )
        return replace(self, env=env, routes=routes)

    @property
    def anthropic_route(self) -> RouteSpec | None:
        return next((r for r in self.routes if r.role == ANTHROPIC_ROLE), None)

    @property
    def anthropic_credential(self) -> str:
        """Which credential Claude Code's requests will carry, by source, never by value."""
        route = self.anthropic_route
        if route is None:
            return "none"
        if route.login is not None:
            kind = "API key" if route.login == "ANTHROPIC_API_KEY" else "subscription token"
            return f"{kind} from ${route.login}, via the credential proxy to {route.upstream}"
        injected = ", ".join(f"{h} {v.source}" for h, v in route.inject.items())
        return f"via credential proxy route {route.name!r}" + (f" ({injected})" if injected else "")


@dataclass(frozen=True)
class ImageRefs:
    agent: str
    egress: str | None = None
    git_gate: str | None = None


GvisorState = Literal["works", "unchecked", "fails", "absent"]


@dataclass(frozen=True)
class EngineReport:
    """What the engine a plan was made against said, as the preflight and `--dry-run` show it.

    Attributes:
        version: the engine's version ("26.1.5+dfsg1").
        leaks_internal_dns: older than 25.0.5: containers on internal networks can resolve
            names through the host (CVE-2024-29018).
        runtimes: each registered runtime with the engine's arguments to it.
        gvisor: "works" (a container ran under runsc), "unchecked" (registered; checked
            before the bottle starts), "fails" (registered, but a container did not run),
            "absent" (not registered).
        gvisor_reason: why gVisor is not used, in the engine's words.
    """

    version: str
    leaks_internal_dns: bool
    runtimes: dict[str, tuple[str, ...]]
    gvisor: GvisorState
    gvisor_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "cve_2024_29018": "affected" if self.leaks_internal_dns else "fixed",
            "runtimes": {name: list(args) for name, args in self.runtimes.items()},
            "gvisor": self.gvisor,
            "gvisor_reason": self.gvisor_reason or None,
        }


@dataclass(frozen=True)
class BottlePlan:
    """A spec resolved against an engine: images, runtime, effective allowlist.

    `engine` is None when no engine was asked (a remote host before connecting).
    """

    spec: BottleSpec
    images: ImageRefs
    runtime: str  # "runsc" | "runc" | "auto" (decided by the engine at launch)
    warnings: tuple[str, ...] = ()
    engine: EngineReport | None = None

    @property
    def runtime_args(self) -> tuple[str, ...]:
        """The engine's arguments to the runtime the bottle gets ("--network=host")."""
        if self.engine is None:
            return ()
        return self.engine.runtimes.get(self.runtime, ())

    @property
    def allowlist(self) -> list[str]:
        if not self.spec.egress_enabled:
            return []
        return effective_allowlist(self.spec.egress_allowlist)

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        images = {
            role: ref
            for role, ref in (
                ("agent", self.images.agent),
                ("egress", self.images.egress),
                ("git_gate", self.images.git_gate),
            )
            if ref
        }
        return {
            "identity": spec.identity,
            "agent": spec.agent,
            "bottle": spec.bottle,
            "host": spec.host,
            "runtime": self.runtime,
            "runtime_args": list(self.runtime_args),
            "engine": self.engine.to_dict() if self.engine else None,
            "images": images,
            "command": spec.command.to_dict(),
            "egress": {
                "enabled": spec.egress_enabled,
                "allowlist": self.allowlist,
                "defaults": list(CLAUDE_CODE_HOSTS),
            },
            "git": [
                {
                    "host": g.host,
                    "hostname": g.target,
                    "user": g.user,
                    "port": g.port,
                    "identity_file": str(g.identity_file) if g.identity_file else None,
                    "extra_hosts": dict(g.extra_hosts),
                    "allow_force_push": g.allow_force_push,
                    "allow_deletes": g.allow_deletes,
                    "allow_ci_changes": g.allow_ci_changes,
                }
                for g in spec.git
            ],
            "cred_routes": [
                {
                    "name": r.name,
                    "upstream": r.upstream,
                    "role": r.role,
                    "inject": {h: v.source for h, v in r.inject.items()},
                    "grants": list(r.grants),
                    "added_from": r.login,
                }
                for r in spec.routes
            ],
            "anthropic_credential": spec.anthropic_credential,
            "env": {name: v.source for name, v in spec.env.items()},
            "skills": [str(p) for p in spec.skills],
            "prompt": (
                "inline"
                if spec.prompt is not None
                else str(spec.prompt_file)
                if spec.prompt_file
                else None
            ),
            "cwd": str(spec.cwd) if spec.cwd else None,
            "warnings": list(self.warnings),
        }
