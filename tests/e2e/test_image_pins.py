"""A bottle on a reused VM runs the images recorded for it, not whatever has their tags.

Someone with access to the VM's engine re-tags another image (here: Debian's) under the
bottle's image references between sessions. `rbottle resume` must replace a shipped one
with this machine's image, and refuse one made on the VM, and never run the impostor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from remotebottle.backend.docker.images import derived_image
from remotebottle.image_pins import short
from tests.e2e.conftest import finish, rbottle
from tests.e2e.vmparts import vm
from tests.integration.fakevm import BASE_IMAGE, FakeVm, fakevm

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

CAPABILITY = "RUN touch /rbottle-capability\n"
# Only the real agent image has Claude Code; only the bottle's own image has the file.
PROBE = "command -v claude >/dev/null && test -e /rbottle-capability && echo REAL-IMAGES"


def vm_image(vm: FakeVm, ref: str) -> str:
    code, out = vm.sh(f"docker image inspect -f '{{{{.Id}}}}' {ref} 2>/dev/null")
    return out.strip() if code == 0 else ""


@pytest.fixture
def restore_vm_tags(
    vm: FakeVm, docker_client: docker.DockerClient, agent_image: str
) -> Iterator[list[str]]:
    """Takes the impostor tags off the shared VM afterwards, with the images this test made."""
    made: list[str] = []
    yield made
    real = docker_client.images.get(agent_image).id
    if vm_image(vm, agent_image) != real:
        vm.sh(f"docker image rm {agent_image} >/dev/null 2>&1 || true")
        vm.sh(f"docker tag {real} {agent_image} >/dev/null 2>&1 || true")
    for image in made:
        vm.sh(f"docker image rm -f {image} >/dev/null 2>&1 || true")


def test_resume_replaces_a_shipped_impostor_and_refuses_one_made_on_the_vm(
    vm: FakeVm,
    docker_client: docker.DockerClient,
    agent_image: str,
    write_manifest: Callable[..., Path],
    restore_vm_tags: list[str],
) -> None:
    project = write_manifest(
        {
            "bottles": {"sealed": {"egress": {"enabled": False}}},
            "agents": {"worker": {"bottle": "sealed"}},
            "hosts": {"vm": vm.hosts_entry()},
        }
    ).parent
    start = ("start", "worker", "--host", "vm", "--yes", "--", "true")
    code, _, err = finish(rbottle(project, *start), timeout=900)
    assert code == 0, err
    meta_file = next((Path(os.environ["REMOTEBOTTLE_HOME"]) / "state").glob("*/metadata.json"))
    identity = meta_file.parent.name
    real = str(docker_client.images.get(agent_image).id)
    assert json.loads(meta_file.read_text())["images"] == {agent_image: real}

    # Between sessions: another image under the agent image's tag; and the bottle was
    # granted a capability, so the next session builds its own image on the VM.
    vm.sh(f"docker tag {BASE_IMAGE} {agent_image}")
    impostor = vm_image(vm, agent_image)
    assert impostor and impostor != real
    (meta_file.parent / "capability.Dockerfile").write_text(CAPABILITY)
    own = derived_image(agent_image, CAPABILITY)

    resume = ("resume", identity, "--yes", "--", "sh", "-c", PROBE)
    code, out, err = finish(rbottle(project, *resume), timeout=600)
    restore_vm_tags.append(own)
    assert code == 0, err
    assert "REAL-IMAGES" in out
    assert (
        f"vm has image {short(impostor)} under {agent_image}, not this machine's {short(real)}:"
        " replacing it with this machine's" in err
    )
    assert vm_image(vm, agent_image) == real
    recorded = json.loads(meta_file.read_text())["images"]
    assert recorded == {agent_image: real, own: vm_image(vm, own)}

    # The bottle's own image was made on the VM: only its record says what it must be.
    vm.sh(f"docker tag {BASE_IMAGE} {own}")
    code, out, err = finish(rbottle(project, *resume), timeout=600)
    assert code == 1, err
    assert "REAL-IMAGES" not in out
    assert (
        f"error: vm has image {short(impostor)} under {own}, not {short(recorded[own])} as"
        f" recorded for {identity}: refusing to run it" in err
    )
    assert f"`docker image rm {own}`" in err
    assert "Traceback" not in err
    # Nothing was made for the refused session, and the record still holds.
    assert json.loads(meta_file.read_text())["images"] == recorded
