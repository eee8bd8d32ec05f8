"""End-to-end fixtures: the real engine, the real agent image, a fake Messages API.

Every test here must leave nothing labelled as ours behind; the autouse
`no_leftovers` fixture checks that after each test.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from remotebottle import pins
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import BottleNetworks, DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.images import build_agent_image
from remotebottle.backend.spec import BottlePlan
from remotebottle.ops.stream import stream_output
from tests.e2e.tls import server_tls
from tests.integration.conftest import docker_client, require, require_pipelock

__all__ = ["docker_client"]

HARNESS = Path(__file__).resolve().parents[1] / "harness"
FAKE_API_ALIAS = "fake-api"
FAKE_API_URL = f"http://{FAKE_API_ALIAS}:8080"
TEST_LABEL = "io.remotebottle.test"
RBOTTLE = (sys.executable, "-m", "remotebottle")


def rbottle(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`rbottle ARGS` in `project`, no stdin, output captured; `env` added to ours."""
    return subprocess.Popen(
        [*RBOTTLE, *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) once `proc` ends."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def owned(client: docker.DockerClient) -> list[str]:
    flt: dict[str, Any] = {"label": [f"{L.OWNER}=1"]}
    return [
        *(f"container {c.name}" for c in client.containers.list(all=True, filters=flt)),
        *(f"network {n.name}" for n in client.networks.list(filters=flt)),
        *(f"volume {v.name}" for v in client.volumes.list(filters=flt)),
    ]


# Two pytest runs on one engine would each see the other's bottles as leaked: e2e tests
# take this lock, one test at a time across processes.
E2E_LOCK = Path(os.environ.get("RB_E2E_LOCK", "/tmp/rbottle-e2e.lock"))


@pytest.fixture(autouse=True)
def no_leftovers(docker_client: docker.DockerClient) -> Iterator[None]:
    with E2E_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = set(owned(docker_client))
        yield
        deadline = time.monotonic() + 10
        while (leaked := set(owned(docker_client)) - before) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not leaked, f"left behind: {sorted(leaked)}"


@pytest.fixture(scope="session")
def agent_image(docker_client: docker.DockerClient) -> str:
    """Build (or find) the agent image: the first build takes a few minutes."""
    return build_agent_image(docker_client, lambda _msg: None)


@pytest.fixture(scope="session")
def pipelock_image(docker_client: docker.DockerClient) -> str:
    require_pipelock(docker_client)
    return pins.pipelock_image()


def run_to_end(
    backend: DockerBottleBackend, plan: BottlePlan, options: LaunchOptions
) -> tuple[int, io.BytesIO, io.BytesIO]:
    """Launch `plan`, stream its output to the end: (exit code, stdout, stderr)."""
    out, err = io.BytesIO(), io.BytesIO()
    with backend.launch(plan, options) as bottle:
        code = stream_output(
            backend.client,
            bottle.agent_container,
            stdout=out,
            stderr=err,
            on_attached=lambda: backend.release(bottle),
        )
    return code, out, err


class FakeApi:
    """The fake Messages API in a container of its own, joined to a bottle's network."""

    def __init__(
        self,
        client: docker.DockerClient,
        image: str,
        reply: str,
        tls: bool = False,
        *,
        names: tuple[str, ...] = (FAKE_API_ALIAS,),
        port: int = 8080,
    ) -> None:
        """Reached as `names` on `port`. With `tls`, it serves HTTPS with a certificate for
        them from a fresh CA (`self.tls.ca_pem`) at `self.url`."""
        self.client = client
        self.names, self.port = names, port
        self.tls = server_tls(*names) if tls else None
        self.url = f"{'https' if tls else 'http'}://{names[0]}:{port}"
        files = {"server.py": (HARNESS / "fake_anthropic" / "server.py").read_bytes()}
        tls_args: list[str] = []
        if self.tls:
            files |= {"ca.pem": self.tls.ca_pem, "cert.pem": self.tls.cert_pem}
            files["key.pem"] = self.tls.key_pem
            tls_args = ["--tls-cert", "/srv/cert.pem", "--tls-key", "/srv/key.pem"]
        self.container = client.containers.create(
            image,
            ["/srv/server.py", "--port", str(port), "--reply", reply, *tls_args],
            entrypoint=["python3"],
            user="1000",
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
            name=f"rb-test-fakeapi-{secrets.token_hex(3)}",
            labels={TEST_LABEL: "1"},
            network_mode="none",
        )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.uid, info.mode = len(data), 1000, 0o600
                tar.addfile(info, io.BytesIO(data))
        self.container.put_archive("/srv", buffer.getvalue())

    def join(self, networks: BottleNetworks) -> None:
        """Connect to the network upstreams are reached on (the egress network when the
        bottle has a proxy, else its internal one) as fake-api, start, wait for it."""
        self.join_network(networks.egress or networks.internal)

    def join_network(self, network: str) -> None:
        """Connect to `network` under its names, start, wait until it listens."""
        net = self.client.networks.get(network)
        self.client.api.disconnect_container_from_network(self.container.id, "none")
        net.connect(self.container, aliases=list(self.names))
        self.container.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.container.reload()
            if "listening" in self.container.logs().decode():
                return
            time.sleep(0.1)
        raise AssertionError(f"fake API did not start: {self.container.logs().decode()}")

    def join_internal_too(self, networks: BottleNetworks) -> None:
        """`join`, and the bottle's internal network as well, so that the agent reaches this
        API directly too (the benches' baseline)."""
        self.join(networks)
        self.client.networks.get(networks.internal).connect(
            self.container, aliases=list(self.names)
        )

    def requests(self) -> list[dict[str, Any]]:
        # From inside its own container: it may have left the bottle's network already.
        if self.tls:
            at = f"{self.names[0]}:{self.port}:127.0.0.1"
            argv = [
                "curl",
                "-s",
                "--cacert",
                "/srv/ca.pem",
                "--resolve",
                at,
                f"{self.url}/_requests",
            ]
        else:
            argv = ["curl", "-s", f"http://127.0.0.1:{self.port}/_requests"]
        result = self.container.exec_run(argv)
        return list(json.loads(result.output))

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        scheme = "https" if self.tls else "http"
        at = f"{self.names[0]}:{self.port}:127.0.0.1"
        tls = ["--cacert", "/srv/ca.pem", "--resolve", at] if self.tls else []
        url = f"{scheme}://{self.names[0]}:{self.port}/_requests"
        result = self.container.exec_run(["curl", "-s", "-X", "DELETE", *tls, url])
        assert result.exit_code == 0, result.output

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.container.remove(force=True)


@pytest.fixture
def fake_api(
    docker_client: docker.DockerClient, agent_image: str
) -> Iterator[Callable[..., FakeApi]]:
    made: list[FakeApi] = []

    def make(reply: str = "Hello from the fake Messages API.", tls: bool = False) -> FakeApi:
        api = FakeApi(docker_client, agent_image, reply, tls)
        made.append(api)
        return api

    yield make
    for api in made:
        api.remove()


__all__ += ["FAKE_API_URL", "FakeApi", "require", "run_to_end"]
