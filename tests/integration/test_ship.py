"""Shipping images to a fake VM's engine through a real Docker tunnel."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import tarfile
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import pytest

from remotebottle.errors import EngineError
from remotebottle.ops.ship import ShipProgress, ship_images
from remotebottle.transport.docker_tunnel import DockerTunnel
from tests.integration.fakevm import BASE_IMAGE, TEST_LABEL, FakeVm, fakevm

__all__ = ["fakevm"]

pytestmark = pytest.mark.integration

PAYLOAD_BYTES = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def remote(fakevm: FakeVm) -> Iterator[docker.DockerClient]:
    with fakevm.connect() as conn, DockerTunnel(conn, name="ship-test") as tunnel:
        client = tunnel.client(timeout=120)
        yield client
        client.close()


@dataclass
class LocalImage:
    ref: str
    id: str
    size: int
    payload_sha256: str


def _remove_image(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


def _build_context(dockerfile: str, payload: bytes) -> io.BytesIO:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("payload", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context


@pytest.fixture
def local_image(
    docker_client: docker.DockerClient, remote: docker.DockerClient
) -> Iterator[LocalImage]:
    """A fresh image on this machine only: debian plus a random file, under a unique tag."""
    token = secrets.token_hex(4)
    ref = f"rbottle-test/ship-{token}:v1"
    payload = os.urandom(PAYLOAD_BYTES)
    dockerfile = (
        f"FROM {BASE_IMAGE}\nLABEL {TEST_LABEL}=1 io.remotebottle.test.ship={token}\n"
        "COPY payload /payload\n"
    )
    image, _ = docker_client.images.build(
        fileobj=_build_context(dockerfile, payload), custom_context=True, tag=ref, rm=True
    )
    try:
        assert image.id is not None
        yield LocalImage(
            ref, image.id, int(image.attrs["Size"]), hashlib.sha256(payload).hexdigest()
        )
    finally:
        _remove_image(docker_client, image.id or ref)
        _remove_image(remote, image.id or ref)


@pytest.fixture
def events() -> list[ShipProgress]:
    return []


def _vm_has(remote: docker.DockerClient, ref: str) -> bool:
    try:
        remote.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def test_ship_streams_the_image_and_it_runs_on_the_vm(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not _vm_has(remote, local_image.ref)
    streamed = 0
    real_load: Callable[..., Any] = remote.api.load_image

    def counting_load(data: Iterator[bytes], quiet: bool | None = None) -> Any:
        def counted() -> Iterator[bytes]:
            nonlocal streamed
            for chunk in data:
                streamed += len(chunk)
                yield chunk

        return real_load(counted(), quiet=quiet)

    monkeypatch.setattr(remote.api, "load_image", counting_load)
    tracemalloc.start()
    try:
        shipped = ship_images(docker_client, remote, [local_image.ref], on_progress=events.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert shipped == [local_image.ref]
    assert remote.images.get(local_image.ref).id == local_image.id
    # Streamed, not buffered: far less than the image was held in memory at once.
    assert streamed > PAYLOAD_BYTES
    assert peak < PAYLOAD_BYTES / 2, f"peak {peak} bytes while shipping"

    assert {e.ref for e in events} == {local_image.ref}
    assert events[0] == ShipProgress(local_image.ref, 0, local_image.size)
    sent = [e.sent_bytes for e in events]
    assert sent == sorted(sent)
    assert len(events) > 4  # one event per chunk, not one per image
    assert [e.done for e in events] == [False] * (len(events) - 1) + [True]
    assert events[-1] == ShipProgress(local_image.ref, streamed, local_image.size, done=True)

    output = remote.containers.run(
        local_image.ref, ["sha256sum", "/payload"], labels={TEST_LABEL: "1"}, remove=True
    )
    assert output.split()[0].decode() == local_image.payload_sha256


def test_shipping_again_skips(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
) -> None:
    assert ship_images(docker_client, remote, [local_image.ref]) == [local_image.ref]
    tags_before = sorted(remote.images.get(local_image.id).tags)

    again = ship_images(
        docker_client, remote, [local_image.ref, local_image.id], on_progress=events.append
    )

    assert again == []
    assert events == [
        ShipProgress(local_image.ref, 0, local_image.size, done=True, skipped=True),
        ShipProgress(local_image.id, 0, local_image.size, done=True, skipped=True),
    ]
    # Naming the image by its ID tags nothing new on the VM.
    assert sorted(remote.images.get(local_image.id).tags) == tags_before


def test_an_image_already_there_under_another_name_is_only_tagged(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
) -> None:
    ship_images(docker_client, remote, [local_image.ref])
    other = local_image.ref.replace(":v1", ":other")
    assert docker_client.images.get(local_image.ref).tag(other)

    assert ship_images(docker_client, remote, [other], on_progress=events.append) == []

    assert events == [ShipProgress(other, 0, local_image.size, done=True, skipped=True)]
    assert remote.images.get(other).id == local_image.id


@pytest.mark.parametrize("real_there", [False, True], ids=["sent", "tagged-back"])
def test_another_image_under_the_tag_on_the_vm_is_replaced(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
    real_there: bool,
) -> None:
    """The VM's image under the tag is compared by ID, never trusted by name: someone who
    re-tagged another image there gets it replaced by this machine's. When the VM still
    has this machine's image under its ID, it is only tagged back."""
    if real_there:
        ship_images(docker_client, remote, [local_image.ref])
    impostor = remote.images.get(BASE_IMAGE)
    repository, tag = local_image.ref.split(":")
    assert impostor.tag(repository, tag)
    assert remote.images.get(local_image.ref).id == impostor.id != local_image.id

    shipped = ship_images(docker_client, remote, [local_image.ref], on_progress=events.append)

    assert shipped == ([] if real_there else [local_image.ref])
    assert events[-1].done and not events[-1].failed
    assert events[-1].skipped == real_there
    assert remote.images.get(local_image.ref).id == local_image.id
    assert BASE_IMAGE in remote.images.get(impostor.id).tags  # the other image is untouched
    output = remote.containers.run(
        local_image.ref, ["sha256sum", "/payload"], labels={TEST_LABEL: "1"}, remove=True
    )
    assert output.split()[0].decode() == local_image.payload_sha256


def test_a_missing_image_is_named_and_nothing_is_sent(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
) -> None:
    missing = f"rbottle-test/absent-{secrets.token_hex(4)}:v1"
    with pytest.raises(EngineError) as err:
        ship_images(docker_client, remote, [local_image.ref, missing], on_progress=events.append)
    assert (
        err.value.message
        == f"cannot ship {missing}: this machine's Docker engine has no such image"
    )
    assert missing in err.value.hint
    # Every ref is checked before anything is sent.
    assert events == []
    assert not _vm_has(remote, local_image.ref)


def test_a_load_the_vm_refuses_is_an_engine_error(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_a_tar(name: str, chunk_size: int | None = None) -> Iterator[bytes]:
        yield b"this is not an image archive" * 1000

    monkeypatch.setattr(docker_client.api, "get_image", not_a_tar)
    with pytest.raises(EngineError) as err:
        ship_images(docker_client, remote, [local_image.ref], on_progress=events.append)
    assert err.value.message.startswith(f"shipping {local_image.ref} failed after 0.0 MB: ")
    assert "the remote engine" in err.value.message
    assert events[-1] == ShipProgress(
        local_image.ref, 28_000, local_image.size, done=True, failed=True
    )
    assert not _vm_has(remote, local_image.ref)


def test_a_save_that_breaks_midway_is_blamed_on_this_machine(
    docker_client: docker.DockerClient,
    remote: docker.DockerClient,
    local_image: LocalImage,
    events: list[ShipProgress],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_get_image: Callable[..., Iterator[bytes]] = docker_client.api.get_image

    def breaking(name: str, chunk_size: int | None = None) -> Iterator[bytes]:
        given = 0
        for piece in real_get_image(name, chunk_size=chunk_size):
            yield piece
            given += len(piece)
            if given > 3 * 1024 * 1024:
                raise docker.errors.APIError("the engine went away")

    monkeypatch.setattr(docker_client.api, "get_image", breaking)
    with pytest.raises(EngineError) as err:
        ship_images(docker_client, remote, [local_image.ref], on_progress=events.append)
    assert re.fullmatch(
        rf"shipping {re.escape(local_image.ref)} failed after \d+\.\d MB: "
        "this machine's engine: the engine went away",
        err.value.message,
    )
    assert events[-1].done
    assert events[-1].failed
    assert events[-1].sent_bytes >= 1024 * 1024
    assert not _vm_has(remote, local_image.ref)
    assert remote.ping()  # the tunnel and the VM's engine are fine afterwards


def test_a_digest_reference_is_refused(
    docker_client: docker.DockerClient, remote: docker.DockerClient
) -> None:
    with pytest.raises(EngineError) as err:
        ship_images(docker_client, remote, [f"{BASE_IMAGE.split(':')[0]}@sha256:{'0' * 64}"])
    assert "digest" in err.value.message
    assert err.value.hint
