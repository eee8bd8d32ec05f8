"""What a session's Fly Machine is made of, and how ours are told apart from the app's others.

Everything that makes a Machine ours is generated before it exists and delivered through
the machine config's `files`, where the image's init script (`resources/fly/rbottle-fly-init`)
expects it: its SSH host key, the login user's `authorized_keys`, the dead-man TTL. The
provider's tags become Machine metadata (Fly's keys are plain identifiers), together with
the public halves of both keys, so that a kept (`reuse`) Machine is found again by a later
session that holds its login key.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from remotebottle.errors import ProvisionError
from remotebottle.hosts.provider import (
    TAG_CREATED,
    TAG_EXPIRES,
    TAG_IDENTITY,
    TAG_OWNER,
    OwnedResource,
)
from remotebottle.hosts.wait import iso, parse_iso
from remotebottle.sshkeys import new_ed25519

DEFAULT_REGION = "iad"
DEFAULT_IMAGE = "registry.fly.io/{app}:rbottle"
LOGIN_USER = "rbottle"
SSH_INTERNAL_PORT = 2222  # Fly's own port 22 is taken on the private interface
SSH_PORT_RANGE = (20000, 30000)  # one public port per Machine, chosen from the identity
VOLUME_PREFIX = "rb_"
DOCKER_DATA = "/data"  # the volume; dockerd keeps its data-root in /data/docker
GONE_STATES = {"destroying", "destroyed"}  # of a Machine or volume: as good as not there

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
class Keys:
    """The Machine's SSH host key and the session's login key, both made here."""

    host_private: str
    host_public: str
    login_private: str
    login_public: str


def new_keys() -> Keys:
    host_private, host_public = new_ed25519()
    login_private, login_public = new_ed25519()
    return Keys(host_private, host_public, login_private, login_public)


def public_half(private_key: str) -> str:
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


def machine_config(
    *,
    identity: str,
    keys: Keys,
    image: str,
    guest: dict[str, Any],
    ttl_minutes: int,
    services: list[dict[str, Any]],
    volume_id: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The `config` of session `identity`'s Machine (Machines API: create a Machine)."""
    expires = now + datetime.timedelta(minutes=ttl_minutes)
    return {
        "image": image,
        "guest": guest,
        "auto_destroy": True,
        "restart": {"policy": "no"},
        "metadata": {
            META_KEYS[TAG_OWNER]: "true",
            META_KEYS[TAG_IDENTITY]: identity,
            META_KEYS[TAG_CREATED]: iso(now),
            META_KEYS[TAG_EXPIRES]: iso(expires),
            META_VOLUME: volume_id,
            META_HOST_KEY: keys.host_public,
            META_LOGIN_KEY: keys.login_public,
        },
        "services": services,
        "mounts": [{"volume": volume_id, "path": DOCKER_DATA}],
        "files": [
            {"guest_path": HOST_KEY_PATH, "raw_value": _b64(keys.host_private)},
            {"guest_path": AUTHORIZED_KEYS_PATH, "raw_value": _b64(keys.login_public + "\n")},
            {"guest_path": TTL_PATH, "raw_value": _b64(f"{ttl_minutes}\n")},
        ],
    }


def ssh_services(port: int) -> list[dict[str, Any]]:
    """Raw TCP (no handlers) from public `port` to sshd."""
    return [
        {
            "protocol": "tcp",
            "internal_port": SSH_INTERNAL_PORT,
            "ports": [{"port": port, "handlers": []}],
            "autostart": False,
            "autostop": "off",
        }
    ]


def machine_name(identity: str) -> str:
    return "rbottle-" + identity.replace("_", "-")


def volume_name(identity: str) -> str:
    """`rb_<agent>_<suffix>`, within Fly's 30 characters (lowercase, digits, underscores)."""
    agent, _, suffix = identity.rpartition("-")
    agent = agent.replace("-", "_")[: 30 - len(VOLUME_PREFIX) - 1 - len(suffix)]
    return f"{VOLUME_PREFIX}{agent}_{suffix}"


def identity_from_volume(name: str) -> str:
    agent, _, suffix = name.removeprefix(VOLUME_PREFIX).rpartition("_")
    return f"{agent}-{suffix}" if agent else name


def public_ports(machine: Mapping[str, Any]) -> set[int]:
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


# -- reading ours back ---------------------------------------------------------------------


def metadata(machine: Mapping[str, Any]) -> Mapping[str, Any]:
    config = machine.get("config") or {}
    meta = config.get("metadata") or {}
    return meta if isinstance(meta, dict) else {}


def identity_of(machine: Mapping[str, Any]) -> str:
    """The session identity of a Machine we made, or "" for any other."""
    meta = metadata(machine)
    if meta.get(META_KEYS[TAG_OWNER]) != "true":
        return ""
    return str(meta.get(META_KEYS[TAG_IDENTITY]) or "")


def volume_of(machine: Mapping[str, Any]) -> str:
    volume = metadata(machine).get(META_VOLUME)
    if volume:
        return str(volume)
    for mount in (machine.get("config") or {}).get("mounts") or []:
        if mount.get("path") == DOCKER_DATA and mount.get("volume"):
            return str(mount["volume"])
    return ""


def machine_resource(machine: Mapping[str, Any]) -> OwnedResource:
    meta = metadata(machine)
    return OwnedResource(
        provider="fly",
        kind="machine",
        resource_id=str(machine.get("id") or ""),
        identity=identity_of(machine),
        created_at=parse_iso(meta.get(META_KEYS[TAG_CREATED]))
        or parse_iso(machine.get("created_at")),
        expires_at=parse_iso(meta.get(META_KEYS[TAG_EXPIRES])),
        state=str(machine.get("state") or ""),
    )
