"""Getting a bottle's images onto a VM: shipped from this machine, or built there.

`ship` (the default) builds the agent image, and the git gate's when the bottle has
git remotes, on the local engine when needed and sends them, with the egress proxy's
image when the local engine has it, through the tunnel; the VM needs no registry.
`build` leaves it to the backend on the VM (it needs a registry or a mirror for the
base image and npm).
"""

from __future__ import annotations

from collections.abc import Callable

from remotebottle.backend.docker.images import (
    build_agent_image,
    build_git_gate_image,
    has_image,
)
from remotebottle.backend.spec import BottlePlan
from remotebottle.errors import EngineError
from remotebottle.hosts.engine import Engine
from remotebottle.hosts.local import connect_local_engine
from remotebottle.transport.ship import ShipProgress, ship_images

Progress = Callable[[str], None]

# `docker save` of a large image can take longer than a ping before its first byte.
_SAVE_TIMEOUT_SECONDS = 600


def place_images(
    engine: Engine,
    plan: BottlePlan,
    *,
    progress: Progress,
    on_ship: Callable[[ShipProgress], None] | None = None,
) -> list[str]:
    """Make the VM's engine hold what `plan` runs; return the refs shipped.

    Raises:
        EngineError: shipping needs a local engine and there is none.
    """
    if not engine.is_remote or engine.host.entry.images == "build":
        return []
    try:
        local = connect_local_engine()
    except EngineError as exc:
        raise EngineError(
            f"images are shipped to {engine.host.name} from this machine's engine, "
            f"which does not answer: {exc.message}",
            hint=f'start it, or set hosts.{engine.host.name}.images = "build" in the manifest',
        ) from None
    local.api.timeout = _SAVE_TIMEOUT_SECONDS
    try:
        refs = [build_agent_image(local, progress)]
        if plan.images.git_gate:
            refs.append(build_git_gate_image(local, progress))
        if plan.images.egress and has_image(local, plan.images.egress):
            refs.append(plan.images.egress)
        return ship_images(local, engine.client, refs, on_progress=on_ship)
    finally:
        local.close()
