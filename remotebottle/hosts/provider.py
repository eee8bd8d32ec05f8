"""The interface every VM provider implements (EC2, Fly Machines).

A provider creates one VM per session (idempotent per session identity), waits until
it is reachable over SSH with a host key learned from the provider itself (never
trust-on-first-use), describes it, destroys it with everything made for it, and lists
what it owns for the orphan sweep. A failure part-way through `create` destroys what
was already made before the error reaches the user.
"""

from __future__ import annotations

import datetime
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[str], None]

# Tag / metadata keys on every resource a provider makes.
TAG_OWNER = "io.remotebottle.owned"
TAG_IDENTITY = "io.remotebottle.identity"
TAG_CREATED = "io.remotebottle.created-at"
TAG_EXPIRES = "io.remotebottle.expires-at"


@dataclass(frozen=True)
class Machine:
    """A VM made for one session, and how to log in to it.

    Attributes:
        provider: "ec2" | "fly".
        machine_id: the provider's id of the VM (instance id, machine id).
        identity: the session identity the VM belongs to.
        address: where SSH listens (IP address or host name).
        port: SSH port.
        user: the login user.
        host_key: the VM's SSH host key as a known_hosts key ("ssh-ed25519 AAAA..."),
            learned from the provider (console output, API); the only key accepted.
        login_key: the per-session private key (OpenSSH PEM text); the session keeps a
            copy in its local state dir (0600) while the VM lives, for `rbottle attach`
            (`hosts.session_vm`); empty when the provider logs in otherwise.
        expires_at: when the dead-man timer powers it off without a heartbeat.
        details: what the preflight and `list` show (region, instance type, ...).
    """

    provider: str
    machine_id: str
    identity: str
    address: str
    port: int
    user: str
    host_key: str
    login_key: str = field(default="", repr=False)
    expires_at: datetime.datetime | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnedResource:
    """Something a provider made and tagged as ours (VM, key pair, security group)."""

    provider: str
    kind: str
    resource_id: str
    identity: str
    created_at: datetime.datetime | None
    expires_at: datetime.datetime | None
    state: str = ""

    def is_expired(self, now: datetime.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Provider(ABC):
    """One cloud provider, configured from a `hosts` entry."""

    name: str

    @abstractmethod
    def preflight(self) -> dict[str, str]:
        """What the user is about to pay for: provider, type, region, TTL, hourly price."""

    @abstractmethod
    def create(self, identity: str, *, progress: Progress) -> Machine:
        """Create (or find, if it exists) the VM of session `identity`, wait until SSH is
        ready, and return it. On any failure, destroy what was made, then raise."""

    @abstractmethod
    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        """Destroy the VM and everything made for it. Idempotent."""

    def renew_expiry(self, machine: Machine) -> None:  # noqa: B027 optional
        """Move the machine's expiry mark to now + TTL (called with each heartbeat), so
        that `cleanup --orphans` elsewhere does not take a live session for a lost one."""

    def adopt_login_key(self, identity: str, login_key: str) -> None:  # noqa: B027 optional
        """Hand back the login key of a kept (`reuse`) machine before `create` finds it."""

    @abstractmethod
    def list_owned(self) -> list[OwnedResource]:
        """Every resource tagged as ours, for `rbottle cleanup --orphans`."""

    @abstractmethod
    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        """Destroy resources found by `list_owned` (VMs first, then what they used)."""
