"""The host is not on the agent's network: nothing it serves on 0.0.0.0 answers the agent.

A Docker `--internal` network still gives the host an address on its bridge (the gateway).
These tests serve on every host address, then try it from inside real bottles, locally
and on a fake VM (whose sshd is the service a hostile agent would go for).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator

import docker
import pytest

from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command
from remotebottle.hosts.engine import open_engine
from remotebottle.ops.images import place_images
from tests.e2e.vmparts import target, vm
from tests.integration.fakevm import FakeVm, fakevm

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

# Prints "<address>:<port> open|closed" for each argument; 3 s per attempt at most.
PROBE = r"""
for target in "$@"; do
  if timeout 3 bash -c "echo > /dev/tcp/${target%:*}/${target##*:}" 2>/dev/null; then
    echo "$target open"
  else
    echo "$target closed"
  fi
done
"""


@pytest.fixture
def host_service() -> Iterator[int]:
    """A TCP service on every address of this host; yields its port."""
    server = socket.create_server(("0.0.0.0", 0))  # noqa: S104 - the point of the test
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    found = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in found if not a.startswith("127.")]


def gateway_spec(egress: bool) -> BottleSpec:
    return BottleSpec(
        identity=f"gw-{secrets.token_hex(3)[:5]}",
        agent="gw",
        bottle="b",
        command=Command(mode="exec", argv=("sleep", "infinity")),
        egress_enabled=egress,
    )


def probe_from_bottle(backend: DockerBottleBackend, spec: BottleSpec, targets: list[str]) -> str:
    """Start the bottle; its agent probes `targets` (GATEWAY: its network's gateway)."""
    client = backend.client
    with backend.launch(backend.prepare(spec), LaunchOptions(tty=False)) as bottle:
        backend.release(bottle)
        agent = client.containers.get(bottle.agent_container)
        internal = client.networks.get(next(iter(agent.attrs["NetworkSettings"]["Networks"])))
        gateway = internal.attrs["IPAM"]["Config"][0]["Gateway"]
        filled = [t.replace("GATEWAY", gateway) for t in targets]
        result = agent.exec_run(["bash", "-c", PROBE, "probe", *filled], user="1000")
        return str(result.output.decode())


@pytest.mark.parametrize("egress", [False, True], ids=["sealed", "with-egress"])
def test_the_agent_cannot_reach_what_the_host_serves(
    docker_client: docker.DockerClient,
    host_service: int,
    egress: bool,
    request: pytest.FixtureRequest,
) -> None:
    if egress:
        request.getfixturevalue("pipelock_image")
    targets = [f"GATEWAY:{host_service}", "GATEWAY:22"]
    targets += [f"{address}:{host_service}" for address in host_addresses()]
    out = probe_from_bottle(DockerBottleBackend(docker_client), gateway_spec(egress), targets)
    lines = out.strip().splitlines()
    assert len(lines) == len(targets), out
    assert all(line.endswith(" closed") for line in lines), out


def test_on_a_vm_the_agent_cannot_reach_the_vms_sshd(vm: FakeVm, agent_image: str) -> None:
    with open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine:
        backend = DockerBottleBackend(engine.client)
        spec = gateway_spec(egress=False)
        place_images(engine, backend.prepare(spec), progress=lambda _m: None)
        out = probe_from_bottle(backend, spec, ["GATEWAY:22", "GATEWAY:2375"])
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(line.endswith(" closed") for line in lines), out
