"""What transport connects to: `SshEndpoint`, transport's own description of an SSH host.

Transport knows nothing of the manifest: `hosts/` turns a manifest `hosts` entry into an
`SshEndpoint` (`hosts.resolve.ssh_endpoint`), and a VM a provider made into one
(`hosts.cloud.connect_machine`). `~/.ssh/config` fills in the rest when the connection is
made (`target.resolve_target`): HostName, ProxyJump/ProxyCommand, HostKeyAlias, known_hosts
files. This module imports neither paramiko nor docker, so `hosts/` can use it at import
time without slowing `rbottle --help`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class SshEndpoint:
    """One SSH host to connect to, as the caller knows it (before `~/.ssh/config`).

    Attributes:
        address: host name, IP address or `~/.ssh/config` alias.
        user: login user; default: the config's User, else the local user.
        port: default: the config's Port, else 22.
        identity_file: the one key to log in with (given explicitly, it is tried first
            and overrides the config's IdentityFile).
        connect_timeout: seconds for TCP, the SSH handshake and authentication together.
    """

    address: str
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


def as_endpoint(host: SshEndpoint | str) -> SshEndpoint:
    """`host` as an `SshEndpoint`; a bare string is an address or `~/.ssh/config` alias."""
    return SshEndpoint(address=host) if isinstance(host, str) else host


__all__ = ["DEFAULT_CONNECT_TIMEOUT", "SshEndpoint", "as_endpoint"]
