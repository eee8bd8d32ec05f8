"""An EC2 instance's first boot: what it is launched with (`launch_request`: the user-data
of `cloud-init/user-data.yaml` that installs Docker, makes the login user and arms the
dead-man timer; IMDSv2 only, with a hop limit of 1, so that containers on the VM cannot
reach the instance's credentials; a power-off from inside terminates it), where SSH may
come from, and the SSH host key cloud-init prints to its console, which the authenticated
EC2 API hands back before the first connection.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from remotebottle.errors import HostError, ProvisionError
from remotebottle.manifest import Ec2Host

USER_DATA = "cloud-init/user-data.yaml"
HOST_KEYS_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
HOST_KEYS_END = "-----END SSH HOST KEY KEYS-----"
CHECKIP_URL = "https://checkip.amazonaws.com"
ROOT_VOLUME_GB = 20
TAG_LOGIN_USER = "io.remotebottle.login-user"  # instance only: whom to log in as


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


def default_user(image: dict[str, Any]) -> str:
    """The image's default user: `ubuntu` on Ubuntu images, `admin` on Debian's."""
    text = f"{image.get('Name', '')} {image.get('Description', '')}".lower()
    return "ubuntu" if "ubuntu" in text else "admin"


def launch_request(
    entry: Ec2Host,
    identity: str,
    image: dict[str, Any],
    subnet_id: str | None,
    group_id: str,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """The RunInstances parameters of session `identity`'s instance.

    Args:
        entry: the hosts entry (instance type, TTL, spot).
        identity: the session; its key pair is `rbottle-<identity>`.
        image: the AMI, as DescribeImages gives it.
        subnet_id: the subnet, or None for the default VPC's default subnet.
        group_id: the security group that admits SSH from the caller.
        tags: the tags of every resource the launch makes.
    """
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
    if entry.spot:
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
    user = default_user(image)
    login = [{"Key": TAG_LOGIN_USER, "Value": user}]
    return {
        "ImageId": image["ImageId"],
        "InstanceType": entry.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "KeyName": f"rbottle-{identity}",
        "NetworkInterfaces": [nic],
        "UserData": render_user_data(entry.ttl_minutes, user),
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 1,
            "HttpEndpoint": "enabled",
        },
        "BlockDeviceMappings": [
            {
                "DeviceName": root,
                "Ebs": {"VolumeSize": size, "VolumeType": "gp3", "DeleteOnTermination": True},
            }
        ],
        "TagSpecifications": [
            {"ResourceType": k, "Tags": tags + (login if k == "instance" else [])} for k in kinds
        ],
        **extra,
    }


def host_key_from_console(text: str) -> str | None:
    """The ed25519 host key cloud-init printed to the console, as `ssh-ed25519 AAAA...`.

    The last complete `BEGIN/END SSH HOST KEY KEYS` block wins (the latest boot).
    """
    blocks = re.findall(
        re.escape(HOST_KEYS_BEGIN) + r"(.*?)" + re.escape(HOST_KEYS_END), text, re.DOTALL
    )
    for block in reversed(blocks):
        for line in block.splitlines():
            # Console lines may carry a kernel/serial prefix such as "[   42.1] ci-info: ".
            m = re.search(r"ssh-ed25519 (AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+={0,2})", line)
            if m and _is_ed25519_blob(m.group(1)):
                return f"ssh-ed25519 {m.group(1)}"
    return None


def _is_ed25519_blob(text: str) -> bool:
    """string "ssh-ed25519" + string of a 32-byte key: 4 + 11 + 4 + 32 bytes."""
    try:
        blob = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return len(blob) == 51 and blob[:15] == b"\x00\x00\x00\x0bssh-ed25519"


def render_user_data(ttl_minutes: int, login_user: str) -> str:
    """`cloud-init/user-data.yaml` with its placeholders filled in."""
    text = _user_data_template()
    text = text.replace("{{ttl_minutes}}", str(int(ttl_minutes)))
    text = text.replace("{{login_user}}", login_user)
    if "{{" in text:
        raise ProvisionError(f"{USER_DATA} has a placeholder rbottle does not fill")
    return text


def _user_data_template() -> str:
    # Packaged as `remotebottle/resources/cloud-init/` (a link, like provisioning/); the
    # repository copy serves an editable checkout where that link is missing.
    try:
        return (
            resources.files("remotebottle").joinpath("resources", *USER_DATA.split("/")).read_text()
        )
    except OSError:
        pass
    try:
        # remotebottle/hosts/ec2/bootstrap.py -> the repository root
        return (Path(__file__).resolve().parents[3] / USER_DATA).read_text()
    except OSError:
        raise ProvisionError(
            f"rbottle is installed without its {USER_DATA}",
            hint="reinstall rbottle (pip install --force-reinstall remotebottle)",
        ) from None
