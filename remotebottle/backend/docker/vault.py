"""The bottle's vault: a tmpfs volume that sidecars mount read-only for their secrets.

Files reach it through an exec's stdin into a small holder container that keeps
the tmpfs mounted for the bottle's life. Nothing in it is ever on the engine's
disk, in a container's env or on a command line.
"""

from __future__ import annotations

import docker
import docker.errors

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.provision import TarBuilder
from remotebottle.backend.docker.streams import exec_with_stdin
from remotebottle.errors import BottleError, EngineError

MOUNT = "/vault"


class Vault:
    def __init__(self, client: docker.DockerClient, identity: str, agent: str, image: str) -> None:
        self._client = client
        self.identity = identity
        self.volume = f"rb-{identity}-vault"
        self._labels = L.labels(identity, agent, L.ROLE_SECRETS)
        self._image = image
        self._holder: str | None = None

    @classmethod
    def attach(cls, client: docker.DockerClient, identity: str) -> Vault:
        """The vault of a running bottle, to replace files in it."""
        holders = L.find(client, role=L.ROLE_SECRETS, identity=identity, running_only=True)
        if not holders:
            raise BottleError(f"bottle {identity} has no running vault")
        holder = holders[0]
        vault = cls(client, identity, holder.labels.get(L.AGENT, "?"), "")
        vault._holder = holder.id
        return vault

    def open(self) -> None:
        """Create the tmpfs volume and start its holder."""
        try:
            self._client.volumes.create(
                name=self.volume,
                driver="local",
                driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=8m,mode=0711"},
                labels=self._labels,
            )
            holder = self._client.containers.run(
                self._image,
                ["infinity"],
                entrypoint=["sleep"],
                name=f"rb-{self.identity}-vault",
                detach=True,
                user="root",
                network_mode="none",
                cap_drop=["ALL"],
                cap_add=["CHOWN", "FOWNER", "DAC_OVERRIDE"],
                security_opt=["no-new-privileges"],
                labels=self._labels,
                volumes={self.volume: {"bind": MOUNT, "mode": "rw"}},
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not create the bottle's vault: {exc}") from None
        self._holder = holder.id

    def put(self, directory: str, files: dict[str, bytes], uid: int = 0) -> None:
        """Write `files` into `directory` of the vault, readable only by `uid`."""
        if self._holder is None:
            raise BottleError("the vault is not open")
        tar = TarBuilder(uid=uid)
        for name, data in files.items():
            tar.file(name, data, 0o400)
        target = f"{MOUNT}/{directory}"
        script = (
            f"set -eu; umask 077; mkdir -p {target}; tar -x -C {target}; "
            f"chown {uid}:{uid} {target}; chmod 0500 {target}"
        )
        code, _, err = exec_with_stdin(
            self._client, self._holder, ["sh", "-c", script], tar.bytes()
        )
        if code != 0:
            raise EngineError(f"could not fill the bottle's vault: {err.decode()[:200]}")

    def read(self, directory: str, name: str) -> bytes:
        """A file of the vault (to change it): it travels back inside the engine connection."""
        if self._holder is None:
            raise BottleError("the vault is not open")
        code, out, err = exec_with_stdin(
            self._client, self._holder, ["cat", f"{MOUNT}/{directory}/{name}"], b""
        )
        if code != 0:
            raise EngineError(f"could not read {directory}/{name} from the vault: {err.decode()}")
        return out
