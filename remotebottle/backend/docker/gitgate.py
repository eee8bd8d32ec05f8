"""The git gate sidecar (placeholder until it lands: a bottle with `git` entries is refused)."""

from __future__ import annotations

from remotebottle.backend.docker.sidecar import AgentGrant, SidecarSite
from remotebottle.errors import BottleError


def start(site: SidecarSite) -> AgentGrant:
    raise BottleError(
        f"bottle {site.plan.spec.bottle!r} has git remotes, and the git gate has not landed yet",
        hint="remove `git` from the bottle for now",
    )
