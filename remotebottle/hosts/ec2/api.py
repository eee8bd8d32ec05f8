"""The EC2 API as the provider uses it: one boto3 client per hosts entry, every call's
errors translated into one-line messages with a hint, pages followed, and lookups that
filter on our tags.

Credentials and region come from boto3's standard chain (environment, profiles, SSO,
instance roles); boto3 honours `AWS_ENDPOINT_URL`, which the tests point at a moto server
on loopback. boto3 is imported on first use, so that `rbottle --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from remotebottle.errors import HostError, ProvisionError
from remotebottle.hosts.ec2.pricing import guess_architecture
from remotebottle.hosts.provider import TAG_IDENTITY, TAG_OWNER, Progress

DEBIAN_OWNER = "136693071363"  # Debian's cloud team account (wiki.debian.org/Cloud/AmazonEC2Image)
# Debian 13 (trixie): its docker.io (26.1) has the fix for CVE-2024-29018 and it ships runsc.
DEBIAN_RELEASE = 13
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
IAM_HINT = "the AWS identity needs the EC2 permissions listed in docs/ec2.md"


class Ec2ApiError(ProvisionError):
    """An EC2 API call failed; `code` is AWS's error code ("" for transport errors)."""

    def __init__(self, message: str, hint: str = "", code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code


def tag_map(item: dict[str, Any]) -> dict[str, str]:
    """The tags of a described resource, as a dict."""
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def owned_filters(identity: str | None) -> list[dict[str, Any]]:
    """Describe filters for what we made: for one identity, or for all of them."""
    filters: list[dict[str, Any]] = [{"Name": f"tag:{TAG_OWNER}", "Values": ["1"]}]
    if identity:
        filters.append({"Name": f"tag:{TAG_IDENTITY}", "Values": [identity]})
    return filters


class Ec2Api:
    """EC2 calls in one region of one AWS profile.

    Args:
        profile: the AWS profile, or None for boto3's default chain.
        region: the region, or None for the profile's / AWS_REGION's.
    """

    def __init__(self, profile: str | None, region: str | None) -> None:
        self.profile = profile
        self.region = ""  # known once the client is made
        self._wanted_region = region
        self._client: Any = None

    def client(self) -> Any:
        """The boto3 EC2 client, made on first use.

        Raises:
            HostError: no such profile, no region, or no credentials.
        """
        if self._client is not None:
            return self._client
        import boto3
        import botocore.config
        import botocore.exceptions

        try:
            session = boto3.Session(profile_name=self.profile, region_name=self._wanted_region)
        except botocore.exceptions.ProfileNotFound:
            raise HostError(
                f"the AWS profile {self.profile!r} is not configured",
                hint=f"`aws configure --profile {self.profile}`, or remove `profile`"
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
        self.region = str(session.region_name)
        self._client = session.client("ec2", config=config)
        return self._client

    def call(self, op: str, ok: Iterable[str] = (), **kwargs: Any) -> dict[str, Any]:
        """One EC2 API call with its errors translated; an error code in `ok` gives {}.

        Raises:
            Ec2ApiError: AWS refused the call, or could not be reached.
            HostError: no credentials.
        """
        import botocore.exceptions

        try:
            result: dict[str, Any] = getattr(self.client(), op)(**kwargs)
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

    def all(self, op: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a describe call, following NextToken."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.call(op, **kwargs)
            items.extend(page.get(key, []))
            if not page.get("NextToken"):
                return items
            kwargs["NextToken"] = page["NextToken"]

    # -- what we made --------------------------------------------------------------------

    def tagged(self, op: str, key: str, identity: str | None) -> list[dict[str, Any]]:
        """Every item of a describe call that is ours (of one identity, or all)."""
        return self.all(op, key, Filters=owned_filters(identity))

    def instance(self, iid: str) -> dict[str, Any] | None:
        found = self.call(
            "describe_instances", ok=("InvalidInstanceID.NotFound",), InstanceIds=[iid]
        )
        for reservation in found.get("Reservations", []):
            for instance in reservation["Instances"]:
                return dict(instance)
        return None

    def instances(self, identity: str | None) -> list[dict[str, Any]]:
        """Our instances (of one identity, or all) that are not terminated."""
        filters = owned_filters(identity)
        filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
        reservations = self.all("describe_instances", "Reservations", Filters=filters)
        return [i for r in reservations for i in r["Instances"]]

    def state(self, iid: str) -> str | None:
        instance = self.instance(iid)
        return str(instance["State"]["Name"]) if instance else None

    def console_output(self, iid: str) -> str:
        try:
            out = self.call("get_console_output", InstanceId=iid, Latest=True)
        except Ec2ApiError as exc:
            if exc.code != "UnsupportedOperation":  # Latest=True needs a Nitro instance
                raise
            out = self.call("get_console_output", InstanceId=iid)
        return str(out.get("Output") or "")

    # -- what a launch needs -------------------------------------------------------------

    def architecture(self, instance_type: str) -> str:
        """`x86_64` or `arm64`, as EC2 says (or as the type's name says, if we may not ask)."""
        try:
            found = self.call("describe_instance_types", InstanceTypes=[instance_type])
        except Ec2ApiError as exc:
            if exc.code.startswith("InvalidInstanceType"):
                raise ProvisionError(
                    f"EC2 has no instance type {instance_type!r} in {self.region}",
                    hint="pick another `instance_type` (e.g. t3.medium, t4g.medium)",
                ) from None
            return guess_architecture(instance_type)  # not allowed to ask
        archs = found["InstanceTypes"][0]["ProcessorInfo"]["SupportedArchitectures"]
        return "x86_64" if "x86_64" in archs else "arm64"

    def image(
        self, ami: str | None, arch: str, instance_type: str, progress: Progress
    ) -> dict[str, Any]:
        """The AMI `ami` (checked against `arch`), or the newest Debian 13 one for `arch`."""
        if ami:
            images = self.call("describe_images", ImageIds=[ami])["Images"]
            if not images:
                raise ProvisionError(f"the AMI {ami} does not exist in {self.region}")
            image: dict[str, Any] = images[0]
            if image.get("Architecture") != arch:
                raise ProvisionError(
                    f"the AMI {ami} is {image.get('Architecture')}, but"
                    f" {instance_type} needs {arch}",
                    hint="pick an AMI and an instance type of the same architecture",
                )
            return image
        progress(f"ec2: looking up the newest Debian {DEBIAN_RELEASE} {arch} AMI in {self.region}")
        name = f"debian-{DEBIAN_RELEASE}-{'arm64' if arch == 'arm64' else 'amd64'}-*"
        images = self.call(
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
                f"no Debian {DEBIAN_RELEASE} {arch} AMI found in {self.region}",
                hint="set `ami` in the hosts entry",
            )
        newest: dict[str, Any] = max(images, key=lambda i: str(i.get("CreationDate", "")))
        return newest

    def network(self, subnet_id: str | None) -> tuple[str, str | None]:
        """(VPC id, subnet id or None for the default VPC's default subnet)."""
        if subnet_id:
            subnets = self.call(
                "describe_subnets", ok=("InvalidSubnetID.NotFound",), SubnetIds=[subnet_id]
            ).get("Subnets", [])
            if not subnets:
                raise ProvisionError(
                    f"the subnet {subnet_id} does not exist in {self.region}",
                    hint="fix `subnet_id` in the hosts entry, or remove it to use the default VPC",
                )
            return str(subnets[0]["VpcId"]), subnet_id
        vpcs = self.call("describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}])
        if not vpcs["Vpcs"]:
            raise ProvisionError(
                f"{self.region} has no default VPC",
                hint="set `subnet_id` in the hosts entry to a subnet with internet access",
            )
        return str(vpcs["Vpcs"][0]["VpcId"]), None
