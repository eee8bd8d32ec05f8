"""Where and how to connect: an `SshEndpoint` merged with `~/.ssh/config` (`SshTarget`).

The endpoint's own settings win, then `~/.ssh/config` (HostName, Port, User, IdentityFile,
IdentitiesOnly, ProxyJump, ProxyCommand, HostKeyAlias, UserKnownHostsFile,
GlobalKnownHostsFile, HashKnownHosts), then OpenSSH's defaults.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from remotebottle.errors import ConnectError
from remotebottle.transport.endpoint import SshEndpoint, as_endpoint
from remotebottle.transport.known_hosts import host_name


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect, after merging the endpoint with `~/.ssh/config`."""

    name: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    explicit_identity: bool
    identities_only: bool
    proxy_jump: str | None
    proxy_command: str | None
    host_key_alias: str | None
    known_hosts_files: tuple[str, ...]
    connect_timeout: float
    hash_known_hosts: bool = False

    @property
    def label(self) -> str:
        where = f"{self.hostname}:{self.port}"
        return where if self.name in (self.hostname, where) else f"{self.name} ({where})"

    @property
    def known_hosts_name(self) -> str:
        """The name this host's key is filed under in known_hosts (as OpenSSH does it)."""
        if self.host_key_alias:
            return self.host_key_alias
        return host_name(self.hostname, self.port)

    @property
    def user_known_hosts(self) -> Path:
        """Where a newly trusted key goes: the first UserKnownHostsFile, as OpenSSH does."""
        return Path(self.known_hosts_files[0])


def resolve_target(
    host: SshEndpoint | str,
    *,
    name: str | None = None,
    ssh_config: Path | str | None = None,
    known_hosts: Path | str | None = None,
) -> SshTarget:
    """Merge an endpoint (or a bare address/alias) with `~/.ssh/config`; the endpoint wins.

    Raises:
        ConnectError: the ssh config file cannot be parsed.
    """
    entry = as_endpoint(host)
    cfg = _lookup_config(entry.address, ssh_config)
    files = cfg.get("identityfile") or []
    identities = (entry.identity_file,) if entry.identity_file else tuple(files)
    user_files = str(cfg.get("userknownhostsfile") or "~/.ssh/known_hosts ~/.ssh/known_hosts2")
    kh_files = [*user_files.split(), *str(cfg.get("globalknownhostsfile") or "").split()]
    kh_files.append("/etc/ssh/ssh_known_hosts")
    if known_hosts:
        kh_files.append(str(known_hosts))
    jump = cfg.get("proxyjump")
    command = cfg.get("proxycommand")
    return SshTarget(
        name=name or entry.address,
        hostname=str(cfg.get("hostname") or entry.address),
        port=int(entry.port or cfg.get("port") or 22),
        user=entry.user or str(cfg.get("user") or "") or getpass.getuser(),
        identity_files=tuple(os.path.expanduser(str(p)) for p in identities),
        explicit_identity=bool(entry.identity_file),
        identities_only=str(cfg.get("identitiesonly", "no")).lower() == "yes",
        proxy_jump=None if not jump or str(jump).lower() == "none" else str(jump),
        proxy_command=None if not command or str(command).lower() == "none" else str(command),
        host_key_alias=str(cfg["hostkeyalias"]) if cfg.get("hostkeyalias") else None,
        known_hosts_files=tuple(dict.fromkeys(os.path.expanduser(p) for p in kh_files)),
        connect_timeout=float(entry.connect_timeout),
        hash_known_hosts=str(cfg.get("hashknownhosts", "no")).lower() == "yes",
    )


def _lookup_config(alias: str, path: Path | str | None) -> dict[str, Any]:
    config_path = Path(path) if path else Path(os.path.expanduser("~/.ssh/config"))
    if not config_path.is_file():
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(str(config_path)).lookup(alias))
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise ConnectError(
            f"cannot read {config_path}: {exc}", hint="fix the ssh config file, or move it aside"
        ) from None


__all__ = ["SshTarget", "resolve_target"]
