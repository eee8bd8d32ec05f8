"""Bench: shipping an image to a VM with `ship_images` through our tunnel vs OpenSSH.

All figures come from one run against one fake VM (sshd + its own dockerd in a container
on the local engine, reached over 127.0.0.1), so the network costs nothing and what is
measured is each path's own cost: saving on this engine, carrying the tar, loading it on
the VM. The image is `FROM scratch` plus one random (incompressible) file, built here and
removed afterwards; before every transfer the VM's copy is removed, so each one is a full
save + load. Rounds alternate between the paths; each figure is the median of the rounds.

- rbottle `ship_images`: docker-py `get_image` chunks streamed into `load_image` through
  our Docker tunnel (one paramiko transport).
- `docker save | ssh vm docker load`: the system OpenSSH client, a temporary HOME's config
  (see bench/tunnel.py; the real ~/.ssh is never read or written).
- `docker save | docker -H <tunnel> load`: the docker CLI over our tunnel's socket.

    python bench/ship.py [--size-mb 80] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tunnel import ALIAS, machine, ssh_setup, table
from remotebottle.ops.ship import ShipProgress, ship_images
from remotebottle.transport.docker_tunnel import DockerTunnel
from tests.integration.fakevm import TEST_LABEL, start_fakevm


def build_blob_image(client: docker.DockerClient, ref: str, size: int) -> int:
    """`FROM scratch` + `size` random bytes under `ref`; return the size of its saved tar."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (
            ("Dockerfile", f"FROM scratch\nLABEL {TEST_LABEL}=1\nCOPY blob /blob\n".encode()),
            ("blob", os.urandom(size)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=ref, rm=True)
    return sum(len(chunk) for chunk in client.api.get_image(ref, chunk_size=1024 * 1024))


def remove_image(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


def shell_pipeline(command: str, env: dict[str, str]) -> Callable[[], object]:
    def run() -> None:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, timeout=600
        )
        if done.returncode:
            raise RuntimeError(f"{command}: exit {done.returncode}: {done.stderr.decode()}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=80, help="the random file in the image")
    parser.add_argument("--rounds", type=int, default=3, help="transfers per path")
    args = parser.parse_args()

    local = docker.from_env(timeout=300)
    ref = f"rbottle-test/bench-ship-{secrets.token_hex(4)}:v1"
    with tempfile.TemporaryDirectory(prefix="rbt-bench-") as tmp:
        work = Path(tmp)
        print("starting a fake VM (sshd + dockerd) ...", file=sys.stderr)
        with (
            start_fakevm(local, work / "vm") as vm,
            vm.connect() as conn,
            DockerTunnel(conn, name="bench-ship") as tunnel,
        ):
            remote = tunnel.client(timeout=300)
            try:
                print(f"building a {args.size_mb} MB image ...", file=sys.stderr)
                tar_bytes = build_blob_image(local, ref, args.size_mb * 1024 * 1024)
                env = os.environ | ssh_setup(vm, work)
                measure(args, local, remote, ref, tar_bytes, env, tunnel.url)
            finally:
                remove_image(local, ref)
                remote.close()


def measure(
    args: argparse.Namespace,
    local: docker.DockerClient,
    remote: docker.DockerClient,
    ref: str,
    tar_bytes: int,
    env: dict[str, str],
    tunnel_url: str,
) -> None:
    engine = local.version()["Version"]
    image_id = local.images.get(ref).id
    sent: list[int] = []

    def record(event: ShipProgress) -> None:
        if event.done:
            sent.append(event.sent_bytes)

    paths: list[tuple[str, Callable[[], object]]] = [
        (
            "docker save | ssh vm docker load",
            shell_pipeline(f"docker save {ref} | ssh {ALIAS} docker load -q", env),
        ),
        (
            "rbottle ship_images (tunnel)",
            lambda: ship_images(local, remote, [ref], on_progress=record),
        ),
        (
            "docker save | docker -H tunnel load",
            shell_pipeline(f"docker save {ref} | docker -H {tunnel_url} load -q", env),
        ),
    ]
    seconds: dict[str, list[float]] = {label: [] for label, _ in paths}
    for round_number in range(args.rounds):
        print(f"round {round_number + 1} of {args.rounds} ...", file=sys.stderr)
        for label, ship in paths:
            remove_image(remote, ref)
            start = time.perf_counter()
            ship()
            seconds[label].append(time.perf_counter() - start)
            assert remote.images.get(ref).id == image_id, f"{label}: the VM lacks {ref}"
    remove_image(remote, ref)
    assert sent == [tar_bytes] * args.rounds, f"ship_images sent {sent}, the tar is {tar_bytes}"

    rows = [(label, tar_bytes / statistics.median(seconds[label]) / 1e6) for label, _ in paths]
    print(f"\nmachine: {machine()}; engine {engine}; fake VM on loopback")
    print(f"image: {tar_bytes / 1e6:.1f} MB saved tar, median of {args.rounds} rounds")
    table("ship one image (save, carry, load)", "MB/s", rows, "x OpenSSH")
    print(
        f"\nship_images through the tunnel runs at {rows[1][1] / rows[0][1]:.2f}x the speed of"
        " `docker save | ssh vm docker load`."
    )


if __name__ == "__main__":
    main()
