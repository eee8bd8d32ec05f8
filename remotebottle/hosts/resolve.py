"""Turn a `--host` argument into a host entry: manifest name, `ssh://` URL or ssh-config alias.

`ssh_endpoint` is the one place a manifest `SshHost` becomes what transport connects to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from remotebottle.errors import HostError, quoted
from remotebottle.hosts.registry import DEFAULT, Kind, Registry
from remotebottle.manifest import Ec2Host, FlyHost, LocalHost, Manifest, SshHost, is_one_line
from remotebottle.transport.endpoint import SshEndpoint

if TYPE_CHECKING:
    from remotebottle.hosts.provider import Provider

HostEntry = LocalHost | SshHost | Ec2Host | FlyHost
_ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class HostTarget:
    """A host by the name the user gave, its entry, and the registry that says its kind."""

    name: str
    entry: HostEntry
    registry: Registry = field(default=DEFAULT, compare=False, repr=False)

    @property
    def provider(self) -> str:
        return self.entry.provider

    @property
    def kind(self) -> Kind:
        return self.registry.kind(self.entry)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def is_cloud(self) -> bool:
        """Its engines are VMs a provider makes (per session, or kept with `reuse`)."""
        return self.kind == "cloud"

    @property
    def reuse(self) -> bool:
        """A cloud host whose VM outlives the session, for the next one."""
        return isinstance(self.entry, Ec2Host | FlyHost) and self.entry.reuse

    @property
    def per_session(self) -> bool:
        """A cloud host whose VM is made for one session and destroyed at its end."""
        return self.is_cloud and not self.reuse

    @property
    def ttl_minutes(self) -> int | None:
        """A cloud VM's dead-man timer: it powers off this long after the last heartbeat."""
        return self.entry.ttl_minutes if isinstance(self.entry, Ec2Host | FlyHost) else None

    def cloud_provider(self) -> Provider:
        """The provider that makes this cloud host's VMs.

        Raises:
            HostError: it is not a cloud host.
        """
        return self.registry.provider(self.name, self.entry)

    def label(self) -> str:
        return self.name if self.name == self.provider else f"{self.name} ({self.provider})"


def resolve_host(arg: str | None, manifest: Manifest, registry: Registry = DEFAULT) -> HostTarget:
    """Resolve `--host`; `registry` decides what kind of host it is.

    Raises:
        HostError: the argument is none of the accepted forms.
    """
    if arg is None or arg == "local":
        entry = manifest.hosts.get("local", LocalHost(provider="local"))
        return HostTarget("local", entry, registry)
    if arg in manifest.hosts:
        return HostTarget(arg, manifest.hosts[arg], registry)
    if arg.startswith("ssh://"):
        return HostTarget(arg, _from_url(arg), registry)
    if arg == "ec2":
        return HostTarget("ec2", Ec2Host(provider="ec2"), registry)
    if arg == "fly":
        raise HostError(
            "`--host fly` needs a Fly app",
            hint='add hosts.fly = {"provider": "fly", "app": "<your app>"} to the manifest',
        )
    if _ALIAS_RE.fullmatch(arg) and is_one_line(arg):
        return HostTarget(arg, SshHost(provider="ssh", address=arg), registry)
    raise HostError(
        f"{quoted(arg)} is not a host: expected a hosts entry, an ~/.ssh/config alias,"
        " or ssh://user@host[:port]",
        hint="`rbottle hosts` lists the hosts the manifest defines",
    )


def recorded_host(
    name: str, entry: Mapping[str, object], registry: Registry = DEFAULT
) -> HostTarget:
    """The host a session recorded when it started, as it was then (the manifest may have
    changed since).

    Raises:
        HostError: the record does not hold a host entry.
    """
    from pydantic import TypeAdapter, ValidationError

    from remotebottle.manifest import Host

    try:
        parsed: HostEntry = TypeAdapter(Host).validate_python(dict(entry))
    except ValidationError as exc:
        raise HostError(
            f"the host recorded for {name} is unreadable ({exc.error_count()} problems)",
            hint="the state was written by another rbottle version, or edited",
        ) from None
    return HostTarget(name, parsed, registry)


def _from_url(url: str) -> SshHost:
    if not is_one_line(url) or any(c.isspace() for c in url):
        raise HostError(
            f"{quoted(url)} is not a valid ssh:// URL: too long, or a space or control"
            " character in it",
            hint="use ssh://user@host[:port]",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HostError(f"{quoted(url)} is not a valid ssh:// URL: {exc}") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.password:
        raise HostError(
            f"{quoted(url)} is not a valid ssh:// URL",
            hint="use ssh://user@host[:port], with no password or path",
        )
    return SshHost(provider="ssh", address=parts.hostname, user=parts.username, port=port)


def ssh_endpoint(entry: SshHost) -> SshEndpoint:
    """What transport connects to for the SSH host `entry` describes."""
    return SshEndpoint(
        address=entry.address,
        user=entry.user,
        port=entry.port,
        identity_file=entry.identity_file,
        connect_timeout=entry.connect_timeout,
    )
