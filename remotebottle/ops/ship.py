"""Shipping images from this machine's Docker engine to a VM's: `docker save | docker load`.

Each image is streamed: the chunks of the source engine's `GET /images/{name}/get` are the
body of the target engine's `POST /images/load` (chunked transfer encoding): about 1 MiB of
the tar is in memory at a time and none of it is written to disk. The VM needs no registry.

What is skipped is a whole image the target already has: the same image ID under the same
tag, or the same ID under another name (then it is only tagged; an image ID is the digest of
a config that names every layer, so equal IDs mean equal content). Save/load cannot send
"only the missing layers": a saved tar holds every layer of the image, including those the
target has from a base image or an earlier ship, and each ref is saved on its own, so refs
sharing layers send them once per ref. Registry digests (`name@sha256:…`) do not survive
save/load, so refs are shipped by tag or by image ID.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag

from remotebottle.errors import EngineError

CHUNK = 1024 * 1024
_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")


@dataclass(frozen=True)
class ShipProgress:
    """Where the shipping of one image stands.

    Events for one ref come in order: a first one with `sent_bytes=0`, one per chunk sent,
    and a last one with `done=True` (with `skipped` when nothing was sent, `failed` when
    the shipment is about to raise). `total_bytes_estimate` is the image's size as the
    source engine reports it (the tar is a little larger); 0 when it is not known.
    """

    ref: str
    sent_bytes: int
    total_bytes_estimate: int
    done: bool = False
    skipped: bool = False
    failed: bool = False


ProgressCallback = Callable[[ShipProgress], None]


def ship_images(
    source: docker.DockerClient,
    target: docker.DockerClient,
    refs: Sequence[str],
    *,
    on_progress: ProgressCallback | None = None,
) -> list[str]:
    """Make `target` hold each of `refs` as `source` has it; return the refs actually sent.

    Every ref is looked up on `source` before anything is sent.

    Raises:
        EngineError: a ref is not on `source`, or names a registry digest; an engine
            refused a request or the stream broke; the target did not end up with the
            image ID the source has.
    """
    report = on_progress or _ignore
    images = [(ref, _canonical(ref)) for ref in refs]
    found = [(ref, name, _source_image(source, ref, name)) for ref, name in images]
    shipped: list[str] = []
    for ref, name, image in found:
        image_id = str(image["Id"])
        size = int(image.get("Size") or 0)
        if _already_there(target, name, image_id):
            report(ShipProgress(ref, 0, size, done=True, skipped=True))
            continue
        sent = _send(source, target, ref, name, size, report)
        try:
            _verify(target, ref, name, image_id)
        except EngineError:
            report(ShipProgress(ref, sent, size, done=True, failed=True))
            raise
        report(ShipProgress(ref, sent, size, done=True))
        shipped.append(ref)
    return shipped


def _ignore(_: ShipProgress) -> None:
    pass


def _canonical(ref: str) -> str:
    """The name to save and look up: an image ID as it is, `repo` as `repo:latest`.

    `docker save repo` with no tag would save every tag of the repository.
    """
    if "@" in ref:
        raise EngineError(
            f"cannot ship {ref}: a registry digest does not survive docker save/load",
            hint="name the image by tag (or by image ID) to ship it",
        )
    if _IMAGE_ID.fullmatch(ref):
        return ref
    repository, tag = parse_repository_tag(ref)
    return f"{repository}:{tag or 'latest'}"


def _source_image(source: docker.DockerClient, ref: str, name: str) -> dict[str, Any]:
    image = _inspect(source, name, "this machine's engine")
    if image is None:
        raise EngineError(
            f"cannot ship {ref}: this machine's Docker engine has no such image",
            hint=f"build or pull {ref} here first (`docker image ls` lists what is here)",
        )
    return image


def _inspect(client: docker.DockerClient, name: str, engine: str) -> dict[str, Any] | None:
    try:
        return dict(client.images.get(name).attrs)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineError(f"{engine} did not answer about {name}: {exc}") from None


def _already_there(target: docker.DockerClient, name: str, image_id: str) -> bool:
    on_target = _inspect(target, name, "the remote engine")
    if on_target is not None and on_target["Id"] == image_id:
        return True
    if _inspect(target, image_id, "the remote engine") is None:
        return False
    if not _IMAGE_ID.fullmatch(name):
        repository, tag = parse_repository_tag(name)
        try:
            target.api.tag(image_id, repository, tag)
        except docker.errors.APIError as exc:
            raise EngineError(f"the remote engine refused to tag {name}: {exc}") from None
    return True


class _SourceFailed(Exception):
    """Carries a source-side error out through requests, which would wrap an OSError."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _send(
    source: docker.DockerClient,
    target: docker.DockerClient,
    ref: str,
    name: str,
    size: int,
    report: ProgressCallback,
) -> int:
    """Stream `name` from `source` into `target`; return the bytes sent."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        try:
            for chunk in _rechunked(source.api.get_image(name, chunk_size=CHUNK)):
                sent += len(chunk)
                report(ShipProgress(ref, sent, size))
                yield chunk
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise _SourceFailed(exc) from exc

    def fail(message: str, hint: str = "") -> EngineError:
        report(ShipProgress(ref, sent, size, done=True, failed=True))
        return EngineError(f"shipping {ref} failed after {sent / 1e6:.1f} MB: {message}", hint=hint)

    load_image: Callable[..., Iterator[dict[str, Any]]] = target.api.load_image
    report(ShipProgress(ref, 0, size))
    try:
        for message in load_image(chunks(), quiet=True):
            if "error" in message or "errorDetail" in message:
                detail = message.get("errorDetail") or {}
                raise fail(f"the remote engine: {detail.get('message') or message.get('error')}")
    except _SourceFailed as exc:
        raise fail(f"this machine's engine: {exc.cause}") from None
    except docker.errors.APIError as exc:
        raise fail(f"the remote engine refused it: {exc.explanation or exc}") from None
    except requests.exceptions.RequestException as exc:
        raise fail(
            f"the connection to the remote engine broke: {exc}",
            hint="check the SSH connection to the host, then try again",
        ) from None
    return sent


def _rechunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pieces of about `CHUNK` bytes: a chunked response comes in pieces of 32 KiB or less."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _verify(target: docker.DockerClient, ref: str, name: str, image_id: str) -> None:
    loaded = _inspect(target, name, "the remote engine")
    if loaded is None or loaded["Id"] != image_id:
        found = "nothing" if loaded is None else str(loaded["Id"])
        raise EngineError(
            f"shipped {ref}, but the remote engine has {found} under that name, not {image_id}"
        )
