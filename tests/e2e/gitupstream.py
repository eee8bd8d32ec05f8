"""A real upstream git server for the git gate's tests: sshd + git + a bare repository.

The server is the bare fake VM plus git (`tests/harness/images/git-upstream`), run on the
engine under test (local, or a fake VM's). Its sshd is published on the engine's default
bridge gateway only, so the gate reaches it the way it reaches any upstream (through its
outside network and the host's NAT) under a made-up name that only the gate's
`ExtraHosts` resolves. Everything it creates carries `io.remotebottle.test=1`.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from remotebottle.backend.spec import GitRemoteSpec
from tests.integration.fakevm import (
    FAKEVM_BARE_IMAGE,
    TEST_LABEL,
    generate_ed25519,
    skip_unless_image,
)

HARNESS = Path(__file__).resolve().parents[1] / "harness"
UPSTREAM_IMAGE = "rbottle-test/git-upstream:latest"
UPSTREAM_HOST = "git.upstream.test"
USER = "admin"
REPO = f"/home/{USER}/project.git"

SEED = f"""
set -e
git init -q --bare -b main {REPO}
tmp=$(mktemp -d)
git -C "$tmp" init -q -b main
echo "hello from upstream" > "$tmp/README"
git -C "$tmp" add README
git -C "$tmp" -c user.name=up -c user.email=up@test commit -q -m first
git -C "$tmp" push -q {REPO} main
rm -rf "$tmp"
"""


def ensure_upstream_image(client: docker.DockerClient) -> str:
    """The upstream image on `client`'s engine, built from the bare fake VM if missing."""
    try:
        client.images.get(UPSTREAM_IMAGE)
        return UPSTREAM_IMAGE
    except docker.errors.ImageNotFound:
        pass
    skip_unless_image(client, FAKEVM_BARE_IMAGE)
    context = HARNESS / "images" / "git-upstream"
    client.images.build(path=str(context), tag=UPSTREAM_IMAGE, rm=True, labels={TEST_LABEL: "1"})
    return UPSTREAM_IMAGE


@dataclass
class Upstream:
    """A running upstream: how the gate reaches it, and its repository."""

    container: Container
    address: str
    port: int
    key_path: Path
    host_key: str

    def spec(self, **allow: bool) -> GitRemoteSpec:
        """This upstream as a bottle's git remote; `allow` sets its push policy
        (`allow_force_push`, `allow_deletes`, `allow_ci_changes`)."""
        return GitRemoteSpec(
            host=UPSTREAM_HOST,
            user=USER,
            port=self.port,
            known_host_key=self.host_key,
            identity_file=self.key_path,
            extra_hosts={UPSTREAM_HOST: self.address},
            **allow,
        )

    def manifest_entry(self) -> dict[str, Any]:
        """This upstream as a bottle's `git` entry in claude-bottle.json."""
        return {
            "Host": UPSTREAM_HOST,
            "User": USER,
            "Port": self.port,
            "IdentityFile": str(self.key_path),
            "KnownHostKey": self.host_key,
            "ExtraHosts": {UPSTREAM_HOST: self.address},
        }

    @property
    def ssh_url(self) -> str:
        return f"ssh://{USER}@{UPSTREAM_HOST}:{self.port}{REPO}"

    def git(self, *args: str) -> tuple[int, str]:
        """`git --git-dir=<the bare repo> ARGS` on the server, as its user."""
        code, out = self.container.exec_run(["git", f"--git-dir={REPO}", *args], user=USER)
        return int(code), out.decode(errors="replace").strip()

    def commit(self, name: str, text: str) -> str:
        """A new commit on main, made on the server; returns its id."""
        script = (
            f"set -e; tmp=$(mktemp -d); git clone -q {REPO} $tmp; cd $tmp;"
            f" echo '{text}' > {name}; git add {name};"
            f" git -c user.name=up -c user.email=up@test commit -q -m 'add {name}';"
            " git push -q origin main; git rev-parse HEAD"
        )
        code, out = self.container.exec_run(["sh", "-c", script], user=USER)
        assert code == 0, out
        return out.decode().strip().splitlines()[-1]


def bridge_gateway(client: docker.DockerClient) -> str:
    """The engine's default bridge gateway: a host address every bridge network routes to."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    if "Gateway" in config:
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))  # docker0 takes the first


@contextlib.contextmanager
def start_upstream(client: docker.DockerClient, workdir: Path) -> Iterator[Upstream]:
    """An upstream server on `client`'s engine with a seeded repo, removed at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    key_path = workdir / "upstream_ed25519"
    client_key = generate_ed25519(key_path)
    address = bridge_gateway(client)
    container = client.containers.run(
        UPSTREAM_IMAGE,
        detach=True,
        name=f"rbt-git-upstream-{secrets.token_hex(3)}",
        ports={"22/tcp": (address,)},
        environment={
            "FAKEVM_AUTHORIZED_KEYS": f"{client_key.get_name()} {client_key.get_base64()}"
        },
        labels={TEST_LABEL: "1"},
    )
    try:
        deadline = time.monotonic() + 60
        container.reload()
        port = int(container.ports["22/tcp"][0]["HostPort"])
        host_key = _host_key(container, deadline)
        _wait_for_sshd(container, deadline)
        code, out = container.exec_run(["sh", "-c", SEED], user=USER)
        assert code == 0, out
        yield Upstream(container, address, port, key_path, host_key)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def _host_key(container: Container, deadline: float) -> str:
    while True:
        code, out = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        fields = out.decode(errors="replace").split()
        if code == 0 and len(fields) >= 2:
            base64.b64decode(fields[1])
            return f"{fields[0]} {fields[1]}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{container.name}: no host key: {out!r}")
        time.sleep(0.2)


def _wait_for_sshd(container: Container, deadline: float) -> None:
    """Until sshd answers inside the server (the published port is reachable from bottles
    only, not necessarily from this process)."""
    probe = "exec 3<>/dev/tcp/127.0.0.1/22 && head -c 4 <&3"
    while time.monotonic() < deadline:
        code, out = container.exec_run(["bash", "-c", probe])
        if code == 0 and out.startswith(b"SSH-"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{container.name}: sshd did not start")


def private_key_needle(key_path: Path) -> str:
    """A line of the private key's secret part: found only where the key itself is (the
    first lines of every OpenSSH key are alike, the next ones hold the public key)."""
    lines = [line for line in key_path.read_text().splitlines() if "-----" not in line]
    return lines[-2]
