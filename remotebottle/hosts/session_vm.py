"""What another `rbottle` process on this machine learns of a live session: whether the
process running it is still there, and how to reach the cloud VM made for it.

Presence: each process running a session (start, resume, attach) holds a shared lock on
`state/<identity>/session.lock` while it does (`claim`). The kernel drops the lock with
the process, kill -9 included, so `claimed` tells a live session from one whose `rbottle`
was killed (`rbottle cleanup --orphans`).

A VM made for one session is recorded from its creation to its destruction, for
`rbottle attach` to take the session over when the process that made it was killed:
`vm.json` holds the provider's id for it, its address, SSH port and user, the host key
the provider reported (the only one accepted) and what `list` shows; `vm_key` holds the
session's SSH login key (the private half: only the public half is on the VM). Both are
mode 0600 in the 0700 state dir, for this user only, and both are removed when the VM is
destroyed (by the session, by an attach that ends it, or by `rbottle cleanup --orphans`
once the VM is gone or swept). While a session's Docker tunnel is open, `vm.json` also
holds the local unix socket it listens on (`docker_host`): `rbottle dashboard` and `list`
talk to the VM's engine through it, and through a tunnel of their own, opened with the
recorded key, once the session's process is gone.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from remotebottle import state
from remotebottle.errors import BottleError
from remotebottle.hosts.provider import Machine

RECORD = "vm.json"
LOGIN_KEY = "vm_key"
LOCK = "session.lock"


@dataclass(frozen=True)
class SessionVm:
    """A session's VM: the provider's id for it, and the session's tunnel to its Docker
    engine (`unix://...`), "" when no process of the session has one open now."""

    machine_id: str
    docker_host: str


def _path(session: str, name: str = RECORD) -> Path:
    return state.state_dir(session) / name


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # made afresh: never an older file's mode, nor a link
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def _read(session: str) -> dict[str, Any] | None:
    path = _path(session)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BottleError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise BottleError(f"{path}: unreadable: not a VM record")
    return data


# -- the tunnel of the process running the session -------------------------------------


def publish(session: str, vm: SessionVm) -> None:
    """Say where the session's tunnel is (and which VM), keeping a recorded machine."""
    data = _read(session) or {}
    data.update(machine_id=vm.machine_id, docker_host=vm.docker_host)
    _write_private(_path(session), json.dumps(data))


def withdraw(session: str) -> None:
    """The session's tunnel is closed: forget it (the VM's record stays while it lives)."""
    try:
        data = _read(session)
    except BottleError:
        data = None
    if data is not None and "machine" in data:
        _write_private(_path(session), json.dumps({**data, "docker_host": ""}))
        return
    with contextlib.suppress(FileNotFoundError):
        _path(session).unlink()


def published(session: str) -> SessionVm | None:
    """The VM of session `session` as far as another process can reach it: through the
    session's tunnel while its socket lives, else (`docker_host` "") by its record; None
    when there is neither (the session ended, its VM was kept for reuse and its process
    was killed, or it has no VM yet)."""
    data = _read(session)
    if data is None:
        return None
    path = _path(session)
    try:
        vm = SessionVm(machine_id=str(data["machine_id"]), docker_host=str(data["docker_host"]))
    except KeyError as exc:
        raise BottleError(f"{path}: unreadable: no {exc}") from None
    if vm.docker_host and not vm.docker_host.startswith("unix:///"):  # only ever ours
        raise BottleError(f"{path}: not a local tunnel: {vm.docker_host}")
    recorded = "machine" in data
    tunnel = vm.docker_host.removeprefix("unix://")
    # A killed session leaves its socket file: with a record to go by, ask the socket.
    if vm.docker_host and Path(tunnel).is_socket() and (not recorded or _listening(tunnel)):
        return vm
    return SessionVm(vm.machine_id, "") if recorded else None


def _listening(path: str) -> bool:
    """Whether a process listens on unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


# -- the VM made for the session --------------------------------------------------------


def record(session: str, machine: Machine) -> None:
    """Keep what it takes to reach `machine` again, its login key included (mode 0600)."""
    described = asdict(machine)
    described.pop("login_key")
    if machine.expires_at is not None:
        described["expires_at"] = machine.expires_at.isoformat()
    _write_private(_path(session, LOGIN_KEY), machine.login_key)
    data = _read(session) or {}
    data.update(machine_id=machine.machine_id, machine=described)
    data.setdefault("docker_host", "")
    _write_private(_path(session), json.dumps(data))


def recorded(session: str) -> Machine | None:
    """The VM session `session` made and has not destroyed, with its login key; None when
    none is recorded.

    Raises:
        BottleError: the record or its key cannot be read.
    """
    data = _read(session)
    if data is None or "machine" not in data:
        return None
    path = _path(session)
    described = data["machine"]
    known = {f.name for f in fields(Machine)} - {"login_key"}
    try:
        if not isinstance(described, dict) or set(described) - known:
            raise ValueError("not a machine")
        expires = described.get("expires_at")
        if expires is not None:
            described = {**described, "expires_at": datetime.datetime.fromisoformat(expires)}
        login_key = _path(session, LOGIN_KEY).read_text()
        return Machine(**described, login_key=login_key)
    except FileNotFoundError:
        raise BottleError(
            f"{path}: the session's login key is gone",
            hint="`rbottle cleanup --orphans` destroys its VM",
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise BottleError(f"{path}: unreadable: {exc}") from None


def forget(session: str) -> None:
    """The VM is destroyed (or gone): remove its record and its login key."""
    for name in (LOGIN_KEY, RECORD):
        with contextlib.suppress(FileNotFoundError):
            _path(session, name).unlink()


# -- presence -----------------------------------------------------------------------------


@contextlib.contextmanager
def claim(session: str) -> Iterator[None]:
    """Hold session `session` for this process until the block ends (or the process does)."""
    path = _path(session, LOCK)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        # A process that had it last may have removed it meanwhile: lock the file in place.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else holds it: tidy up
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # a session that failed before it wrote anything
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


def claimed(session: str) -> bool:
    """Whether a process on this machine is running session `session` now."""
    try:
        fd = os.open(_path(session, LOCK), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
