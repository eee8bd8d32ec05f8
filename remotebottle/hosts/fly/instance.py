"""The Fly provider: one Machine (plus a volume for Docker's data) per session.

The Machine runs the image of `remotebottle/resources/fly/` (sshd on port 2222, dockerd on
the session's volume, the dead-man check) with the config `config.machine_config` builds:

- its SSH host key (ed25519): the public half is `Machine.host_key`, so the first connection
  is already verified, never trust-on-first-use;
- the login user's `authorized_keys`: the public half of a per-session ed25519 key whose
  private half stays on this machine (`Machine.login_key`; the session's local state
  keeps a copy while the Machine lives);
- the dead-man TTL: the Machine's main process exits when the heartbeat file is older than
  that, and `auto_destroy` then removes the Machine.

SSH is reached through the Fly proxy at `<app>.fly.dev` on a public port of its own for each
Machine (raw TCP, no handlers), so concurrent sessions in one app never reach each other's
Machine. The app needs a dedicated IP for that: docs/fly.md.

API reference: https://fly.io/docs/machines/api/machines-resource/ and
https://fly.io/docs/machines/api/volumes-resource/.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from remotebottle.errors import ProvisionError
from remotebottle.hosts.fly import config, pricing, teardown
from remotebottle.hosts.fly.api import FlyApi
from remotebottle.hosts.provider import (
    TAG_EXPIRES,
    TAG_OWNER,
    Machine,
    OwnedResource,
    Progress,
    Provider,
)
from remotebottle.hosts.wait import (
    after_minutes,
    deadline_after,
    iso,
    parse_iso,
    poll_until,
    remaining,
    utc_now,
    wait_for_ssh,
)
from remotebottle.manifest import FlyHost

log = logging.getLogger(__name__)


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
        self.region = entry.region or config.DEFAULT_REGION
        self.image = entry.image or config.DEFAULT_IMAGE.format(app=entry.app)
        self.network = network
        self.ssh_address = ssh_address
        self.poll = poll
        self._made: dict[str, Machine] = {}
        self._login_keys: dict[str, str] = {}

    # -- what it costs -------------------------------------------------------------------

    def guest(self) -> dict[str, Any]:
        return pricing.guest(self.entry.vm_size)

    def hourly_usd(self) -> float:
        return pricing.hourly_usd(self.entry.vm_size)

    def preflight(self) -> dict[str, str]:
        """What the user is about to pay for; local only (no API call)."""
        return pricing.preflight(self.entry, self.region, self.image)

    # -- create --------------------------------------------------------------------------

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        """The login key of a kept (`reuse`) Machine, so that `create` may log in to it."""
        self._login_keys[identity] = login_key

    def create(self, identity: str, *, progress: Progress) -> Machine:
        if identity in self._made:
            return self._made[identity]
        pricing.vm_size(self.entry.vm_size)  # a bad vm_size fails before anything is made
        deadline = deadline_after(self.entry.ready_timeout)
        machines = self._list_machines(owned_only=False)
        for existing in [m for m in machines if config.identity_of(m) == identity]:
            kept = self._reuse(identity, existing, deadline, progress)
            if kept is not None:
                self._made[identity] = kept
                return kept
        if self.network == "private":
            port = config.SSH_INTERNAL_PORT
        else:
            others = [m for m in machines if config.identity_of(m) != identity]
            port = config.pick_port(identity, set().union(*map(config.public_ports, others)))
        keys = config.new_keys()
        now = utc_now()
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
        meta = config.metadata(existing)
        login_key = self._login_keys.get(identity, "")
        host_key = str(meta.get(config.META_HOST_KEY) or "")
        if (
            login_key
            and host_key
            and config.public_half(login_key) == meta.get(config.META_LOGIN_KEY)
        ):
            progress(f"reusing the Fly Machine {machine_id} of {identity}")
            ports = sorted(config.public_ports(existing))
            port = config.SSH_INTERNAL_PORT if self.network == "private" or not ports else ports[0]
            # Not ours to roll back: a kept Machine outlives this call, whatever happens in it.
            address = self._ready(existing, port, deadline, progress)
            return self._machine(
                identity,
                existing,
                address=address,
                port=port,
                host_key=host_key,
                login_key=login_key,
                expires_at=parse_iso(meta.get(config.META_KEYS[TAG_EXPIRES])),
                volume=config.volume_of(existing),
            )
        if identity.startswith("reuse-"):
            raise ProvisionError(
                f"the Fly Machine {machine_id} of {identity} exists, but its login key is gone",
                hint="`rbottle cleanup --orphans` destroys it; then start the session again",
            )
        # Its login key died with the process that made it: replace it.
        progress(f"replacing the earlier Fly Machine {machine_id} of {identity}")
        self._destroy_ids(machine_id, config.volume_of(existing), progress)
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
        # The banner, not a TCP connect: the Fly proxy accepts before it has a Machine to
        # hand the connection to.
        wait_for_ssh(address, port, deadline=deadline, timed_out=_no_sshd(address, port))
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
            user=config.LOGIN_USER,
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
        expires = iso(after_minutes(self.entry.ttl_minutes))
        key = config.META_KEYS[TAG_EXPIRES]
        self.api.request(
            "POST", f"/machines/{machine.machine_id}/metadata/{key}", body={"value": expires}
        )

    def _launch(
        self,
        identity: str,
        keys: config.Keys,
        port: int,
        now: datetime.datetime,
        made: dict[str, str],
        progress: Progress,
    ) -> dict[str, Any]:
        """Create the volume, then the Machine; record each id in `made` as it exists."""
        progress(f"creating a {pricing.VOLUME_GB} GB Fly volume in {self.region} for Docker's data")
        volume = self.api.request(
            "POST",
            "/volumes",
            body={
                "name": config.volume_name(identity),
                "region": self.region,
                "size_gb": pricing.VOLUME_GB,
                "require_unique_zone": False,
            },
        )
        made["volume"] = str(volume["id"])
        progress(f"creating a Fly Machine ({self.entry.vm_size}) in {self.region}")
        answer: dict[str, Any] = self.api.request(
            "POST",
            "/machines",
            body={
                "name": config.machine_name(identity),
                "region": self.region,
                "config": config.machine_config(
                    identity=identity,
                    keys=keys,
                    image=self.image,
                    guest=self.guest(),
                    ttl_minutes=self.entry.ttl_minutes,
                    # No public service on the private network: SSH goes to the 6PN address.
                    services=[] if self.network == "private" else config.ssh_services(port),
                    volume_id=made["volume"],
                    now=now,
                ),
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

        def started() -> bool | None:
            wait = max(1, int(min(60, remaining(deadline))))
            params: dict[str, str | int] = {"state": "started", "timeout": wait}
            if instance_id:
                params["instance_id"] = instance_id
            # 408: not started yet within `wait`; ask again until our own deadline.
            answer = self.api.request("GET", path, params=params, timeout=wait + 10, expect=(408,))
            return True if answer is not None else None

        poll_until(
            started,
            deadline=deadline,
            interval=self.poll,
            timed_out=lambda: ProvisionError(
                f"the Fly Machine {machine_id} did not start within "
                f"{self.entry.ready_timeout:.0f}s",
                hint="see `fly logs -a <app>`; raise ready_timeout if the image is large",
            ),
        )

    # -- destroy -------------------------------------------------------------------------

    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        volume_id = machine.details.get("volume", "")
        if not volume_id:
            found = self.api.request("GET", f"/machines/{machine.machine_id}", missing_ok=True)
            volume_id = config.volume_of(found) if found else ""
        self._destroy_ids(machine.machine_id, volume_id, progress)
        self._made.pop(machine.identity, None)

    def _destroy_ids(self, machine_id: str, volume_id: str, progress: Progress) -> None:
        teardown.destroy(self.api, machine_id, volume_id, progress, poll=self.poll)

    # -- the orphan sweep ----------------------------------------------------------------

    def _list_machines(self, *, owned_only: bool) -> list[dict[str, Any]]:
        """The app's live Machines: ours only, or all of them (their ports are taken too)."""
        params = {f"metadata.{config.META_KEYS[TAG_OWNER]}": "true"} if owned_only else None
        found = self.api.request("GET", "/machines", params=params) or []
        live = [
            m for m in found if isinstance(m, dict) and m.get("state") not in config.GONE_STATES
        ]
        return [m for m in live if config.identity_of(m)] if owned_only else live

    def list_owned(self) -> list[OwnedResource]:
        machines = self._list_machines(owned_only=True)
        return teardown.owned(self.api, machines, self.entry.ttl_minutes)

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        for resource in resources:
            if resource.provider == "fly" and resource.kind == "machine":
                self._destroy_ids(resource.resource_id, "", progress)
        for resource in resources:
            if resource.provider == "fly" and resource.kind == "volume":
                self._destroy_ids("", resource.resource_id, progress)


def _no_sshd(address: str, port: int) -> Callable[[str], ProvisionError]:
    def error(last: str) -> ProvisionError:
        return ProvisionError(
            f"the Fly Machine's sshd did not answer on {address}:{port} ({last})",
            hint="the app needs a dedicated IPv4 or an IPv6 for raw TCP: see docs/fly.md",
        )

    return error
