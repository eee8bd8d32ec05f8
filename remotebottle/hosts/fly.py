"""Fly Machines: one Machine (plus a volume for Docker's data) per session.

The Machine runs the image of `remotebottle/resources/fly/` (sshd on port 2222, dockerd on a
per-session volume, the dead-man check). Everything that makes it ours is generated here,
before it exists, and delivered through the machine config's `files`:

- its SSH host key (ed25519): the public half is `Machine.host_key`, so the first connection
  is already verified, never trust-on-first-use;
- the login user's `authorized_keys`: the public half of a per-session ed25519 key whose
  private half stays in memory (`Machine.login_key`);
- the dead-man TTL: the Machine's main process exits when the heartbeat file is older than
  that, and `auto_destroy` then removes the Machine.

The public halves of both keys are also kept in the Machine's metadata, so that a kept
(`reuse`) Machine is found again by a later session that holds its login key.

SSH is reached through the Fly proxy at `<app>.fly.dev` on a public port of its own for each
Machine (raw TCP, no handlers), so concurrent sessions in one app never reach each other's
Machine. The app needs a dedicated IP for that: docs/fly.md.

API reference: https://fly.io/docs/machines/api/machines-resource/ and
https://fly.io/docs/machines/api/volumes-resource/.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization

from remotebottle.errors import HostError, ProvisionError
from remotebottle.hosts.fly_api import FlyApi, FlyApiError
from remotebottle.hosts.provider import (
    TAG_CREATED,
    TAG_EXPIRES,
    TAG_IDENTITY,
    TAG_OWNER,
    Machine,
    OwnedResource,
    Progress,
    Provider,
)
from remotebottle.manifest import FlyHost
from remotebottle.sshkeys import new_ed25519

log = logging.getLogger(__name__)

DEFAULT_REGION = "iad"
DEFAULT_IMAGE = "registry.fly.io/{app}:rbottle"
LOGIN_USER = "rbottle"
SSH_INTERNAL_PORT = 2222  # Fly's own port 22 is taken on the private interface
SSH_PORT_RANGE = (20000, 30000)  # one public port per Machine, chosen from the identity
VOLUME_GB = 10
VOLUME_PREFIX = "rb_"
DOCKER_DATA = "/data"  # the volume; dockerd keeps its data-root in /data/docker
MIN_MEMORY_MB = 2048  # dockerd, the sidecars and Claude Code do not fit the small presets

# Where the image's init script expects what we deliver (resources/fly/rbottle-fly-init).
HOST_KEY_PATH = "/etc/rbottle/ssh_host_ed25519_key"
AUTHORIZED_KEYS_PATH = "/etc/rbottle/authorized_keys"
TTL_PATH = "/etc/rbottle/ttl_minutes"

# Fly metadata keys are plain identifiers: provider.TAG_* mapped to them.
META_KEYS = {
    TAG_OWNER: "rbottle_owned",
    TAG_IDENTITY: "rbottle_identity",
    TAG_CREATED: "rbottle_created_at",
    TAG_EXPIRES: "rbottle_expires_at",
}
META_VOLUME = "rbottle_volume"
META_HOST_KEY = "rbottle_host_key"  # public halves, so that a kept Machine can be found again
META_LOGIN_KEY = "rbottle_login_key"


@dataclass(frozen=True)
class VmSize:
    cpu_kind: str
    cpus: int
    memory_mb: int  # the preset's own memory
    usd_month: float  # list price of the preset, running all month


# Approximate list prices (USD, running 730 h/month) from https://fly.io/docs/about/pricing/
# as of 2024-2025; regions differ by a few percent. Extra memory is billed at ~$5/GB-month,
# volumes at ~$0.15/GB-month.
VM_SIZES: dict[str, VmSize] = {
    "shared-cpu-1x": VmSize("shared", 1, 256, 1.94),
    "shared-cpu-2x": VmSize("shared", 2, 512, 3.89),
    "shared-cpu-4x": VmSize("shared", 4, 1024, 7.78),
    "shared-cpu-8x": VmSize("shared", 8, 2048, 15.55),
    "performance-1x": VmSize("performance", 1, 2048, 31.00),
    "performance-2x": VmSize("performance", 2, 4096, 62.00),
    "performance-4x": VmSize("performance", 4, 8192, 124.00),
    "performance-8x": VmSize("performance", 8, 16384, 248.00),
    "performance-16x": VmSize("performance", 16, 32768, 496.00),
}
EXTRA_GB_USD_MONTH = 5.0
VOLUME_GB_USD_MONTH = 0.15
HOURS_PER_MONTH = 730.0
PRICE_SOURCE = "approximate, from fly.io/docs/about/pricing (list prices, 2024-2025)"

_GONE_STATES = {"destroying", "destroyed"}


@dataclass(frozen=True)
class _Keys:
    host_private: str
    host_public: str
    login_private: str
    login_public: str


def _new_keys() -> _Keys:
    host_private, host_public = new_ed25519()
    login_private, login_public = new_ed25519()
    return _Keys(host_private, host_public, login_private, login_public)


def _public_half(private_key: str) -> str:
    """ "ssh-ed25519 AAAA..." of an OpenSSH private key, or "" if it cannot be read."""
    try:
        key = serialization.load_ssh_private_key(private_key.encode(), None)
    except (ValueError, TypeError):
        return ""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def machine_name(identity: str) -> str:
    return "rbottle-" + identity.replace("_", "-")


def volume_name(identity: str) -> str:
    """`rb_<agent>_<suffix>`, within Fly's 30 characters (lowercase, digits, underscores)."""
    agent, _, suffix = identity.rpartition("-")
    agent = agent.replace("-", "_")[: 30 - len(VOLUME_PREFIX) - 1 - len(suffix)]
    return f"{VOLUME_PREFIX}{agent}_{suffix}"


def _identity_from_volume(name: str) -> str:
    agent, _, suffix = name.removeprefix(VOLUME_PREFIX).rpartition("_")
    return f"{agent}-{suffix}" if agent else name


def _public_ports(machine: Mapping[str, Any]) -> set[int]:
    ports: set[int] = set()
    config = machine.get("config") or {}
    for service in config.get("services") or []:
        for port in service.get("ports") or []:
            if isinstance(port.get("port"), int):
                ports.add(port["port"])
    return ports


def pick_port(identity: str, taken: Iterable[int]) -> int:
    """A public port for this identity's SSH, stable for the identity, avoiding `taken`."""
    low, high = SSH_PORT_RANGE
    used = set(taken)
    start = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big") % (high - low)
    for step in range(high - low):
        port = low + (start + step) % (high - low)
        if port not in used:
            return port
    raise ProvisionError(f"no free SSH port left in {low}-{high - 1} on this Fly app")


def _wait_for_ssh(address: str, port: int, deadline: float) -> None:
    """Until sshd's banner arrives through the proxy (a TCP connect alone proves nothing:
    the Fly proxy accepts before it has a Machine to hand the connection to)."""
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProvisionError(
                f"the Fly Machine's sshd did not answer on {address}:{port} ({last})",
                hint="the app needs a dedicated IPv4 or an IPv6 for raw TCP: see docs/fly.md",
            )
        try:
            with socket.create_connection((address, port), timeout=min(10.0, remaining)) as s:
                s.settimeout(min(10.0, remaining))
                if s.recv(64).startswith(b"SSH-"):
                    return
                last = "no SSH banner"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


class FlyProvider(Provider):
    """Fly Machines for the `hosts` entry `entry`.

    Args:
        entry: the `fly` host entry.
        api_url: the API's base URL (default: $FLY_API_HOSTNAME, else api.machines.dev).
        network: "public": SSH through the Fly proxy at `<app>.fly.dev` on a port of the
            Machine's own (the app needs a dedicated IPv4 or an IPv6); "private": SSH to the
            Machine's 6PN address on port 2222, no public service (needs `fly wireguard`).
        ssh_address: overrides where SSH is reached (tests point it at loopback).
        poll: seconds between checks while waiting (tests shorten it).
    """

    name = "fly"

    def __init__(
        self,
        entry: FlyHost,
        *,
        api_url: str | None = None,
        network: Literal["public", "private"] = "public",
        ssh_address: str | None = None,
        poll: float = 1.0,
    ) -> None:
        self.entry = entry
        self.api = FlyApi(entry.app, api_url)
        self.region = entry.region or DEFAULT_REGION
        self.image = entry.image or DEFAULT_IMAGE.format(app=entry.app)
        self.network = network
        self.ssh_address = ssh_address
        self.poll = poll
        self._made: dict[str, Machine] = {}
        self._login_keys: dict[str, str] = {}

    # -- what it costs -------------------------------------------------------------------

    def _size(self) -> VmSize:
        size = VM_SIZES.get(self.entry.vm_size)
        if size is None:
            known = ", ".join(VM_SIZES)
            raise HostError(
                f"unknown Fly vm_size {self.entry.vm_size!r}",
                hint=f"use one of: {known}",
            )
        return size

    def guest(self) -> dict[str, Any]:
        size = self._size()
        return {
            "cpu_kind": size.cpu_kind,
            "cpus": size.cpus,
            "memory_mb": max(size.memory_mb, MIN_MEMORY_MB),
        }

    def hourly_usd(self) -> float:
        size = self._size()
        extra_gb = max(0, MIN_MEMORY_MB - size.memory_mb) / 1024
        month = size.usd_month + extra_gb * EXTRA_GB_USD_MONTH + VOLUME_GB * VOLUME_GB_USD_MONTH
        return month / HOURS_PER_MONTH

    def preflight(self) -> dict[str, str]:
        """What the user is about to pay for; local only (no API call)."""
        guest = self.guest()
        return {
            "provider": "fly",
            "app": self.entry.app,
            "vm_size": f"{self.entry.vm_size} ({guest['cpus']} {guest['cpu_kind']} CPU,"
            f" {guest['memory_mb']} MB) + a {VOLUME_GB} GB volume for Docker",
            "region": self.region,
            "ttl": f"ends itself after {self.entry.ttl_minutes} min without a heartbeat",
            "image": self.image,
            "hourly_price": f"~${self.hourly_usd():.3f}/h ({PRICE_SOURCE})",
        }

    # -- create --------------------------------------------------------------------------

    def machine_config(
        self, identity: str, keys: _Keys, port: int, volume_id: str, now: datetime.datetime
    ) -> dict[str, Any]:
        expires = now + datetime.timedelta(minutes=self.entry.ttl_minutes)
        return {
            "image": self.image,
            "guest": self.guest(),
            "auto_destroy": True,
            "restart": {"policy": "no"},
            "metadata": {
                META_KEYS[TAG_OWNER]: "true",
                META_KEYS[TAG_IDENTITY]: identity,
                META_KEYS[TAG_CREATED]: _iso(now),
                META_KEYS[TAG_EXPIRES]: _iso(expires),
                META_VOLUME: volume_id,
                META_HOST_KEY: keys.host_public,
                META_LOGIN_KEY: keys.login_public,
            },
            "services": self._services(port),
            "mounts": [{"volume": volume_id, "path": DOCKER_DATA}],
            "files": [
                {"guest_path": HOST_KEY_PATH, "raw_value": _b64(keys.host_private)},
                {"guest_path": AUTHORIZED_KEYS_PATH, "raw_value": _b64(keys.login_public + "\n")},
                {"guest_path": TTL_PATH, "raw_value": _b64(f"{self.entry.ttl_minutes}\n")},
            ],
        }

    def _services(self, port: int) -> list[dict[str, Any]]:
        """Raw TCP (no handlers) from public `port` to sshd; none on the private network."""
        if self.network == "private":
            return []
        return [
            {
                "protocol": "tcp",
                "internal_port": SSH_INTERNAL_PORT,
                "ports": [{"port": port, "handlers": []}],
                "autostart": False,
                "autostop": "off",
            }
        ]

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        """The login key of a kept (`reuse`) Machine, so that `create` may log in to it."""
        self._login_keys[identity] = login_key

    def create(self, identity: str, *, progress: Progress) -> Machine:
        if identity in self._made:
            return self._made[identity]
        self._size()  # a bad vm_size fails before anything is made
        deadline = time.monotonic() + self.entry.ready_timeout
        machines = self._list_machines(owned_only=False)
        for existing in [m for m in machines if _identity_of(m) == identity]:
            kept = self._reuse(identity, existing, deadline, progress)
            if kept is not None:
                self._made[identity] = kept
                return kept
        if self.network == "private":
            port = SSH_INTERNAL_PORT
        else:
            others = [m for m in machines if _identity_of(m) != identity]
            port = pick_port(identity, set().union(*map(_public_ports, others)))
        keys = _new_keys()
        now = datetime.datetime.now(datetime.UTC)
        made: dict[str, str] = {}  # what exists so far: "volume", "machine" -> id
        try:
            answer = self._launch(identity, keys, port, now, made, progress)
            address = self._ready(answer, port, deadline, progress)
        except BaseException:
            self._rollback(made.get("machine", ""), made.get("volume", ""), progress)
            raise
        machine = self._machine(
            identity,
            answer,
            address=address,
            port=port,
            host_key=keys.host_public,
            login_key=keys.login_private,
            expires_at=now + datetime.timedelta(minutes=self.entry.ttl_minutes),
            volume=made["volume"],
        )
        self._made[identity] = machine
        return machine

    def _reuse(
        self, identity: str, existing: dict[str, Any], deadline: float, progress: Progress
    ) -> Machine | None:
        """The existing Machine of `identity` if we can log in to it; None once it is
        replaced. A kept (`reuse-`) Machine without its key is an error, not replaced: the
        session that holds the key may still be using it."""
        machine_id = str(existing.get("id") or "")
        meta = _metadata(existing)
        login_key = self._login_keys.get(identity, "")
        host_key = str(meta.get(META_HOST_KEY) or "")
        if login_key and host_key and _public_half(login_key) == meta.get(META_LOGIN_KEY):
            progress(f"reusing the Fly Machine {machine_id} of {identity}")
            ports = sorted(_public_ports(existing))
            port = SSH_INTERNAL_PORT if self.network == "private" or not ports else ports[0]
            # Not ours to roll back: a kept Machine outlives this call, whatever happens in it.
            address = self._ready(existing, port, deadline, progress)
            return self._machine(
                identity,
                existing,
                address=address,
                port=port,
                host_key=host_key,
                login_key=login_key,
                expires_at=_parse_time(meta.get(META_KEYS[TAG_EXPIRES])),
                volume=_volume_of(existing),
            )
        if identity.startswith("reuse-"):
            raise ProvisionError(
                f"the Fly Machine {machine_id} of {identity} exists, but its login key is gone",
                hint="`rbottle cleanup --orphans` destroys it; then start the session again",
            )
        # Its login key died with the process that made it: replace it.
        progress(f"replacing the earlier Fly Machine {machine_id} of {identity}")
        self._destroy_ids(machine_id, _volume_of(existing), progress)
        return None

    def _ready(
        self, answer: Mapping[str, Any], port: int, deadline: float, progress: Progress
    ) -> str:
        """Wait for the state `started`, then for sshd's banner; the address SSH is at."""
        machine_id = str(answer["id"])
        progress(f"waiting for the Fly Machine {machine_id} to start")
        self._wait_started(machine_id, str(answer.get("instance_id") or ""), deadline)
        address = self._address(answer)
        progress(f"waiting for sshd on {address}:{port}")
        _wait_for_ssh(address, port, deadline)
        return address

    def _rollback(self, machine_id: str, volume_id: str, progress: Progress) -> None:
        progress("the Fly Machine did not come up: removing what was made")
        try:
            self._destroy_ids(machine_id, volume_id, progress)
        except Exception as exc:  # the first error is the one to report
            log.warning("cleanup after a failed create: %s", exc)

    def _machine(
        self,
        identity: str,
        answer: Mapping[str, Any],
        *,
        address: str,
        port: int,
        host_key: str,
        login_key: str,
        expires_at: datetime.datetime | None,
        volume: str,
    ) -> Machine:
        return Machine(
            provider="fly",
            machine_id=str(answer["id"]),
            identity=identity,
            address=address,
            port=port,
            user=LOGIN_USER,
            host_key=host_key,
            login_key=login_key,
            expires_at=expires_at,
            details={
                "app": self.entry.app,
                "region": str(answer.get("region") or self.region),
                "vm_size": self.entry.vm_size,
                "volume": volume,
                "image": self.image,
                "network": self.network,
            },
        )

    def renew_expiry(self, machine: Machine) -> None:
        """Move the Machine's expiry mark (metadata) to now + TTL, with each heartbeat."""
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            minutes=self.entry.ttl_minutes
        )
        key = META_KEYS[TAG_EXPIRES]
        self.api.request(
            "POST", f"/machines/{machine.machine_id}/metadata/{key}", body={"value": _iso(expires)}
        )

    def _launch(
        self,
        identity: str,
        keys: _Keys,
        port: int,
        now: datetime.datetime,
        made: dict[str, str],
        progress: Progress,
    ) -> dict[str, Any]:
        """Create the volume, then the Machine; record each id in `made` as it exists."""
        progress(f"creating a {VOLUME_GB} GB Fly volume in {self.region} for Docker's data")
        volume = self.api.request(
            "POST",
            "/volumes",
            body={
                "name": volume_name(identity),
                "region": self.region,
                "size_gb": VOLUME_GB,
                "require_unique_zone": False,
            },
        )
        made["volume"] = str(volume["id"])
        progress(f"creating a Fly Machine ({self.entry.vm_size}) in {self.region}")
        answer: dict[str, Any] = self.api.request(
            "POST",
            "/machines",
            body={
                "name": machine_name(identity),
                "region": self.region,
                "config": self.machine_config(identity, keys, port, made["volume"], now),
            },
        )
        made["machine"] = str(answer["id"])
        return answer

    def _address(self, answer: Mapping[str, Any]) -> str:
        if self.ssh_address:
            return self.ssh_address
        if self.network == "private":
            private_ip = answer.get("private_ip")
            if not private_ip:
                raise ProvisionError("Fly did not report the Machine's private address")
            return str(private_ip)
        return f"{self.entry.app}.fly.dev"

    def _wait_started(self, machine_id: str, instance_id: str, deadline: float) -> None:
        path = f"/machines/{machine_id}/wait"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProvisionError(
                    f"the Fly Machine {machine_id} did not start within "
                    f"{self.entry.ready_timeout:.0f}s",
                    hint="see `fly logs -a <app>`; raise ready_timeout if the image is large",
                )
            wait = max(1, int(min(60, remaining)))
            params: dict[str, str | int] = {"state": "started", "timeout": wait}
            if instance_id:
                params["instance_id"] = instance_id
            # 408: not started yet within `wait`; ask again until our own deadline.
            answer = self.api.request("GET", path, params=params, timeout=wait + 10, expect=(408,))
            if answer is not None:
                return
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))

    # -- destroy -------------------------------------------------------------------------

    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        volume_id = machine.details.get("volume", "")
        if not volume_id:
            found = self.api.request("GET", f"/machines/{machine.machine_id}", missing_ok=True)
            volume_id = _volume_of(found) if found else ""
        self._destroy_ids(machine.machine_id, volume_id, progress)
        self._made.pop(machine.identity, None)

    def _destroy_ids(self, machine_id: str, volume_id: str, progress: Progress) -> None:
        if machine_id:
            path = f"/machines/{machine_id}"
            try:  # a clean shutdown first; the forced delete ends it anyway
                self.api.request("POST", f"{path}/stop", body={}, missing_ok=True)
            except FlyApiError as exc:
                log.info("stopping %s: %s", machine_id, exc)
            self.api.request("DELETE", path, params={"force": "true"}, missing_ok=True)
            progress(f"destroyed the Fly Machine {machine_id}")
        if volume_id:
            self._delete_volume(volume_id)
            progress(f"destroyed the Fly volume {volume_id}")

    def _delete_volume(self, volume_id: str) -> None:
        """Delete a volume; it is refused for a moment while its Machine is going away."""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api.request("DELETE", f"/volumes/{volume_id}", missing_ok=True)
                return
            except FlyApiError as exc:
                if exc.status not in (400, 409, 412, 422) or time.monotonic() > deadline:
                    raise
            time.sleep(self.poll)

    # -- the orphan sweep ----------------------------------------------------------------

    def _list_machines(self, *, owned_only: bool) -> list[dict[str, Any]]:
        """The app's live Machines: ours only, or all of them (their ports are taken too)."""
        params = {f"metadata.{META_KEYS[TAG_OWNER]}": "true"} if owned_only else None
        found = self.api.request("GET", "/machines", params=params) or []
        live = [m for m in found if isinstance(m, dict) and m.get("state") not in _GONE_STATES]
        return [m for m in live if _identity_of(m)] if owned_only else live

    def list_owned(self) -> list[OwnedResource]:
        machines = self._list_machines(owned_only=True)
        owned = [_machine_resource(m) for m in machines]
        by_volume = {_volume_of(m): _identity_of(m) for m in machines}
        ttl = datetime.timedelta(minutes=self.entry.ttl_minutes)
        for volume in self.api.request("GET", "/volumes") or []:
            name = str(volume.get("name") or "")
            if not name.startswith(VOLUME_PREFIX) or volume.get("state") in _GONE_STATES:
                continue
            volume_id = str(volume.get("id") or "")
            created = _parse_time(volume.get("created_at"))
            attached = bool(volume.get("attached_machine_id"))
            owned.append(
                OwnedResource(
                    provider="fly",
                    kind="volume",
                    resource_id=volume_id,
                    identity=by_volume.get(volume_id) or _identity_from_volume(name),
                    created_at=created,
                    # Unattached, it serves nothing once a create could have finished.
                    expires_at=None if attached or created is None else created + ttl,
                    state=str(volume.get("state") or ""),
                )
            )
        return owned

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        for resource in resources:
            if resource.provider == "fly" and resource.kind == "machine":
                self._destroy_ids(resource.resource_id, "", progress)
        for resource in resources:
            if resource.provider == "fly" and resource.kind == "volume":
                self._destroy_ids("", resource.resource_id, progress)


def _metadata(machine: Mapping[str, Any]) -> Mapping[str, Any]:
    config = machine.get("config") or {}
    meta = config.get("metadata") or {}
    return meta if isinstance(meta, dict) else {}


def _identity_of(machine: Mapping[str, Any]) -> str:
    meta = _metadata(machine)
    if meta.get(META_KEYS[TAG_OWNER]) != "true":
        return ""
    return str(meta.get(META_KEYS[TAG_IDENTITY]) or "")


def _volume_of(machine: Mapping[str, Any]) -> str:
    volume = _metadata(machine).get(META_VOLUME)
    if volume:
        return str(volume)
    for mount in (machine.get("config") or {}).get("mounts") or []:
        if mount.get("path") == DOCKER_DATA and mount.get("volume"):
            return str(mount["volume"])
    return ""


def _machine_resource(machine: Mapping[str, Any]) -> OwnedResource:
    meta = _metadata(machine)
    return OwnedResource(
        provider="fly",
        kind="machine",
        resource_id=str(machine.get("id") or ""),
        identity=_identity_of(machine),
        created_at=_parse_time(meta.get(META_KEYS[TAG_CREATED]))
        or _parse_time(machine.get("created_at")),
        expires_at=_parse_time(meta.get(META_KEYS[TAG_EXPIRES])),
        state=str(machine.get("state") or ""),
    )
