"""The manifest's models: one `claude-bottle.json` file (`ManifestFile`) and what is in it
(bottles, agents, hosts), the merged `Manifest` that `load` returns, and `schema()`, the
JSON Schema editors get.

Models are frozen and strict, and refuse unknown fields; the validators' messages are the
ones users see (`errors` adds the file and JSON path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from remotebottle import hostkeys
from remotebottle.errors import ManifestError, quoted
from remotebottle.manifest.fields import (
    EnvName,
    FilePath,
    HeaderName,
    HostKey,
    Hostname,
    IpAddress,
    Line,
    Name,
    Port,
    SshAddress,
    Upstream,
    is_name,
)

MANIFEST_NAME = "claude-bottle.json"
PROVIDERS = ("local", "ssh", "ec2", "fly")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Egress(_Model):
    enabled: bool = Field(
        default=True,
        description="false: no egress proxy and no route out at all (the most locked-down bottle).",
    )
    allowlist: list[Hostname] = Field(
        default_factory=list,
        description="Hosts the bottle may reach, added to the defaults Claude Code needs.",
    )

    @model_validator(mode="after")
    def _no_list_without_proxy(self) -> Egress:
        if not self.enabled and self.allowlist:
            raise ValueError(
                "an allowlist needs the egress proxy: drop `enabled: false` or the list"
            )
        return self


class GitRemote(_Model):
    """An upstream git remote, reached only through the bottle's git gate."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    host: Hostname = Field(
        alias="Host",
        description="The name the agent uses in remote URLs (an ssh_config Host alias).",
    )
    hostname: Hostname | None = Field(
        default=None,
        validation_alias=AliasChoices("Hostname", "HostName"),
        serialization_alias="Hostname",
        description="The machine the gate connects to; default: Host.",
    )
    user: Line = Field(default="git", alias="User")
    port: Port = Field(default=22, alias="Port")
    identity_file: FilePath | None = Field(
        default=None,
        alias="IdentityFile",
        description="Private key for the upstream; it lives only in the git gate.",
    )
    known_host_key: HostKey = Field(
        alias="KnownHostKey",
        description="The upstream's SSH host key, pinned for Hostname: 'ssh-ed25519 AAAA...'"
        " or a known_hosts line 'host[,host...] ssh-ed25519 AAAA...'.",
    )
    extra_hosts: dict[Hostname, IpAddress] = Field(default_factory=dict, alias="ExtraHosts")
    allow_force_push: bool = Field(
        default=False,
        alias="AllowForcePush",
        description="Let the gate forward non-fast-forward updates and moved tags.",
    )
    allow_deletes: bool = Field(
        default=False,
        alias="AllowDeletes",
        description="Let the gate forward ref deletions (branches, tags).",
    )
    allow_ci_changes: bool = Field(
        default=False,
        alias="AllowCIChanges",
        description="Let the gate forward commits that change CI definitions"
        " (.github/workflows/, .gitlab-ci.yml, Jenkinsfile, ...).",
    )

    @property
    def target(self) -> str:
        """The machine connected to: Hostname, else Host."""
        return self.hostname or self.host

    @property
    def pinned_key(self) -> str:
        """The host key as `keytype base64`."""
        return hostkeys.parse(self.known_host_key).key

    @model_validator(mode="after")
    def _key_names_the_target(self) -> GitRemote:
        key = hostkeys.parse(self.known_host_key)
        if not hostkeys.names(key, self.target, self.port):
            wanted = hostkeys.known_hosts_name(self.target, self.port)
            hosts = ",".join("(hashed)" if h.startswith("|") else h for h in key.hosts)
            raise ValueError(
                f"KnownHostKey: the known_hosts line is for {hosts[:80]},"
                f" not for {wanted} (Hostname, Port): copy the line for {wanted}"
                " or give the bare key 'keytype base64'"
            )
        return self


class Route(_Model):
    """A credential-proxy route: requests to it get `inject` headers added upstream."""

    name: Name
    role: Literal["anthropic-base-url"] | None = Field(
        default=None,
        description="'anthropic-base-url' points Claude Code's ANTHROPIC_BASE_URL at this route.",
    )
    upstream: Upstream = Field(
        description="https:// base URL of the API (a host name, not an IP address)."
    )
    inject: dict[HeaderName, str] = Field(
        default_factory=dict,
        description="Header values: literal, '?prompt text', or containing '${HOST_VAR}'.",
    )
    grants: list[Literal["web_search", "web_fetch", "code_execution", "mcp_servers"]] = Field(
        default_factory=list,
        description=(
            "For the 'anthropic-base-url' route only: server-side tools and connectors the"
            " agent may ask the Messages API to use (each lets the API reach out on the"
            " agent's behalf). Without a grant they are refused."
        ),
    )

    @model_validator(mode="after")
    def _grants_need_the_role(self) -> Route:
        if self.grants and self.role != "anthropic-base-url":
            raise ValueError("grants apply to the 'anthropic-base-url' route only")
        return self


class CredProxy(_Model):
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> CredProxy:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route names must be unique; repeated: {', '.join(dupes)}")
        if sum(1 for r in self.routes if r.role == "anthropic-base-url") > 1:
            raise ValueError("only one route may have role 'anthropic-base-url'")
        return self


class Bottle(_Model):
    env: dict[EnvName, str] = Field(
        default_factory=dict,
        description="Values: literal, '?prompt text' (asked locally), or containing '${HOST_VAR}'.",
    )
    egress: Egress = Field(default_factory=Egress)
    git: list[GitRemote] = Field(default_factory=list)
    cred_proxy: CredProxy = Field(default_factory=CredProxy)


class Agent(_Model):
    bottle: Name
    skills: list[FilePath] = Field(
        default_factory=list,
        description="Skill directories (each with a SKILL.md), relative to this manifest file.",
    )
    prompt: str | None = Field(default=None, description="Extra system prompt text.")
    prompt_file: FilePath | None = Field(
        default=None, description="A file holding the extra system prompt, relative to this file."
    )

    @model_validator(mode="after")
    def _one_prompt(self) -> Agent:
        if self.prompt is not None and self.prompt_file is not None:
            raise ValueError("give either `prompt` or `prompt_file`, not both")
        return self


class _HostBase(_Model):
    images: Literal["ship", "build"] = Field(
        default="ship",
        description="'ship' sends locally built images over the tunnel; 'build' builds on the VM.",
    )


class LocalHost(_HostBase):
    provider: Literal["local"]


class SshHost(_HostBase):
    provider: Literal["ssh"]
    address: SshAddress = Field(description="Host name, IP address or ~/.ssh/config alias.")
    user: Line | None = None
    port: Port | None = None
    identity_file: FilePath | None = None
    docker_socket: FilePath = "/var/run/docker.sock"
    connect_timeout: float = Field(default=15.0, gt=0, le=600)
    images: Literal["ship", "build"] = Field(
        default="ship",
        description="ship: build or find images here and send them over SSH (the VM needs no "
        "registry); build: build and pull them on the VM.",
    )


class _CloudHost(_HostBase):
    reuse: bool = Field(default=False, description="Keep the VM for the next session.")
    ttl_minutes: int = Field(
        default=15, ge=2, le=24 * 60, description="Dead-man timer: power off after this silence."
    )
    ready_timeout: float = Field(default=300.0, gt=0, le=3600)


class Ec2Host(_CloudHost):
    provider: Literal["ec2"]
    region: Line | None = None
    profile: Line | None = None
    instance_type: Line = "t3.medium"
    ami: Line | None = Field(default=None, description="Default: the current Debian 13 AMI.")
    subnet_id: Line | None = None
    spot: bool = False


class FlyHost(_CloudHost):
    provider: Literal["fly"]
    app: Line
    region: Line | None = None
    vm_size: Line = "shared-cpu-2x"
    image: Line | None = None


Host = Annotated[
    LocalHost | SshHost | Ec2Host | FlyHost,
    Field(discriminator="provider"),
]


class ManifestFile(_Model):
    """One `claude-bottle.json` file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        title="claude-bottle.json (remotebottle)",
    )

    schema_ref: str | None = Field(default=None, alias="$schema", description="Editor schema.")
    bottles: dict[Name, Bottle] = Field(default_factory=dict)
    agents: dict[Name, Agent] = Field(default_factory=dict)
    hosts: dict[Name, Host] = Field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """The merged manifest, with where each entry came from."""

    bottles: Mapping[str, Bottle] = field(default_factory=dict)
    agents: Mapping[str, Agent] = field(default_factory=dict)
    hosts: Mapping[str, LocalHost | SshHost | Ec2Host | FlyHost] = field(default_factory=dict)
    origins: Mapping[str, Path] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def agent(self, name: str) -> Agent:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents)) or "none defined"
            hint = f"define agents.{name} in ./{MANIFEST_NAME} or ~/{MANIFEST_NAME}"
            if not is_name(name):
                hint = "an agent's name is 1-40 lowercase letters, digits, '-' or '_'"
            raise ManifestError(
                f"no agent named {quoted(name)} (known agents: {known})", hint=hint
            ) from None

    def origin(self, section: str, name: str) -> Path | None:
        return self.origins.get(f"{section}.{name}")


def schema() -> dict[str, Any]:
    """The JSON Schema of one manifest file, for editors (`rbottle schema`)."""
    return ManifestFile.model_json_schema(by_alias=True)
