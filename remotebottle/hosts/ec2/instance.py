"""The EC2 provider: one instance per session, waited for, and destroyed with everything
made for it.

For session `<identity>` the provider imports a fresh ed25519 key pair `rbottle-<identity>`
(the private half stays on this machine: in memory, and in the session's local state
while the VM lives), creates a security group `rbottle-<identity>` that
lets TCP 22 in from the caller's public address only, and launches an instance as
`bootstrap.launch_request` describes it (Debian 13, Docker and the dead-man timer from
user-data, IMDSv2 only). Then it waits for the host key on the instance's console (read
over the authenticated EC2 API, never learned from the first SSH connection) and for
sshd's banner. A failure part-way destroys what was made (`teardown`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

from remotebottle.errors import ProvisionError, RemoteBottleError
from remotebottle.hosts.ec2 import bootstrap, pricing, teardown
from remotebottle.hosts.ec2.api import Ec2Api, tag_map
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
from remotebottle.hosts.wait import (
    after_minutes,
    deadline_after,
    iso,
    parse_iso,
    poll_until,
    ssh_banner,
    utc_now,
)
from remotebottle.manifest import Ec2Host

SSH_PORT = 22

ConsoleReader = Callable[[str], str]
Reachable = Callable[[str, int], bool]


class Ec2Provider(Provider):
    """VMs on EC2 for one `hosts` entry with `provider: ec2`.

    Args:
        entry: the hosts entry.
        caller_cidr: the address range SSH is admitted from; default: this machine's
            public address from checkip.amazonaws.com, learned at `create`.
        console_reader: instance id -> console text; default: GetConsoleOutput.
        reachable: (address, port) -> whether SSH answers; default: an SSH banner probe.
        poll_interval: seconds between polls while waiting.
        destroy_timeout: how long `destroy` waits for termination and for the security
            group to be released.
    """

    name = "ec2"

    def __init__(
        self,
        entry: Ec2Host,
        *,
        caller_cidr: str | None = None,
        console_reader: ConsoleReader | None = None,
        reachable: Reachable | None = None,
        poll_interval: float = 5.0,
        destroy_timeout: float = 600.0,
    ) -> None:
        self.entry = entry
        self.api = Ec2Api(entry.profile, entry.region)
        self._caller_cidr = caller_cidr
        self._console = console_reader or self.api.console_output
        self._reachable = reachable or ssh_banner
        self._poll = poll_interval
        self._destroy_timeout = destroy_timeout
        # Login keys of the sessions this provider made (the session's state dir keeps a copy).
        self._login_keys: dict[str, str] = {}

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        """Hand back the login key of an existing instance of `identity` (OpenSSH PEM text,
        e.g. kept by the caller for a `reuse` VM), so that `create` may reuse it."""
        self._login_keys[identity] = login_key

    def preflight(self) -> dict[str, str]:
        """What the user is about to pay for; local only (no AWS call)."""
        return pricing.preflight(self.entry, self.api.region)

    # -- create ------------------------------------------------------------------------

    def create(self, identity: str, *, progress: Progress) -> Machine:
        """Create (or find) the instance of `identity`, wait for its host key and SSH."""
        deadline = deadline_after(self.entry.ready_timeout)
        existing = [
            i for i in self.api.instances(identity) if i["State"]["Name"] in ("pending", "running")
        ]
        if existing:
            return self._reuse(identity, existing[0], deadline, progress)
        made = False
        try:
            e = self.entry
            arch = self.api.architecture(e.instance_type)
            image = self.api.image(e.ami, arch, e.instance_type, progress)
            vpc_id, subnet_id = self.api.network(e.subnet_id)
            cidr = self._caller_cidr or bootstrap.public_cidr()
            self._teardown_identity(identity, progress)  # leftovers of an earlier attempt
            made = True
            created = utc_now()
            expires = created + datetime.timedelta(minutes=e.ttl_minutes)
            tags = _tags(identity, created, expires)
            self._import_key(identity, tags, progress)
            group_id = self._security_group(identity, vpc_id, cidr, tags, progress)
            request = bootstrap.launch_request(e, identity, image, subnet_id, group_id, tags)
            instance = self._run(request, progress)
            return self._wait_ready(identity, instance["InstanceId"], deadline, progress)
        except BaseException as exc:
            if made:
                self._rollback(identity, exc, progress)
            raise

    def _reuse(
        self, identity: str, instance: dict[str, Any], deadline: float, progress: Progress
    ) -> Machine:
        iid = instance["InstanceId"]
        if identity not in self._login_keys:
            raise ProvisionError(
                f"the EC2 instance {iid} of session {identity} exists, but its login key"
                " (kept by the session that made it) is gone",
                hint="`rbottle cleanup --orphans` destroys it; then start the session again",
            )
        progress(f"ec2: reusing instance {iid} of {identity}")
        # Not ours to roll back: a kept VM outlives this call, whatever happens in it.
        return self._wait_ready(identity, iid, deadline, progress)

    def _rollback(self, identity: str, exc: BaseException, progress: Progress) -> None:
        """Destroy what `create` made; a failed teardown is added to the error's hint."""
        progress(f"ec2: launch failed, removing what was made for {identity}")
        try:
            self._teardown_identity(identity, progress)
        except RemoteBottleError as leak:
            progress(f"ec2: {leak.message}; {leak.hint}")
            if isinstance(exc, RemoteBottleError):
                exc.hint = f"{leak.message}; {leak.hint}"
        self._login_keys.pop(identity, None)

    def _import_key(self, identity: str, tags: list[dict[str, str]], progress: Progress) -> None:
        """A fresh ed25519 key pair: the public half to EC2, the private half kept here."""
        from remotebottle.sshkeys import new_ed25519

        private, public = new_ed25519()
        progress(f"ec2: importing key pair rbottle-{identity}")
        self.api.call(
            "import_key_pair",
            KeyName=f"rbottle-{identity}",
            PublicKeyMaterial=f"{public} rbottle-{identity}".encode(),
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}],
        )
        self._login_keys[identity] = private

    def _security_group(
        self, identity: str, vpc_id: str, cidr: str, tags: list[dict[str, str]], progress: Progress
    ) -> str:
        progress(f"ec2: creating security group rbottle-{identity} (SSH from {cidr} only)")
        group_id = str(
            self.api.call(
                "create_security_group",
                GroupName=f"rbottle-{identity}",
                Description=f"rbottle session {identity}: SSH from the caller only",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
            )["GroupId"]
        )
        ranges = "Ipv6Ranges" if ":" in cidr else "IpRanges"
        cidr_key = "CidrIpv6" if ":" in cidr else "CidrIp"
        self.api.call(
            "authorize_security_group_ingress",
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": SSH_PORT,
                    "ToPort": SSH_PORT,
                    ranges: [{cidr_key: cidr, "Description": "rbottle client"}],
                }
            ],
        )
        return group_id

    def _run(self, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
        progress(
            f"ec2: launching {request['InstanceType']} from {request['ImageId']}"
            f" in {self.api.region}"
        )
        reservation = self.api.call("run_instances", **request)
        instance: dict[str, Any] = reservation["Instances"][0]
        progress(f"ec2: instance {instance['InstanceId']} is {instance['State']['Name']}")
        return instance

    # -- waiting -----------------------------------------------------------------------

    def _wait_ready(self, identity: str, iid: str, deadline: float, progress: Progress) -> Machine:
        """Poll until the console shows the host key, then until SSH answers."""

        def booted() -> tuple[dict[str, Any], str, str] | None:
            instance = self.api.instance(iid) or {"State": {"Name": "terminated"}}
            state = instance["State"]["Name"]
            if state not in ("pending", "running"):
                reason = instance.get("StateReason", {}).get("Message", "")
                raise ProvisionError(
                    f"the EC2 instance {iid} is {state} before it was ready"
                    + (f": {reason}" if reason else ""),
                    hint="spot capacity may have been reclaimed; try again, or spot: false",
                )
            address = str(instance.get("PublicIpAddress") or "")
            host_key = (
                bootstrap.host_key_from_console(self._console(iid)) if state == "running" else None
            )
            return (instance, address, host_key) if address and host_key else None

        progress(f"ec2: waiting for {iid} to boot and print its SSH host key")
        instance, address, host_key = poll_until(
            booted,
            deadline=deadline,
            interval=self._poll,
            timed_out=lambda: self._not_ready(f"{iid} printed no SSH host key"),
        )
        progress(f"ec2: waiting for SSH on {address}")
        poll_until(
            lambda: self._reachable(address, SSH_PORT) or None,
            deadline=deadline,
            interval=self._poll,
            timed_out=lambda: self._not_ready(f"SSH on {iid} ({address}) does not answer"),
        )
        tags = tag_map(instance)
        return Machine(
            provider="ec2",
            machine_id=iid,
            identity=identity,
            address=address,
            port=SSH_PORT,
            user=tags.get(bootstrap.TAG_LOGIN_USER, "admin"),
            host_key=host_key,
            login_key=self._login_keys[identity],
            expires_at=parse_iso(tags.get(TAG_EXPIRES)),
            details={
                "region": self.api.region,
                "instance_type": str(instance.get("InstanceType", self.entry.instance_type)),
                "ami": str(instance.get("ImageId", "")),
                "market": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
                "security_group": f"rbottle-{identity}",
                "key_pair": f"rbottle-{identity}",
            },
        )

    def _not_ready(self, what: str) -> ProvisionError:
        return ProvisionError(
            f"{what} within {self.entry.ready_timeout:.0f}s",
            hint="raise `ready_timeout` in the hosts entry; the EC2 console's"
            " system log shows how far boot got",
        )

    # -- destroy -----------------------------------------------------------------------

    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        """Terminate the instance, then delete its security group and key pair. Idempotent."""
        self._teardown_identity(machine.identity, progress, also=[machine.machine_id])
        self._login_keys.pop(machine.identity, None)

    def _teardown_identity(
        self, identity: str, progress: Progress, also: Iterable[str] = ()
    ) -> None:
        teardown.destroy_identity(
            self.api, identity, progress, also=also, poll=self._poll, timeout=self._destroy_timeout
        )

    # -- orphans -----------------------------------------------------------------------

    def list_owned(self) -> list[OwnedResource]:
        """Every instance (not terminated), security group and key pair tagged as ours."""
        return teardown.owned(self.api)

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        """Destroy resources from `list_owned`: instances first, then groups and key pairs."""

        def ids(kind: str) -> list[str]:
            return [r.resource_id for r in resources if r.provider == "ec2" and r.kind == kind]

        teardown.destroy(
            self.api,
            ids("instance"),
            ids("security-group"),
            ids("key-pair"),
            progress,
            poll=self._poll,
            timeout=self._destroy_timeout,
        )

    def renew_expiry(self, machine: Machine) -> None:
        """Move the instance's expires-at tag to now + TTL (call it with the heartbeat, so
        `cleanup --orphans` does not count a live session as expired)."""
        self.api.call(
            "create_tags",
            Resources=[machine.machine_id],
            Tags=[{"Key": TAG_EXPIRES, "Value": iso(after_minutes(self.entry.ttl_minutes))}],
        )


def _tags(
    identity: str, created: datetime.datetime, expires: datetime.datetime
) -> list[dict[str, str]]:
    return [
        {"Key": "Name", "Value": f"rbottle-{identity}"},
        {"Key": TAG_OWNER, "Value": "1"},
        {"Key": TAG_IDENTITY, "Value": identity},
        {"Key": TAG_CREATED, "Value": iso(created)},
        {"Key": TAG_EXPIRES, "Value": iso(expires)},
    ]
