"""Host keys for `rbottle hosts`: whether known_hosts has a host's key, and trusting one.

`examine` asks the host for its key and refuses what must not be trusted (a revoked
key, a key that differs from the recorded one); the caller shows the key, asks the
user, and `pin`s it. Nothing here asks or prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from remotebottle.errors import HostError, RemoteBottleError, UsageError
from remotebottle.hosts.engine import ssh_entry
from remotebottle.hosts.resolve import HostEntry, HostTarget, ssh_endpoint
from remotebottle.manifest import SshHost
from remotebottle.transport import known_hosts as kh
from remotebottle.transport.ssh import SshTarget, fetch_host_key, resolve_target

Progress = Callable[[str], None]


def host_key_status(name: str, entry: HostEntry) -> str | None:
    """For an SSH host: `known` or `unknown` (from known_hosts alone); None otherwise."""
    if not isinstance(entry, SshHost):
        return None
    try:
        t = resolve_target(ssh_endpoint(entry), name=name)
    except RemoteBottleError:
        return "unknown"
    known = kh.load_known(t.known_hosts_files, t.known_hosts_name)
    return "known" if any(not k.revoked for k in known) else "unknown"


@dataclass(frozen=True)
class PresentedKey:
    """The key a host presents, which known_hosts either trusts already or has no key for.

    Attributes:
        label: the host as messages show it.
        trusted_at: the known_hosts entry (`file:line`) that trusts the key, or None.
        record_in: the known_hosts file `pin` writes to (checked only when not trusted).
        hashed: `pin` writes a hashed name (HashKnownHosts yes).
        known_hosts_name: the name the key is filed under.
    """

    label: str
    key: paramiko.PKey
    trusted_at: str | None
    record_in: str
    hashed: bool
    known_hosts_name: str

    @property
    def shown(self) -> str:
        """`ssh-ed25519 key SHA256:…`."""
        return kh.describe(self.key)


def examine(host: HostTarget, *, progress: Progress) -> PresentedKey:
    """Fetch `host`'s key and say whether known_hosts trusts it already.

    Raises:
        UsageError: the host is local: it has no SSH host key.
        HostError: a cloud host (its key comes from the provider, not from you), the key
            is revoked, or the known_hosts file to record in is not a regular file.
        ConnectError: another key is recorded for the host, or it cannot be reached.
    """
    if host.is_local:
        raise UsageError(
            "`local` is this machine's engine: there is no SSH host key to trust",
            hint="trust a remote host: rbottle hosts trust vm1",
        )
    entry = ssh_entry(host)
    t = resolve_target(entry, name=host.name)
    progress(f"asking {t.label} for its SSH host key")
    key = fetch_host_key(entry, name=host.name)
    state, known = kh.key_state(kh.load_known(t.known_hosts_files, t.known_hosts_name), key)
    where = known.where if known else str(t.user_known_hosts)
    if state is kh.KeyState.TRUSTED:
        return PresentedKey(t.label, key, where, where, t.hash_known_hosts, t.known_hosts_name)
    if state is kh.KeyState.REVOKED:
        raise HostError(
            f"{t.label} presents {kh.describe(key)}, which is marked @revoked in {where}:"
            " not trusting it",
            hint="the host's key was revoked: do not connect to it",
        )
    if state is kh.KeyState.CHANGED and known is not None:
        raise kh.changed_error(t.label, host.name, key, known, refusing=True)
    path = _writable_known_hosts(t)
    return PresentedKey(t.label, key, None, path, t.hash_known_hosts, t.known_hosts_name)


def pin(presented: PresentedKey) -> None:
    """Record the presented key in known_hosts, as `presented` says where and how."""
    kh.record(
        presented.known_hosts_name, presented.key, presented.record_in, hashed=presented.hashed
    )


def _writable_known_hosts(t: SshTarget) -> str:
    path = t.user_known_hosts
    if path.exists() and not path.is_file():
        raise HostError(
            f"cannot record the key in {path}: it is not a regular file",
            hint="set UserKnownHostsFile in ~/.ssh/config to a real file",
        )
    return str(path)
