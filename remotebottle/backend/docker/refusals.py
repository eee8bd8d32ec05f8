"""What a bottle's proxies refused, read from their logs for the audit log.

pipelock logs an event `blocked` per refused request, the credential proxy an event
`refused` (and `stripped` for betas it took out). Each becomes one plain record: when,
which proxy, the method, where (scheme, host and path only: never a query string, a
body or a header value), and why.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors

from remotebottle.backend.docker import labels as L
from remotebottle.errors import EngineError

ROLES = {L.ROLE_EGRESS: "egress proxy", L.ROLE_CRED_PROXY: "credential proxy"}
MAX_REASON = 300


def refusals(client: docker.DockerClient, identity: str) -> list[dict[str, str]]:
    """Every refusal the proxies of bottle `identity` logged, oldest first."""
    found: list[dict[str, str]] = []
    for role, by in ROLES.items():
        containers = L.find(client, role=role, identity=identity)
        try:
            logs = b"".join(c.logs(stdout=True, stderr=True) for c in containers)
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not read the {by}'s log: {exc}") from None
        for line in logs.decode(errors="replace").splitlines():
            record = _record(line, by)
            if record:
                found.append(record)
    return sorted(found, key=lambda r: r["time"])


def _record(line: str, by: str) -> dict[str, str] | None:
    if not line.startswith("{"):
        return None
    try:
        event: dict[str, Any] = json.loads(line)
    except ValueError:
        return None
    kind = event.get("event")
    if kind == "blocked":
        where = _without_query(str(event.get("url", "")))
        reason = f"{event.get('scanner', '?')}: {event.get('reason', '')}"
    elif kind == "refused":
        where = f"/{event.get('route', '')}/{event.get('path', '')}"
        reason = str(event.get("reason", ""))
    elif kind == "stripped":
        where = f"/{event.get('route', '')}"
        reason = "betas stripped: " + ", ".join(str(b) for b in event.get("betas", []))
    else:
        return None
    return {
        "time": str(event.get("time", "")),
        "by": by,
        "method": str(event.get("method", "")),
        "where": where[:MAX_REASON],
        "reason": reason[:MAX_REASON],
    }


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme:
        return url.split("?", 1)[0]
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
