"""Value objects: what to run (`BottleSpec`) and how it will run (`BottlePlan`).

A plan is data: `--dry-run` prints `plan.to_dict()`, which never holds a secret
value (secrets are `SecretStr` and are reported by name and source only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from remotebottle.backend.defaults import CLAUDE_CODE_HOSTS, effective_allowlist

ANTHROPIC_ROLE = "anthropic-base-url"


@dataclass(frozen=True)
class Secretish:
    """A manifest value: how it is sourced, and (once resolved) the value itself."""

    source: str
    value: SecretStr | None = None


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


@dataclass(frozen=True)
class BottlePlan:
    """A spec resolved against an engine: images, runtime, effective allowlist."""

    spec: BottleSpec
    images: ImageRefs
    runtime: str  # "runsc" | "runc" | "auto" (decided by the engine at launch)
    warnings: tuple[str, ...] = ()

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
