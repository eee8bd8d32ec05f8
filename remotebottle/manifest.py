"""The manifest: `claude-bottle.json` models, loading, merging and the JSON Schema.

Two files are read: `$HOME/claude-bottle.json` and `./claude-bottle.json`.
Each is validated on its own (so errors name the right file), then the two are
merged entry by entry with the project file winning, then cross-references
(an agent's bottle) are checked.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    model_validator,
)

from remotebottle import hostkeys, hostnames
from remotebottle.errors import ManifestError

MANIFEST_NAME = "claude-bottle.json"
PROVIDERS = ("local", "ssh", "ec2", "fly")
SCHEMA_HINT = "run `rbottle schema` for the full schema, or see docs/manifest.md"

# Matched whole (`fullmatch`): `$` would let a trailing newline through.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")

# Set by the bottle itself; a manifest that set them would undo the isolation.
RESERVED_ENV = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "NODE_EXTRA_CA_CERTS",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
    }
)


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-40 lowercase letters, digits, '-' or '_'"
        )
    return value


def _check_hostname(value: str) -> str:
    try:
        return hostnames.check_host(value, by_agent=False, addresses=True)
    except hostnames.Refused as exc:
        raise ValueError(str(exc)) from None


def _check_upstream(value: HttpUrl) -> HttpUrl:
    try:
        hostnames.check_upstream(str(value), by_agent=False)
    except hostnames.Refused as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_host_key(value: str) -> str:
    try:
        hostkeys.parse(value)
    except ValueError as exc:
        raise ValueError(f"not a host key: {exc}") from None
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid environment variable name")
    if value in RESERVED_ENV:
        raise ValueError(f"{value} is set by the bottle itself and cannot be overridden")
    return value


def _check_header(value: str) -> str:
    if not _HEADER_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


Name = Annotated[str, AfterValidator(_check_name)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
HeaderName = Annotated[str, AfterValidator(_check_header)]
IpAddress = Annotated[str, AfterValidator(_check_ip)]
Upstream = Annotated[HttpUrl, AfterValidator(_check_upstream)]
Port = Annotated[int, Field(ge=1, le=65535)]


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

    host: Annotated[str, AfterValidator(_check_hostname)] = Field(
        alias="Host",
        description="The name the agent uses in remote URLs (an ssh_config Host alias).",
    )
    hostname: Hostname | None = Field(
        default=None,
        validation_alias=AliasChoices("Hostname", "HostName"),
        serialization_alias="Hostname",
        description="The machine the gate connects to; default: Host.",
    )
    user: str = Field(default="git", alias="User")
    port: Port = Field(default=22, alias="Port")
    identity_file: str | None = Field(
        default=None,
        alias="IdentityFile",
        description="Private key for the upstream; it lives only in the git gate.",
    )
    known_host_key: Annotated[str, AfterValidator(_check_host_key)] = Field(
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
    skills: list[str] = Field(
        default_factory=list,
        description="Skill directories (each with a SKILL.md), relative to this manifest file.",
    )
    prompt: str | None = Field(default=None, description="Extra system prompt text.")
    prompt_file: str | None = Field(
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
    address: str = Field(description="Host name, IP address or ~/.ssh/config alias.")
    user: str | None = None
    port: Port | None = None
    identity_file: str | None = None
    docker_socket: str = "/var/run/docker.sock"
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
    region: str | None = None
    profile: str | None = None
    instance_type: str = "t3.medium"
    ami: str | None = Field(default=None, description="Default: the current Debian 12 AMI.")
    subnet_id: str | None = None
    spot: bool = False


class FlyHost(_CloudHost):
    provider: Literal["fly"]
    app: str
    region: str | None = None
    vm_size: str = "shared-cpu-2x"
    image: str | None = None


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
            raise ManifestError(
                f"no agent named {name!r} (known agents: {known})",
                hint=f"define agents.{name} in ./{MANIFEST_NAME} or ~/{MANIFEST_NAME}",
            ) from None

    def origin(self, section: str, name: str) -> Path | None:
        return self.origins.get(f"{section}.{name}")


def schema() -> dict[str, Any]:
    """The JSON Schema of one manifest file, for editors."""
    return ManifestFile.model_json_schema(by_alias=True)


def default_paths(cwd: Path | None = None, home: Path | None = None) -> list[Path]:
    """The manifest files to read, home first so the project file wins."""
    home_file = (home or Path(os.path.expanduser("~"))) / MANIFEST_NAME
    project_file = (cwd or Path.cwd()) / MANIFEST_NAME
    paths = [home_file]
    if project_file.resolve() != home_file.resolve():
        paths.append(project_file)
    return paths


def load(paths: list[Path] | None = None) -> Manifest:
    """Load, validate and merge manifest files; missing files are skipped.

    Raises:
        ManifestError: a file is unreadable, not JSON, or does not validate, or an
            agent names a bottle no file defines.
    """
    merged: dict[str, dict[str, Any]] = {"bottles": {}, "agents": {}, "hosts": {}}
    origins: dict[str, Path] = {}
    files: list[Path] = []
    for path in paths if paths is not None else default_paths():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read: {exc}") from None
        parsed = parse(text, str(path))
        files.append(path)
        for section in merged:
            for name, entry in getattr(parsed, section).items():
                merged[section][name] = _anchor(entry, path.parent)
                origins[f"{section}.{name}"] = path
    manifest = Manifest(
        bottles=merged["bottles"],
        agents=merged["agents"],
        hosts=merged["hosts"],
        origins=origins,
        files=tuple(files),
    )
    _check_references(manifest)
    return manifest


def parse(text: str, source: str = MANIFEST_NAME) -> ManifestFile:
    """Parse and validate the text of one manifest file named `source`.

    Raises:
        ManifestError: with one line per problem, each naming `source` and the JSON path.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}",
            hint="fix the JSON syntax (no comments or trailing commas)",
        ) from None
    except RecursionError:
        raise ManifestError(f"{source}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ManifestError(
            f"{source}: (top level): expected a JSON object with bottles, agents, hosts",
            hint=SCHEMA_HINT,
        )
    _refuse_legacy(data, source)
    try:
        return ManifestFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err)}" for err in exc.errors()]
        raise ManifestError("\n".join(lines), hint=SCHEMA_HINT) from None


def _refuse_legacy(data: dict[str, Any], source: str) -> None:
    if "runtime" in data:
        raise ManifestError(
            f"{source}: runtime: no longer supported: gVisor is auto-detected",
            hint="delete `runtime`; runsc is used whenever the engine has it",
        )
    bottles = data.get("bottles")
    if not isinstance(bottles, dict):
        return
    for name, bottle in bottles.items():
        if not isinstance(bottle, dict):
            continue
        if "ssh" in bottle:
            raise ManifestError(
                f"{source}: bottles.{name}.ssh: no longer supported: use `git`",
                hint=f"move each entry to bottles.{name}.git as"
                " {Host, Hostname, User, Port, IdentityFile, KnownHostKey, ExtraHosts}",
            )
        if "runtime" in bottle:
            raise ManifestError(
                f"{source}: bottles.{name}.runtime: no longer supported: gVisor is auto-detected",
                hint="delete `runtime`; runsc is used whenever the engine has it",
            )


def _describe(err: Any) -> str:
    loc: list[str | int] = [p for p in err["loc"] if p != "[key]"]
    # Tagged unions put the tag in the location (hosts.vm1.ssh.address); users never wrote it.
    if len(loc) >= 3 and loc[0] == "hosts" and loc[2] in PROVIDERS:
        del loc[2]
    path = _json_path(loc)
    kind = err["type"]
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind == "extra_forbidden":
        return f"{path}: unknown field"
    if kind == "union_tag_invalid":
        given = err["input"].get("provider")
        return (
            f"{path}.provider: unknown provider {given!r}; expected one of {', '.join(PROVIDERS)}"
        )
    if kind == "union_tag_not_found":
        return f"{path}: `provider` is required (one of {', '.join(PROVIDERS)})"
    msg = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "expected")
    if kind.endswith("_type"):
        msg = f"{msg}, got {_json_type(err['input'])}"
    return f"{path}: {msg}"


def _json_path(loc: list[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, str) and not part.isprintable():
            part = part.encode("unicode_escape").decode("ascii")  # one line, whatever the key
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "(top level)"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _anchor(entry: Any, base: Path) -> Any:
    """Make an agent's relative file paths relative to its manifest's directory."""
    if not isinstance(entry, Agent):
        return entry
    skills = [str(_skill_path(base, s)) for s in entry.skills]
    prompt_file = str(_resolve(base, entry.prompt_file)) if entry.prompt_file else None
    return entry.model_copy(update={"skills": skills, "prompt_file": prompt_file})


def _skill_path(base: Path, value: str) -> Path:
    """A skill directory: a path relative to the manifest, or a bare name (as claude-bottle
    writes them) found next to the manifest, in its `.claude/skills/`, or in
    `~/.claude/skills/`, the first that holds a SKILL.md."""
    if not _is_bare_name(value):
        return _resolve(base, value)
    places = [base / value, base / ".claude" / "skills" / value, personal_skills_dir() / value]
    return next((p.resolve() for p in places if (p / "SKILL.md").is_file()), places[0].resolve())


def _is_bare_name(value: str) -> bool:
    return bool(value) and "/" not in value and not value.startswith((".", "~"))


def personal_skills_dir() -> Path:
    """Claude Code's personal skills, where a bare skill name is looked up last."""
    return Path(os.path.expanduser("~")) / ".claude" / "skills"


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def _check_references(manifest: Manifest) -> None:
    for name, agent in manifest.agents.items():
        if agent.bottle not in manifest.bottles:
            source = manifest.origin("agents", name)
            known = ", ".join(sorted(manifest.bottles)) or "none defined"
            raise ManifestError(
                f"{source}: agents.{name}.bottle: no bottle named {agent.bottle!r}"
                f" (known bottles: {known})",
                hint=f"define bottles.{agent.bottle}, or point the agent at an existing bottle",
            )
