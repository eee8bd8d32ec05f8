"""Labels on every engine object we create: list and cleanup find things by label only."""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
import requests

from remotebottle.errors import EngineError

PREFIX = "io.remotebottle"
OWNER = f"{PREFIX}.owned"
IDENTITY = f"{PREFIX}.identity"
AGENT = f"{PREFIX}.agent"
ROLE = f"{PREFIX}.role"
HOST = f"{PREFIX}.host"

ROLE_AGENT = "agent"
ROLE_EGRESS = "egress"
ROLE_GIT_GATE = "git-gate"
ROLE_CRED_PROXY = "cred-proxy"
ROLE_NETWORK = "network"
ROLE_SECRETS = "secrets"
ROLE_SUPERVISOR = "supervisor"


def labels(identity: str, agent: str, role: str, host: str = "local") -> dict[str, str]:
    return {OWNER: "1", IDENTITY: identity, AGENT: agent, ROLE: role, HOST: host}


def owned_filter(identity: str | None = None) -> dict[str, Any]:
    """A Docker `filters` value selecting our objects (of one identity, if given)."""
    wanted = [f"{OWNER}=1"]
    if identity:
        wanted.append(f"{IDENTITY}={identity}")
    return {"label": wanted}


def find(
    client: docker.DockerClient,
    *,
    role: str,
    identity: str | None = None,
    running_only: bool = False,
) -> list[Any]:
    """Our containers in `role` (of bottle `identity`, if given), running or not.

    Raises:
        EngineError: the engine did not answer or refused the listing.
    """
    filters = owned_filter(identity)
    filters["label"].append(f"{ROLE}={role}")
    try:
        return list(
            client.containers.list(all=not running_only, filters=filters, ignore_removed=True)
        )
    except (docker.errors.DockerException, requests.RequestException) as exc:
        detail = " ".join(str(exc).split())[:300]
        of = f" of {identity}" if identity else ""
        raise EngineError(f"could not list the {role} containers{of}: {detail}") from None
