"""Destroying what the EC2 provider made: a session's instance, security group and key
pair, or whatever the orphan sweep found tagged as ours.

Instances go first, and are waited for, because a security group cannot be deleted while
an instance still uses it. "Not found" counts as gone. Whatever cannot be removed is named
in one `TeardownError`, with the command that removes it later.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable

from remotebottle.errors import TeardownError
from remotebottle.hosts.ec2.api import Ec2Api, Ec2ApiError, tag_map
from remotebottle.hosts.provider import (
    TAG_CREATED,
    TAG_EXPIRES,
    TAG_IDENTITY,
    OwnedResource,
    Progress,
)
from remotebottle.hosts.wait import deadline_after, parse_iso, retry_while

CLEANUP_HINT = "run `rbottle cleanup --orphans`, or delete them in the EC2 console"


def destroy_identity(
    api: Ec2Api,
    identity: str,
    progress: Progress,
    *,
    also: Iterable[str] = (),
    poll: float,
    timeout: float,
) -> None:
    """Destroy everything tagged with `identity`, and the instances `also`."""
    instances = {i["InstanceId"] for i in api.instances(identity)} | set(also)
    groups = [
        g["GroupId"] for g in api.tagged("describe_security_groups", "SecurityGroups", identity)
    ]
    keys = [k["KeyName"] for k in api.tagged("describe_key_pairs", "KeyPairs", identity)]
    destroy(api, sorted(instances), groups, keys, progress, poll=poll, timeout=timeout)


def destroy(
    api: Ec2Api,
    instances: list[str],
    groups: list[str],
    keys: list[str],
    progress: Progress,
    *,
    poll: float,
    timeout: float,
) -> None:
    """Instances first (and wait), then the groups they used, then key pairs.

    Raises:
        TeardownError: something is left; the message lists it.
    """
    deadline = deadline_after(timeout)
    leaked: list[str] = []
    live = [i for i in instances if (s := api.state(i)) and s != "terminated"]
    if live:
        progress(f"ec2: terminating {', '.join(live)}")
        try:
            api.call("terminate_instances", ok=("InvalidInstanceID.NotFound",), InstanceIds=live)
        except Ec2ApiError as exc:
            # Groups stay in use: try each once below rather than wait for nothing.
            progress(f"ec2: {exc.message}")
            leaked.extend(f"instance {iid}" for iid in live)
            deadline = time.monotonic()
            live = []
    for iid in live:
        while (state := api.state(iid)) not in (None, "terminated"):
            if time.monotonic() > deadline:
                leaked.append(f"instance {iid} ({state})")
                break
            time.sleep(poll)
    for group in groups:
        progress(f"ec2: deleting security group {group}")
        delete = functools.partial(
            api.call, "delete_security_group", ok=("InvalidGroup.NotFound",), GroupId=group
        )
        try:  # refused while a terminating instance still uses it
            retry_while(delete, _in_use, deadline=deadline, interval=poll)
        except Ec2ApiError:
            leaked.append(f"security group {group}")
    for key in keys:
        progress(f"ec2: deleting key pair {key}")
        try:
            api.call("delete_key_pair", ok=("InvalidKeyPair.NotFound",), KeyName=key)
        except Ec2ApiError:
            leaked.append(f"key pair {key}")
    if leaked:
        raise TeardownError(f"EC2 resources left behind: {', '.join(leaked)}", CLEANUP_HINT)


def _in_use(exc: Exception) -> bool:
    """A security group still attached to a terminating instance."""
    return isinstance(exc, Ec2ApiError) and exc.code == "DependencyViolation"


def owned(api: Ec2Api) -> list[OwnedResource]:
    """Every instance (not terminated), security group and key pair tagged as ours."""
    found: list[OwnedResource] = []
    kinds = [
        ("instance", "InstanceId", api.instances(None)),
        (
            "security-group",
            "GroupId",
            api.tagged("describe_security_groups", "SecurityGroups", None),
        ),
        ("key-pair", "KeyName", api.tagged("describe_key_pairs", "KeyPairs", None)),
    ]
    for kind, id_key, items in kinds:
        for item in items:
            tags = tag_map(item)
            found.append(
                OwnedResource(
                    provider="ec2",
                    kind=kind,
                    resource_id=str(item[id_key]),
                    identity=tags.get(TAG_IDENTITY, ""),
                    created_at=parse_iso(tags.get(TAG_CREATED)),
                    expires_at=parse_iso(tags.get(TAG_EXPIRES)),
                    state=str(item.get("State", {}).get("Name", "")) if kind == "instance" else "",
                )
            )
    return found
