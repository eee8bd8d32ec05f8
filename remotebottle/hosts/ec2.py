"""EC2: one VM per session, made with boto3 and destroyed with everything made for it.

For session `<identity>` the provider imports a fresh ed25519 key pair `rbottle-<identity>`
(the private half stays in memory), creates a security group `rbottle-<identity>` that
lets TCP 22 in from the caller's public address only, and launches a Debian 12 instance
whose user-data (`cloud-init/user-data.yaml`) installs Docker and arms the dead-man timer;
a power-off from inside terminates the instance. IMDSv2 is required with a hop limit of
1, so containers on the VM cannot reach the instance's credentials endpoint.

The host key comes from the instance's console output (cloud-init prints it there) over
the authenticated EC2 API, never from the first SSH connection. Every resource carries
the `provider.TAG_*` tags; every lookup filters on them. Credentials and region come from
boto3's standard chain (environment, profiles, SSO, instance roles); boto3 honours
`AWS_ENDPOINT_URL`, which the tests point at a moto server on loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from remotebottle.errors import HostError, ProvisionError, RemoteBottleError, TeardownError
from remotebottle.hosts import pricing
from remotebottle.hosts.cloud_init import host_key_from_console, render_user_data
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
from remotebottle.manifest import Ec2Host

DEBIAN_OWNER = "136693071363"  # Debian's cloud team account (wiki.debian.org/Cloud/AmazonEC2Image)
CHECKIP_URL = "https://checkip.amazonaws.com"
ROOT_VOLUME_GB = 20
SSH_PORT = 22
TAG_LOGIN_USER = "io.remotebottle.login-user"  # instance only: whom to log in as
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
IAM_HINT = "the AWS identity needs the EC2 permissions listed in docs/ec2.md"
CLEANUP_HINT = "run `rbottle cleanup --orphans`, or delete them in the EC2 console"

ConsoleReader = Callable[[str], str]
Reachable = Callable[[str, int], bool]


class Ec2ApiError(ProvisionError):
    """An EC2 API call failed; `code` is AWS's error code ("" for transport errors)."""

    def __init__(self, message: str, hint: str = "", code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code


def public_cidr(url: str = CHECKIP_URL, timeout: float = 10.0) -> str:
    """This machine's public address as a /32 (or /128), as an AWS service sees it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URL)
            text = resp.read(64).decode().strip()
        address = ipaddress.ip_address(text)
    except (OSError, ValueError) as exc:
        raise HostError(
            f"cannot learn this machine's public address from {url}: {exc}",
            hint="check the network; the security group admits SSH from that address only",
        ) from None
    return f"{address}/{address.max_prefixlen}"


def ssh_banner(address: str, port: int, timeout: float = 5.0) -> bool:
    """Whether an SSH server answers on address:port with its `SSH-` banner."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _tag_map(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


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
        self._caller_cidr = caller_cidr
        self._console_reader = console_reader
        self._reachable = reachable or ssh_banner
        self._poll = poll_interval
        self._destroy_timeout = destroy_timeout
        self._client: Any = None
        self._region = ""
        # Login keys of the sessions this provider made: the only copy, memory only.
        self._login_keys: dict[str, str] = {}

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        """Hand back the login key of an existing instance of `identity` (OpenSSH PEM text,
        e.g. kept by the caller for a `reuse` VM), so that `create` may reuse it."""
        self._login_keys[identity] = login_key

    # -- the AWS client ----------------------------------------------------------------

    def _ec2(self) -> Any:
        if self._client is not None:
            return self._client
        import boto3
        import botocore.config
        import botocore.exceptions

        try:
            session = boto3.Session(profile_name=self.entry.profile, region_name=self.entry.region)
        except botocore.exceptions.ProfileNotFound:
            raise HostError(
                f"the AWS profile {self.entry.profile!r} is not configured",
                hint=f"`aws configure --profile {self.entry.profile}`, or remove `profile`"
                " from the hosts entry",
            ) from None
        if not session.region_name:
            raise HostError(
                "no AWS region for the ec2 host",
                hint="set `region` in the hosts entry, or AWS_REGION / AWS_DEFAULT_REGION,"
                " or `region` in the AWS profile",
            )
        if session.get_credentials() is None:
            raise HostError(
                "no AWS credentials found",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or"
                " `profile` in the hosts entry (`aws configure` / `aws sso login`)",
            )
        config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": 6},
            connect_timeout=15,
            read_timeout=60,
            user_agent_extra="remotebottle",
        )
        self._region = str(session.region_name)
        self._client = session.client("ec2", config=config)
        return self._client

    def _call(self, op: str, ok: Iterable[str] = (), **kwargs: Any) -> dict[str, Any]:
        """One EC2 API call with its errors translated; an error code in `ok` gives {}."""
        import botocore.exceptions

        try:
            result: dict[str, Any] = getattr(self._ec2(), op)(**kwargs)
            return result
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            code, text = str(err.get("Code", "")), str(err.get("Message", ""))
            if code in ok:
                return {}
            hint = ""
            if code in ("UnauthorizedOperation", "AccessDenied", "OptInRequired"):
                hint = IAM_HINT
            elif code in ("AuthFailure", "InvalidClientTokenId", "ExpiredToken", "RequestExpired"):
                hint = "refresh the AWS credentials (`aws sso login`, new access keys)"
            elif "Capacity" in code or code == "SpotMaxPriceTooLow":
                hint = "try another instance_type, region or subnet, or spot: false"
            raise Ec2ApiError(f"EC2 {op} failed: {code}: {text}", hint, code) from None
        except botocore.exceptions.NoCredentialsError:
            raise HostError(
                "no AWS credentials found",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise Ec2ApiError(
                f"EC2 {op} failed: {exc}", hint="check the network and AWS_ENDPOINT_URL"
            ) from None

    # -- preflight ---------------------------------------------------------------------

    def preflight(self) -> dict[str, str]:
        """What the user is about to pay for; local only (no AWS call)."""
        e = self.entry
        price = pricing.hourly_price(e.instance_type)
        if price != "unknown":
            price = f"{price} ({pricing.PRICE_SOURCE})"
        if e.spot:
            price = f"spot: usually below on-demand {price}"
        return {
            "provider": "ec2",
            "instance_type": e.instance_type,
            "region": e.region or self._region or "from the AWS profile / AWS_REGION",
            "ttl": f"powers off after {e.ttl_minutes} min without a heartbeat",
            "ami": e.ami or "newest Debian 12 (resolved at launch)",
            "market": "spot" if e.spot else "on-demand",
            "hourly_price": price,
        }

    # -- create ------------------------------------------------------------------------

    def create(self, identity: str, *, progress: Progress) -> Machine:
        """Create (or find) the instance of `identity`, wait for its host key and SSH."""
        deadline = time.monotonic() + self.entry.ready_timeout
        existing = [
            i for i in self._instances(identity) if i["State"]["Name"] in ("pending", "running")
        ]
        if existing:
            return self._reuse(identity, existing[0], deadline, progress)
        made = False
        try:
            arch = self._architecture()
            image = self._image(arch, progress)
            vpc_id, subnet_id = self._network()
            cidr = self._caller_cidr or public_cidr()
            self._teardown_identity(identity, progress)  # leftovers of an earlier attempt
            made = True
            created = _now()
            expires = created + datetime.timedelta(minutes=self.entry.ttl_minutes)
            tags = self._tags(identity, created, expires)
            self._import_key(identity, tags, progress)
            group_id = self._security_group(identity, vpc_id, cidr, tags, progress)
            instance = self._run(identity, image, subnet_id, group_id, tags, progress)
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
                " (kept in memory only) is gone",
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

    def _architecture(self) -> str:
        itype = self.entry.instance_type
        try:
            found = self._call("describe_instance_types", InstanceTypes=[itype])
        except Ec2ApiError as exc:
            if exc.code.startswith("InvalidInstanceType"):
                raise ProvisionError(
                    f"EC2 has no instance type {itype!r} in {self._region}",
                    hint="pick another `instance_type` (e.g. t3.medium, t4g.medium)",
                ) from None
            return pricing.guess_architecture(itype)  # not allowed to ask: Graviton by name
        archs = found["InstanceTypes"][0]["ProcessorInfo"]["SupportedArchitectures"]
        return "x86_64" if "x86_64" in archs else "arm64"

    def _image(self, arch: str, progress: Progress) -> dict[str, Any]:
        if self.entry.ami:
            images = self._call("describe_images", ImageIds=[self.entry.ami])["Images"]
            if not images:
                raise ProvisionError(f"the AMI {self.entry.ami} does not exist in {self._region}")
            image: dict[str, Any] = images[0]
            if image.get("Architecture") != arch:
                raise ProvisionError(
                    f"the AMI {self.entry.ami} is {image.get('Architecture')}, but"
                    f" {self.entry.instance_type} needs {arch}",
                    hint="pick an AMI and an instance type of the same architecture",
                )
            return image
        progress(f"ec2: looking up the newest Debian 12 {arch} AMI in {self._region}")
        name = f"debian-12-{'arm64' if arch == 'arm64' else 'amd64'}-*"
        images = self._call(
            "describe_images",
            Owners=[DEBIAN_OWNER],
            Filters=[
                {"Name": "name", "Values": [name]},
                {"Name": "architecture", "Values": [arch]},
                {"Name": "state", "Values": ["available"]},
            ],
        )["Images"]
        if not images:
            raise ProvisionError(
                f"no Debian 12 {arch} AMI found in {self._region}",
                hint="set `ami` in the hosts entry",
            )
        newest: dict[str, Any] = max(images, key=lambda i: str(i.get("CreationDate", "")))
        return newest

    def _network(self) -> tuple[str, str | None]:
        """(VPC id, subnet id or None for the default VPC's default subnet)."""
        if self.entry.subnet_id:
            subnets = self._call(
                "describe_subnets",
                ok=("InvalidSubnetID.NotFound",),
                SubnetIds=[self.entry.subnet_id],
            ).get("Subnets", [])
            if not subnets:
                raise ProvisionError(
                    f"the subnet {self.entry.subnet_id} does not exist in {self._region}",
                    hint="fix `subnet_id` in the hosts entry, or remove it to use the default VPC",
                )
            return str(subnets[0]["VpcId"]), self.entry.subnet_id
        vpcs = self._call("describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}])
        if not vpcs["Vpcs"]:
            raise ProvisionError(
                f"{self._region} has no default VPC",
                hint="set `subnet_id` in the hosts entry to a subnet with internet access",
            )
        return str(vpcs["Vpcs"][0]["VpcId"]), None

    def _tags(
        self, identity: str, created: datetime.datetime, expires: datetime.datetime
    ) -> list[dict[str, str]]:
        return [
            {"Key": "Name", "Value": f"rbottle-{identity}"},
            {"Key": TAG_OWNER, "Value": "1"},
            {"Key": TAG_IDENTITY, "Value": identity},
            {"Key": TAG_CREATED, "Value": _iso(created)},
            {"Key": TAG_EXPIRES, "Value": _iso(expires)},
        ]

    def _import_key(self, identity: str, tags: list[dict[str, str]], progress: Progress) -> None:
        """A fresh ed25519 key pair: the public half to EC2, the private half kept here."""
        from remotebottle.sshkeys import new_ed25519

        private, public = new_ed25519()
        progress(f"ec2: importing key pair rbottle-{identity}")
        self._call(
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
            self._call(
                "create_security_group",
                GroupName=f"rbottle-{identity}",
                Description=f"rbottle session {identity}: SSH from the caller only",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
            )["GroupId"]
        )
        ranges = "Ipv6Ranges" if ":" in cidr else "IpRanges"
        cidr_key = "CidrIpv6" if ":" in cidr else "CidrIp"
        self._call(
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

    def _run(
        self,
        identity: str,
        image: dict[str, Any],
        subnet_id: str | None,
        group_id: str,
        tags: list[dict[str, str]],
        progress: Progress,
    ) -> dict[str, Any]:
        nic: dict[str, Any] = {
            "DeviceIndex": 0,
            "AssociatePublicIpAddress": True,
            "Groups": [group_id],
            "DeleteOnTermination": True,
        }
        if subnet_id:
            nic["SubnetId"] = subnet_id
        kinds = ["instance", "volume", "network-interface"]
        extra: dict[str, Any] = {}
        if self.entry.spot:
            kinds.append("spot-instances-request")
            extra["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        root = image.get("RootDeviceName") or "/dev/xvda"
        # Never smaller than the image's own root snapshot (a custom `ami` may be larger).
        sizes = [
            int(m.get("Ebs", {}).get("VolumeSize") or 0)
            for m in image.get("BlockDeviceMappings", [])
            if m.get("DeviceName") == root
        ]
        size = max([ROOT_VOLUME_GB, *sizes])
        user = _login_user(image)
        login = [{"Key": TAG_LOGIN_USER, "Value": user}]
        progress(
            f"ec2: launching {self.entry.instance_type} from {image['ImageId']} in {self._region}"
        )
        reservation = self._call(
            "run_instances",
            ImageId=image["ImageId"],
            InstanceType=self.entry.instance_type,
            MinCount=1,
            MaxCount=1,
            KeyName=f"rbottle-{identity}",
            NetworkInterfaces=[nic],
            UserData=render_user_data(self.entry.ttl_minutes, user),
            InstanceInitiatedShutdownBehavior="terminate",
            MetadataOptions={
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
                "HttpEndpoint": "enabled",
            },
            BlockDeviceMappings=[
                {
                    "DeviceName": root,
                    "Ebs": {
                        "VolumeSize": size,
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                    },
                }
            ],
            TagSpecifications=[
                {"ResourceType": k, "Tags": tags + (login if k == "instance" else [])}
                for k in kinds
            ],
            **extra,
        )
        instance: dict[str, Any] = reservation["Instances"][0]
        progress(f"ec2: instance {instance['InstanceId']} is {instance['State']['Name']}")
        return instance

    # -- waiting -----------------------------------------------------------------------

    def _wait_ready(self, identity: str, iid: str, deadline: float, progress: Progress) -> Machine:
        """Poll until the console shows the host key, then until SSH answers."""
        progress(f"ec2: waiting for {iid} to boot and print its SSH host key")
        while True:
            instance = self._instance(iid) or {"State": {"Name": "terminated"}}
            state = instance["State"]["Name"]
            if state not in ("pending", "running"):
                reason = instance.get("StateReason", {}).get("Message", "")
                raise ProvisionError(
                    f"the EC2 instance {iid} is {state} before it was ready"
                    + (f": {reason}" if reason else ""),
                    hint="spot capacity may have been reclaimed; try again, or spot: false",
                )
            address = str(instance.get("PublicIpAddress") or "")
            host_key = host_key_from_console(self._console(iid)) if state == "running" else None
            if address and host_key:
                break
            self._sleep_or_timeout(deadline, f"{iid} printed no SSH host key")
        progress(f"ec2: waiting for SSH on {address}")
        while not self._reachable(address, SSH_PORT):
            self._sleep_or_timeout(deadline, f"SSH on {iid} ({address}) does not answer")
        tags = _tag_map(instance)
        return Machine(
            provider="ec2",
            machine_id=iid,
            identity=identity,
            address=address,
            port=SSH_PORT,
            user=tags.get(TAG_LOGIN_USER, "admin"),
            host_key=host_key,
            login_key=self._login_keys[identity],
            expires_at=_parse_iso(tags.get(TAG_EXPIRES)),
            details={
                "region": self._region,
                "instance_type": str(instance.get("InstanceType", self.entry.instance_type)),
                "ami": str(instance.get("ImageId", "")),
                "market": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
                "security_group": f"rbottle-{identity}",
                "key_pair": f"rbottle-{identity}",
            },
        )

    def _sleep_or_timeout(self, deadline: float, what: str) -> None:
        if time.monotonic() + self._poll > deadline:
            raise ProvisionError(
                f"{what} within {self.entry.ready_timeout:.0f}s",
                hint="raise `ready_timeout` in the hosts entry; the EC2 console's"
                " system log shows how far boot got",
            )
        time.sleep(self._poll)

    def _console(self, iid: str) -> str:
        if self._console_reader is not None:
            return self._console_reader(iid)
        try:
            out = self._call("get_console_output", InstanceId=iid, Latest=True)
        except Ec2ApiError as exc:
            if exc.code != "UnsupportedOperation":  # Latest=True needs a Nitro instance
                raise
            out = self._call("get_console_output", InstanceId=iid)
        return str(out.get("Output") or "")

    # -- lookups -----------------------------------------------------------------------

    def _instance(self, iid: str) -> dict[str, Any] | None:
        found = self._call(
            "describe_instances", ok=("InvalidInstanceID.NotFound",), InstanceIds=[iid]
        )
        for reservation in found.get("Reservations", []):
            for instance in reservation["Instances"]:
                return dict(instance)
        return None

    def _instances(self, identity: str | None) -> list[dict[str, Any]]:
        """Our instances (of one identity, or all) that are not terminated."""
        filters = self._filters(identity)
        filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
        reservations = self._all("describe_instances", "Reservations", Filters=filters)
        return [i for r in reservations for i in r["Instances"]]

    def _tagged(self, op: str, key: str, identity: str | None) -> list[dict[str, Any]]:
        return self._all(op, key, Filters=self._filters(identity))

    @staticmethod
    def _filters(identity: str | None) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = [{"Name": f"tag:{TAG_OWNER}", "Values": ["1"]}]
        if identity:
            filters.append({"Name": f"tag:{TAG_IDENTITY}", "Values": [identity]})
        return filters

    def _all(self, op: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a describe call, following NextToken."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(op, **kwargs)
            items.extend(page.get(key, []))
            if not page.get("NextToken"):
                return items
            kwargs["NextToken"] = page["NextToken"]

    # -- destroy -----------------------------------------------------------------------

    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        """Terminate the instance, then delete its security group and key pair. Idempotent."""
        self._teardown_identity(machine.identity, progress, also=[machine.machine_id])
        self._login_keys.pop(machine.identity, None)

    def _teardown_identity(
        self, identity: str, progress: Progress, also: Iterable[str] = ()
    ) -> None:
        instances = {i["InstanceId"] for i in self._instances(identity)} | set(also)
        groups = [
            g["GroupId"]
            for g in self._tagged("describe_security_groups", "SecurityGroups", identity)
        ]
        keys = [k["KeyName"] for k in self._tagged("describe_key_pairs", "KeyPairs", identity)]
        self._teardown(sorted(instances), groups, keys, progress)

    def _teardown(
        self, instances: list[str], groups: list[str], keys: list[str], progress: Progress
    ) -> None:
        """Instances first (and wait), then the groups they used, then key pairs."""
        deadline = time.monotonic() + self._destroy_timeout
        leaked: list[str] = []
        live = [i for i in instances if (s := self._state(i)) and s != "terminated"]
        if live:
            progress(f"ec2: terminating {', '.join(live)}")
            try:
                self._call(
                    "terminate_instances", ok=("InvalidInstanceID.NotFound",), InstanceIds=live
                )
            except Ec2ApiError as exc:
                # Groups stay in use: try each once below rather than wait for nothing.
                progress(f"ec2: {exc.message}")
                leaked.extend(f"instance {iid}" for iid in live)
                deadline = time.monotonic()
                live = []
        for iid in live:
            while (state := self._state(iid)) not in (None, "terminated"):
                if time.monotonic() > deadline:
                    leaked.append(f"instance {iid} ({state})")
                    break
                time.sleep(self._poll)
        for group in groups:
            progress(f"ec2: deleting security group {group}")
            while True:
                try:
                    self._call(
                        "delete_security_group", ok=("InvalidGroup.NotFound",), GroupId=group
                    )
                    break
                except Ec2ApiError as exc:  # still attached to a terminating instance
                    if exc.code != "DependencyViolation" or time.monotonic() > deadline:
                        leaked.append(f"security group {group}")
                        break
                    time.sleep(self._poll)
        for key in keys:
            progress(f"ec2: deleting key pair {key}")
            try:
                self._call("delete_key_pair", ok=("InvalidKeyPair.NotFound",), KeyName=key)
            except Ec2ApiError:
                leaked.append(f"key pair {key}")
        if leaked:
            raise TeardownError(f"EC2 resources left behind: {', '.join(leaked)}", CLEANUP_HINT)

    def _state(self, iid: str) -> str | None:
        instance = self._instance(iid)
        return str(instance["State"]["Name"]) if instance else None

    # -- orphans -----------------------------------------------------------------------

    def list_owned(self) -> list[OwnedResource]:
        """Every instance (not terminated), security group and key pair tagged as ours."""
        owned: list[OwnedResource] = []
        kinds = [
            ("instance", "InstanceId", self._instances(None)),
            (
                "security-group",
                "GroupId",
                self._tagged("describe_security_groups", "SecurityGroups", None),
            ),
            ("key-pair", "KeyName", self._tagged("describe_key_pairs", "KeyPairs", None)),
        ]
        for kind, id_key, items in kinds:
            for item in items:
                tags = _tag_map(item)
                owned.append(
                    OwnedResource(
                        provider="ec2",
                        kind=kind,
                        resource_id=str(item[id_key]),
                        identity=tags.get(TAG_IDENTITY, ""),
                        created_at=_parse_iso(tags.get(TAG_CREATED)),
                        expires_at=_parse_iso(tags.get(TAG_EXPIRES)),
                        state=str(item.get("State", {}).get("Name", ""))
                        if kind == "instance"
                        else "",
                    )
                )
        return owned

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        """Destroy resources from `list_owned`: instances first, then groups and key pairs."""

        def ids(kind: str) -> list[str]:
            return [r.resource_id for r in resources if r.provider == "ec2" and r.kind == kind]

        self._teardown(ids("instance"), ids("security-group"), ids("key-pair"), progress)

    def renew_expiry(self, machine: Machine) -> None:
        """Move the instance's expires-at tag to now + TTL (call it with the heartbeat, so
        `cleanup --orphans` does not count a live session as expired)."""
        expires = _now() + datetime.timedelta(minutes=self.entry.ttl_minutes)
        self._call(
            "create_tags",
            Resources=[machine.machine_id],
            Tags=[{"Key": TAG_EXPIRES, "Value": _iso(expires)}],
        )


def _login_user(image: dict[str, Any]) -> str:
    """The image's default user: `ubuntu` on Ubuntu images, `admin` on Debian's."""
    text = f"{image.get('Name', '')} {image.get('Description', '')}".lower()
    return "ubuntu" if "ubuntu" in text else "admin"
