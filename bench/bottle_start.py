"""Bench: start-to-first-output of a bottle vs a bare `docker run` of the agent image.

Both are measured in the same run on the same engine, alternating, and printed
as medians and a ratio. The bottle has its egress proxy when the pinned pipelock image
is on the engine (what the proxy costs per request: bench/egress.py).

    python bench/bottle_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from remotebottle import pins
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.images import build_agent_image, has_image
from remotebottle.backend.docker.streams import iter_frames
from remotebottle.backend.spec import BottleSpec, Command
from remotebottle.state import mint_identity


def first_output(client: docker.DockerClient, container_id: str, go: Callable[[], None]) -> None:
    """Attach, let the container's command run (`go`), block until its first output."""
    sock = client.api.attach_socket(container_id, params={"stdout": 1, "stream": 1})
    try:
        go()
        for _stream, _data in iter_frames(sock):
            return
        raise RuntimeError(f"{container_id[:12]} ended without output")
    finally:
        sock.close()


def bare_run(client: docker.DockerClient, image: str) -> float:
    start = time.perf_counter()
    container = client.containers.create(
        image, ["first-output"], entrypoint=["echo"], network_mode="none"
    )
    try:
        first_output(client, str(container.id), container.start)
        return time.perf_counter() - start
    finally:
        container.remove(force=True)


def bottle_run(client: docker.DockerClient) -> float:
    backend = DockerBottleBackend(client)
    spec = BottleSpec(
        identity=mint_identity("bench"),
        agent="bench",
        bottle="bench",
        command=Command(mode="exec", argv=("echo", "first-output")),
        egress_enabled=has_image(client, pins.pipelock_image()),
    )
    start = time.perf_counter()
    with backend.launch(backend.prepare(spec), LaunchOptions(tty=False)) as bottle:
        first_output(client, bottle.agent_container, lambda: backend.release(bottle))
        elapsed = time.perf_counter() - start
    return elapsed


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    image = build_agent_image(client, lambda msg: print(msg, file=sys.stderr))
    with_proxy = has_image(client, pins.pipelock_image())
    bare_run(client, image)  # warm the page cache for both
    bottle_run(client)
    bare, bottled = [], []
    for _ in range(args.runs):
        bare.append(bare_run(client, image))
        bottled.append(bottle_run(client))
    engine = client.version().get("Version")
    b, s = statistics.median(bare), statistics.median(bottled)
    print(f"machine: {machine()}; Docker {engine}; runs: {args.runs} each, alternating")
    print(f"{'measure':48} {'median':>9}  ratio")
    print(f"{'bare docker run of the agent image (baseline)':48} {b * 1000:7.0f}ms  1.00")
    label = (
        "bottle start (egress proxy + vault + network)"
        if with_proxy
        else ("bottle start (sealed: no egress proxy)")
    )
    print(f"{label:48} {s * 1000:7.0f}ms  {s / b:4.2f}")
    if not with_proxy:
        print(
            f"the egress proxy is not measured: {pins.pipelock_image()} is not on this engine"
            " (`make pipelock-image`; bench/egress.py measures what it costs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
