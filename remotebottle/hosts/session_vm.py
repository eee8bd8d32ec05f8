"""How another `rbottle` process on this machine reaches a live session's cloud VM.

The session that made the VM publishes, in its state dir, the local unix socket of its
Docker tunnel (mode 0600 in a 0700 directory, so only this user can use it), and
withdraws it when the session ends; `rbottle dashboard` talks to the VM's engine
through it. No key is written anywhere for this, and nothing outlives the session: a
session killed with -9 leaves a record whose socket is gone, and that is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from remotebottle import state
from remotebottle.errors import BottleError

RECORD = "vm.json"


@dataclass(frozen=True)
class SessionVm:
    """A live session's VM: the provider's id for it, and the session's tunnel to its
    Docker engine (`unix://...`)."""

    machine_id: str
    docker_host: str


def _path(session: str) -> Path:
    return state.state_dir(session) / RECORD


def publish(session: str, vm: SessionVm) -> None:
    path = _path(session)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(vm), out)
    tmp.replace(path)


def withdraw(session: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _path(session).unlink()


def published(session: str) -> SessionVm | None:
    """The VM session `session` published, or None when it has none: it ended, or it
    was killed and its tunnel's socket went with it."""
    path = _path(session)
    try:
        data = json.loads(path.read_text())
        vm = SessionVm(machine_id=str(data["machine_id"]), docker_host=str(data["docker_host"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BottleError(f"{path}: unreadable: {exc}") from None
    if not vm.docker_host.startswith("unix:///"):  # only ever a local socket of ours
        raise BottleError(f"{path}: not a local tunnel: {vm.docker_host}")
    return vm if Path(vm.docker_host.removeprefix("unix://")).is_socket() else None
