"""The Fly Machine image, built and booted here: Debian 13's Docker 26 and runsc.

The image is built from `remotebottle/resources/fly` with links followed (as docs/fly.md
builds it) on `debian:trixie-slim` (`make setup` makes it for the fake VMs). Booted with
the fake VM's flags (a container, not a Fly Machine: the boot script first makes the
cgroup mounts and /proc/sys/net writable, as tests/harness/FAKEVM.md explains, and puts
what rbottle would deliver in /etc/rbottle), its init must start dockerd through
provisioning's install-docker.sh, with runsc registered the way it runs on this kernel,
and a container must run under gVisor. A BASE_IMAGE with an older engine fails the build.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from remotebottle.backend.docker.engine import version_tuple
from tests.integration.conftest import require
from tests.integration.fakevm import BASE_IMAGE, TEST_LABEL

pytestmark = pytest.mark.integration

FLY = Path(__file__).resolve().parents[2] / "remotebottle" / "resources" / "fly"
TRIXIE = "debian:trixie-slim"
IMAGE = "rbottle-test/fly-machine:latest"
BOOT = """
set -eu
for d in /sys/fs/cgroup/*/; do
    mountpoint -q "$d" && { mount -o remount,rw,bind "$d" 2>/dev/null || true; }
done
if mount --bind /proc/sys/net /proc/sys/net 2>/dev/null; then
    mount -o remount,bind,rw /proc/sys/net || true
fi
mkdir -p /etc/rbottle
ssh-keygen -q -t ed25519 -N '' -f /etc/rbottle/ssh_host_ed25519_key
cp /etc/rbottle/ssh_host_ed25519_key.pub /etc/rbottle/authorized_keys
echo 5 >/etc/rbottle/ttl_minutes
exec /usr/local/sbin/rbottle-fly-init
"""


def load_base_image(client: docker.DockerClient, container: Any) -> None:
    """`docker save` the base image here, `docker load` it in the booted image's engine."""
    saved = b"".join(client.images.get(BASE_IMAGE).save(named=True))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("base.tar")
        info.size = len(saved)
        tar.addfile(info, io.BytesIO(saved))
    container.put_archive("/tmp", archive.getvalue())
    code, out = container.exec_run(["docker", "load", "-q", "-i", "/tmp/base.tar"])
    assert code == 0, out


def context() -> bytes:
    """The build context, links followed (`tar -ch`)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        for path in sorted(FLY.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def build(client: docker.DockerClient, tag: str, base_image: str) -> tuple[bool, str]:
    try:
        _, stream = client.images.build(
            fileobj=io.BytesIO(context()),
            custom_context=True,
            tag=tag,
            buildargs={"BASE_IMAGE": base_image},
            labels={TEST_LABEL: "1"},
            rm=True,
            forcerm=True,
        )
        logs = [str(chunk.get("stream", "")) for chunk in stream]
    except docker.errors.BuildError as exc:
        logs = [str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log]
        return False, "".join(logs)
    return True, "".join(logs)


@pytest.fixture(scope="module")
def fly_image(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(TRIXIE)
    except docker.errors.ImageNotFound:
        require(f"{TRIXIE} is not on the engine; run tests/harness/setup.sh (`make setup`)")
    ok, logs = build(docker_client, IMAGE, TRIXIE)
    assert ok, logs[-3000:]
    said = docker_client.containers.run(
        IMAGE,
        ["sh", "-c", "dockerd --version; runsc --version | head -n 1"],
        entrypoint=[],
        remove=True,
        network_mode="none",
        labels={TEST_LABEL: "1"},
    ).decode()
    version = said.split()[2].rstrip(",")  # "Docker version 26.1.5+dfsg1, build ..."
    assert version_tuple(version) >= (25, 0, 5), said
    print(f"\nFly image: {' / '.join(said.splitlines())}")
    return IMAGE


def test_the_image_boots_with_docker_26_and_gvisor(
    docker_client: docker.DockerClient, fly_image: str
) -> None:
    # The Machine's volume, where dockerd keeps its data (daemon.json: data-root).
    volume = docker_client.volumes.create(labels={TEST_LABEL: "1"})
    container = docker_client.containers.run(
        fly_image,
        ["sh", "-c", BOOT],
        entrypoint=[],
        detach=True,
        name=f"rbt-fly-{int(time.time())}",
        cap_add=["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        labels={TEST_LABEL: "1"},
    )
    try:
        deadline = time.monotonic() + 120
        logs = ""
        while "Server listening on" not in logs:
            container.reload()
            logs = container.logs().decode(errors="replace")
            assert container.status == "running", logs
            assert time.monotonic() < deadline, logs
            time.sleep(0.5)
        assert "registering gVisor with Docker Engine: runtime runsc" in logs, logs
        code, out = container.exec_run(["docker", "info", "--format", "{{json .Runtimes}}"])
        assert code == 0 and '"runsc"' in out.decode(), out
        load_base_image(docker_client, container)
        code, out = container.exec_run(
            ["docker", "run", "--rm", "--runtime=runsc", BASE_IMAGE, "uname", "-r"]
        )
        assert (code, out.decode().strip()) == (0, "4.4.0"), out  # gVisor's kernel
        code, out = container.exec_run(
            ["runuser", "-u", "rbottle", "--", "docker", "info", "--format", "{{.DockerRootDir}}"]
        )
        assert (code, out.decode().strip()) == (0, "/data/docker"), out
    finally:
        container.remove(force=True, v=True)
        volume.remove(force=True)


def test_an_engine_older_than_25_0_5_fails_the_build(docker_client: docker.DockerClient) -> None:
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        require(f"{BASE_IMAGE} is not on the engine; run `make setup`")
    tag = "rbottle-test/fly-machine:bookworm"
    ok, logs = build(docker_client, tag, BASE_IMAGE)
    try:
        assert not ok
        assert "Docker Engine 20.10" in logs and "is older than 25.0.5 (CVE-2024-29018)" in logs
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag)
