"""Images held by ID on a VM: a tag there is only a name, which anyone using that engine
can move to another image.

A bottle on a VM records, in its metadata, the image ID behind each reference it runs:
this machine's ID for an image shipped from here, the ID found on the VM at first use for
one pulled or built there (`ops.images.place_images`). Later, a reference that names
another image on the VM is refused (`check_tag`), and the bottle's containers must run
recorded images only (`check_containers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker
import docker.errors
import requests

from remotebottle.backend.docker.labels import IDENTITY
from remotebottle.errors import EngineError, ImageMismatchError


def short(image_id: str) -> str:
    """An image ID as `docker image ls` shows it: 12 hex digits."""
    return image_id.removeprefix("sha256:")[:12]


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The ID of the image `ref` names on `client`'s engine; None when it has none."""
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineError(f"could not inspect image {ref}: {exc}") from None


def check_tag(
    host: str, identity: str, ref: str, found: str | None, recorded: Mapping[str, str]
) -> None:
    """Refuse `ref` when the VM has it (`found`) as another image than `recorded` says.

    Raises:
        ImageMismatchError: both are known and differ.
    """
    pinned = recorded.get(ref)
    if found is None or pinned is None or found == pinned:
        return
    raise ImageMismatchError(
        f"{host} has image {short(found)} under {ref}, not {short(pinned)} as recorded"
        f" for {identity}: refusing to run it",
        hint=f"if it was changed on purpose, remove it there (`docker image rm {ref}` through"
        f" `rbottle env {host}`) and retry: it is then built or pulled again",
    )


def check_containers(
    client: docker.DockerClient, host: str, identity: str, recorded: Mapping[str, str]
) -> None:
    """Every container of bottle `identity` runs one of the `recorded` images.

    Raises:
        ImageMismatchError: a container runs another image.
    """
    allowed = set(recorded.values())
    if not allowed:
        return
    for container in _containers(client, identity):
        running = str(container.attrs.get("Image", ""))
        if running not in allowed:
            raise ImageMismatchError(
                f"{container.name} of {identity} on {host} runs image {short(running)}, not one"
                f" recorded for it ({', '.join(sorted(short(i) for i in allowed))})",
                hint=f"check what changed on {host}; `docker rm -f` the bottle's containers"
                f" there (through `rbottle env {host}`)",
            )


def _containers(client: docker.DockerClient, identity: str) -> list[Any]:
    try:
        found = client.containers.list(
            all=True, filters={"label": f"{IDENTITY}={identity}"}, ignore_removed=True
        )
        return list(found)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineError(f"could not list the containers of {identity}: {exc}") from None
