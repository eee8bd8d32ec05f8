"""Destroying what the Fly provider made: a session's Machine and its volume, or whatever
the orphan sweep found marked as ours.

A Machine is asked to stop, then force-deleted; its volume goes after it (the API refuses
that for a moment while the Machine is going away). "Not found" counts as gone. A volume
that no Machine of ours uses is listed too: a create that died between the two leaves one.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from remotebottle.hosts.fly import config
from remotebottle.hosts.fly.api import FlyApi, FlyApiError
from remotebottle.hosts.provider import OwnedResource, Progress
from remotebottle.hosts.wait import deadline_after, parse_iso, retry_while

log = logging.getLogger(__name__)


def destroy(
    api: FlyApi, machine_id: str, volume_id: str, progress: Progress, *, poll: float
) -> None:
    """Destroy the Machine `machine_id` and the volume `volume_id` (either may be "")."""
    if machine_id:
        path = f"/machines/{machine_id}"
        try:  # a clean shutdown first; the forced delete ends it anyway
            api.request("POST", f"{path}/stop", body={}, missing_ok=True)
        except FlyApiError as exc:
            log.info("stopping %s: %s", machine_id, exc)
        api.request("DELETE", path, params={"force": "true"}, missing_ok=True)
        progress(f"destroyed the Fly Machine {machine_id}")
    if volume_id:
        delete = functools.partial(api.request, "DELETE", f"/volumes/{volume_id}", missing_ok=True)
        retry_while(delete, _refused_for_now, deadline=deadline_after(60), interval=poll)
        progress(f"destroyed the Fly volume {volume_id}")


def _refused_for_now(exc: Exception) -> bool:
    """What the volumes API answers while the volume's Machine is still going away."""
    return isinstance(exc, FlyApiError) and exc.status in (400, 409, 412, 422)


def owned(
    api: FlyApi, machines: Sequence[Mapping[str, Any]], ttl_minutes: int
) -> list[OwnedResource]:
    """Our live `machines`, and every live volume of ours (attached or not)."""
    found = [config.machine_resource(m) for m in machines]
    by_volume = {config.volume_of(m): config.identity_of(m) for m in machines}
    ttl = datetime.timedelta(minutes=ttl_minutes)
    for volume in api.request("GET", "/volumes") or []:
        name = str(volume.get("name") or "")
        if not name.startswith(config.VOLUME_PREFIX) or volume.get("state") in config.GONE_STATES:
            continue
        volume_id = str(volume.get("id") or "")
        created = parse_iso(volume.get("created_at"))
        attached = bool(volume.get("attached_machine_id"))
        found.append(
            OwnedResource(
                provider="fly",
                kind="volume",
                resource_id=volume_id,
                identity=by_volume.get(volume_id) or config.identity_from_volume(name),
                created_at=created,
                # Unattached, it serves nothing once a create could have finished.
                expires_at=None if attached or created is None else created + ttl,
                state=str(volume.get("state") or ""),
            )
        )
    return found
