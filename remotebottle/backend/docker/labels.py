"""Labels on every engine object we create: list and cleanup find things by label only."""

from __future__ import annotations

from typing import Any

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
