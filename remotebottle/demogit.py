"""`rbottle demo`'s git upstream: an OpenSSH server with an empty bare repository.

The bottle reaches it only through its git gate. Both SSH keys (the server's host key
and the client key the gate holds) are made fresh for each run and thrown away after;
the client key sits in a private temporary directory while the demo runs, since a git
remote's `IdentityFile` is a path.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import BottleNetworks
from remotebottle.backend.docker.images import (
    build_agent_image,
    build_image,
    has_image,
    inputs_hash,
)
from remotebottle.backend.docker.provision import TarBuilder
from remotebottle.backend.spec import GitRemoteSpec
from remotebottle.errors import EngineError
from remotebottle.sshkeys import new_ed25519

HOST = "demo-git"
USER = "git"
REPO_URL = f"ssh://{USER}@{HOST}/home/{USER}/demo.git"
REPOSITORY = "remotebottle/demo-git"
ROLE = "demo-git"

Progress = Callable[[str], None]

_START = f"""set -e
chown -R {USER}:{USER} /home/{USER}/.ssh
su {USER} -s /bin/sh -c 'git init -q --bare -b main /home/{USER}/demo.git'
exec /usr/sbin/sshd -D -e
"""


def _context() -> dict[str, bytes]:
    root = resources.files("remotebottle").joinpath("resources/demo")
    return {"Dockerfile": root.joinpath("Dockerfile").read_bytes()}


def build_demo_git_image(client: docker.DockerClient, progress: Progress) -> str:
    """The upstream's image (the agent image plus openssh-server), built if missing."""
    agent = build_agent_image(client, progress)
    ref = f"{REPOSITORY}:{inputs_hash(_context(), agent)}"
    if not has_image(client, ref):
        progress(f"building {ref} (first time only)")
        build_image(client, ref, _context(), {"AGENT_IMAGE": agent}, progress)
    return ref


@dataclass(frozen=True)
class DemoGit:
    key_path: Path
    client_public: str
    host_private: bytes
    host_public: str

    def remote(self) -> GitRemoteSpec:
        """The bottle's `git` entry for this upstream."""
        return GitRemoteSpec(
            host=HOST,
            user=USER,
            port=22,
            known_host_key=self.host_public,
            identity_file=self.key_path,
        )

    def start(self, client: docker.DockerClient, image: str, networks: BottleNetworks) -> None:
        """Run the server on the bottle's outside network; removed with the bottle."""
        assert networks.egress, "a bottle with git remotes has an outside network"
        host_keys = TarBuilder(uid=0)
        host_keys.file("ssh_host_ed25519_key", self.host_private, 0o600)
        host_keys.file("ssh_host_ed25519_key.pub", self.host_public.encode() + b"\n", 0o644)
        authorized = TarBuilder(uid=0)
        authorized.file("authorized_keys", self.client_public.encode() + b"\n", 0o600)
        try:
            server = client.containers.create(
                image,
                ["sh", "-c", _START],
                name=f"rb-{networks.identity}-demo-git",
                labels=L.labels(networks.identity, networks.agent, ROLE),
                network=networks.egress,
                networking_config={
                    networks.egress: client.api.create_endpoint_config(aliases=[HOST])
                },
            )
            server.put_archive("/etc/ssh", host_keys.bytes())
            server.put_archive(f"/home/{USER}/.ssh", authorized.bytes())
            server.start()
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not start the demo's git upstream: {exc}") from None


@contextlib.contextmanager
def demo_git() -> Iterator[DemoGit]:
    """Fresh keys for one demo run; the client key's directory is removed at the end."""
    with tempfile.TemporaryDirectory(prefix="rbottle-demo-git-") as scratch:
        key_path = Path(scratch) / "id_ed25519"
        client_private, client_public = new_ed25519()
        key_path.touch(mode=0o600)
        key_path.write_text(client_private)
        host_private, host_public = new_ed25519()
        yield DemoGit(key_path, client_public, host_private.encode(), host_public)


def push_probe_script(leak: str) -> str:
    """Clone through the gate, commit `leak` as a credentials file, push; print the verdict:
    `refused` (the gate's secret scan said no), `pushed`, or what else went wrong."""
    return f"""
cd "$(mktemp -d)"
git clone -q {REPO_URL} demo 2>/dev/null || {{ echo clone-failed; exit 0; }}
cd demo
printf '%s\\n' '{leak}' > credentials
git add credentials
git -c user.name=demo -c user.email=demo@bottle.invalid commit -q -m 'add credentials'
out=$(git push origin HEAD:main 2>&1) && {{ echo pushed; exit 0; }}
case "$out" in *"push refused: gitleaks found"*) echo refused ;; *) echo push-failed ;; esac
"""
