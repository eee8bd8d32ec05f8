"""Getting a bottle's images onto a VM, each one held by image ID (see `image_pins`).

`ship` (the default) builds the agent image, and the git gate's when the bottle has
git remotes, on the local engine when needed and sends them, with the egress proxy's
image when the local engine has it, through the tunnel; the VM needs no registry. The VM
then holds them under this machine's IDs: another image under one of those tags is
replaced. `build` leaves building and pulling to the VM (it needs a registry or a mirror
for the base image and npm). The bottle's own image (the agent image plus its approved
capabilities) is built on the VM either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import docker

from remotebottle.backend.docker.images import (
    build_agent_image,
    build_derived_image,
    build_git_gate_image,
    derived_image,
    ensure_pulled,
    has_image,
)
from remotebottle.backend.spec import BottlePlan
from remotebottle.errors import EngineError
from remotebottle.hosts.engine import Engine
from remotebottle.hosts.local import connect_local_engine
from remotebottle.image_pins import check_tag, image_id, short
from remotebottle.ops.ship import ShipProgress, ship_images

Progress = Callable[[str], None]
Make = Callable[[], object]

# `docker save` of a large image can take longer than a ping before its first byte.
_SAVE_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Placed:
    """What `place_images` did: the refs it shipped, and the image ID behind each ref the
    bottle runs on the VM (nothing for the local engine)."""

    shipped: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)


def place_images(
    engine: Engine,
    plan: BottlePlan,
    *,
    progress: Progress,
    on_ship: Callable[[ShipProgress], None] | None = None,
    image_lines: str | None = None,
    recorded: Mapping[str, str] | None = None,
) -> Placed:
    """Make the VM's engine hold what `plan` runs (with the bottle's own image when it has
    approved `image_lines`), and say by which IDs.

    An image the VM gets from this machine is this machine's, whatever the VM had under
    its tag. One the VM pulls or builds itself must still be the image `recorded` for the
    bottle when the VM has it already; when it has not, it is made now.

    Raises:
        EngineError: shipping needs a local engine and there is none.
        ImageMismatchError: the VM has another image under a tag than the one recorded.
    """
    if not engine.is_remote:
        return Placed()
    vm = engine.client
    shipped: list[str] = []
    ids: dict[str, str] = {}
    if engine.host.entry.images != "build":
        shipped, ids = _ship(engine, plan, progress, on_ship)
    agent = plan.images.agent
    makers: dict[str, Make] = {
        agent: functools.partial(build_agent_image, vm, progress),
    }
    if plan.images.git_gate:
        makers[plan.images.git_gate] = functools.partial(build_git_gate_image, vm, progress)
    if plan.images.egress:
        makers[plan.images.egress] = functools.partial(
            ensure_pulled, vm, plan.images.egress, progress
        )
    on_vm = {ref: make for ref, make in makers.items() if ref not in ids}
    ids |= _made_on_vm(engine, plan.spec.identity, on_vm, recorded or {})
    if image_lines:
        derived = derived_image(agent, image_lines)
        make = functools.partial(build_derived_image, vm, agent, image_lines, progress)
        ids |= _made_on_vm(engine, plan.spec.identity, {derived: make}, recorded or {})
    return Placed(shipped, ids)


def _ship(
    engine: Engine,
    plan: BottlePlan,
    progress: Progress,
    on_ship: Callable[[ShipProgress], None] | None,
) -> tuple[list[str], dict[str, str]]:
    """Ship this machine's images; return the refs sent and this machine's ID of each."""
    host = engine.host.name
    try:
        local = connect_local_engine()
    except EngineError as exc:
        raise EngineError(
            f"images are shipped to {host} from this machine's engine, "
            f"which does not answer: {exc.message}",
            hint=f'start it, or set hosts.{host}.images = "build" in the manifest',
        ) from None
    local.api.timeout = _SAVE_TIMEOUT_SECONDS
    try:
        refs = [build_agent_image(local, progress)]
        if plan.images.git_gate:
            refs.append(build_git_gate_image(local, progress))
        if plan.images.egress and has_image(local, plan.images.egress):
            refs.append(plan.images.egress)
        mine = {ref: found for ref in refs if (found := image_id(local, ref))}
        for ref, want in mine.items():
            _say_if_replaced(engine.client, host, ref, want, progress)
        return ship_images(local, engine.client, refs, on_progress=on_ship), mine
    finally:
        local.close()


def _say_if_replaced(
    vm: docker.DockerClient, host: str, ref: str, want: str, progress: Progress
) -> None:
    there = image_id(vm, ref)
    if there is not None and there != want:
        progress(
            f"{host} has image {short(there)} under {ref}, not this machine's {short(want)}:"
            " replacing it with this machine's"
        )


def _made_on_vm(
    engine: Engine, identity: str, makers: Mapping[str, Make], recorded: Mapping[str, str]
) -> dict[str, str]:
    """Check the VM's images under `makers`' refs against `recorded`, all before making
    any that are missing; return the ID of each."""
    host = engine.host.name
    before = {ref: image_id(engine.client, ref) for ref in makers}
    for ref, found in before.items():
        check_tag(host, identity, ref, found, recorded)
    ids = {}
    for ref, make in makers.items():
        make()
        found = image_id(engine.client, ref)
        if found is None:
            raise EngineError(f"{host} has no image {ref} right after it was made there")
        if (was := before[ref]) is not None:  # made nothing: it must not have moved since
            check_tag(host, identity, ref, found, {ref: was})
        ids[ref] = found
    return ids
