"""VMs made per session: from a cloud `hosts` entry to an SSH connection, and back to nothing.

`session_machine` creates the session's VM through its provider, connects with the
host key the provider reported (never trust-on-first-use) and the login key made for
it, keeps the VM's dead-man timer fed while the session lives, and destroys the VM at
the end (unless the entry says `reuse`), whatever happens in between. A reused VM's
login key waits for the next session in the local state dir (mode 0600). A VM made for
one session is recorded in the session's state dir, its login key with it (mode 0600,
`session_vm`), until it is destroyed: `taken_over` is that VM for an `rbottle attach`
after the process that made it was killed, destroyed when that attach ends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from remotebottle import state
from remotebottle.errors import ConnectError, HostError
from remotebottle.hosts import session_vm
from remotebottle.hosts.provider import Machine, Provider
from remotebottle.hosts.resolve import HostTarget
from remotebottle.interrupts import no_interrupts, termination_as_interrupt
from remotebottle.transport.endpoint import SshEndpoint

if TYPE_CHECKING:  # paramiko is loaded only when a VM is used
    import paramiko

    from remotebottle.transport.ssh import SshConnection

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

HEARTBEAT_FILE = "/run/rbottle/heartbeat"
HEARTBEAT_SECONDS = 60.0
HEARTBEAT_RETRY_SECONDS = 5.0  # after a beat that did not get through


def _public_key(line: str) -> paramiko.PKey:
    import paramiko

    try:
        kind, blob = line.split()[:2]
        return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    except (ValueError, binascii.Error, paramiko.SSHException) as exc:
        raise ConnectError(f"the provider reported an unusable host key: {exc}") from None


def _private_key(pem: str) -> paramiko.PKey | None:
    import paramiko

    if not pem:
        return None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        with contextlib.suppress(paramiko.SSHException):
            return kind.from_private_key(io.StringIO(pem))
    raise ConnectError("the provider's login key cannot be read")


def connect_machine(machine: Machine, name: str, connect_timeout: float) -> SshConnection:
    """An SSH connection to `machine`: its reported host key only, its session key only."""
    from remotebottle.transport.ssh import SshConnection

    endpoint = SshEndpoint(
        address=machine.address,
        port=machine.port,
        user=machine.user,
        connect_timeout=connect_timeout,
    )
    return SshConnection(
        endpoint,
        name=name,
        expected_host_key=_public_key(machine.host_key),
        session_key=_private_key(machine.login_key),
    ).connect()


class Heartbeat:
    """Renews the VM's dead-man heartbeat over the session's connection until stopped.

    A beat that does not get through (the network is down; the link watch has closed the
    connection, which `ops.link.reconnect` opens again in place) is tried again every
    `retry` seconds instead of at the next interval: a cut that swallows a beat must not
    cost the VM a whole interval of its TTL once the link is back. `renew_soon` beats at
    once (after a reconnect).
    """

    def __init__(
        self,
        conn: SshConnection,
        interval: float = HEARTBEAT_SECONDS,
        on_beat: Callable[[], None] | None = None,
        retry: float = HEARTBEAT_RETRY_SECONDS,
    ) -> None:
        self._conn = conn
        self._interval = interval
        self._retry = min(retry, interval)
        self._on_beat = on_beat or (lambda: None)
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="rbottle-heartbeat", daemon=True)

    def beat(self) -> None:
        """Renew the heartbeat now.

        Raises:
            HostError: the VM refused (the session would be cut short by its timer).
            ConnectError: the connection is down.
        """
        code, _, err = self._conn.run(f"touch {HEARTBEAT_FILE}", timeout=30)
        if code != 0:
            raise HostError(
                f"cannot renew the VM's dead-man heartbeat: {err.decode(errors='replace').strip()}",
                hint="the VM would power itself off mid-session; was it made from our user-data?",
            )
        self._on_beat()

    def renew_soon(self) -> None:
        """Beat now, on the heartbeat's thread (the link is back after a cut)."""
        self._wake.set()

    def _run(self) -> None:
        pause = self._interval
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.beat()
                pause = self._interval
            except Exception as exc:  # keep beating; the VM's timer is the backstop
                pause = self._retry
                # While the link is down the CLI says so itself; a refusal over a live link
                # is what the user must hear about.
                quiet = isinstance(exc, ConnectError) or not self._conn.is_active()
                log.log(
                    logging.DEBUG if quiet else logging.WARNING, "heartbeat not renewed: %s", exc
                )

    def __enter__(self) -> Heartbeat:
        self.beat()  # fails loudly before the session starts
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def session_machine(
    host: HostTarget, identity: str, *, progress: Progress
) -> Iterator[tuple[Machine, Provider]]:
    """The VM of session `identity` on cloud host `host`, destroyed on the way out unless
    the entry says `reuse` (Ctrl-C included: the destroy runs before the interrupt ends us)."""
    provider = host.cloud_provider()
    reuse = host.reuse
    # A reused VM belongs to the host entry, so that the next session finds it.
    owner = f"reuse-{host.name}" if reuse else identity
    kept_key = _kept_key_file(host)
    if reuse and kept_key.is_file():
        provider.adopt_login_key(owner, kept_key.read_text())
    with termination_as_interrupt():  # SIGTERM or a closed terminal must not skip the destroy
        progress(f"creating a VM on {host.label()} for {owner} (or finding it)")
        machine = provider.create(owner, progress=progress)
        if reuse and machine.login_key:
            _keep_key(kept_key, machine.login_key)
        try:
            if not reuse:
                _record(identity, machine)
            yield machine, provider
        finally:
            if not reuse:
                _destroy(machine, provider, progress)


@contextlib.contextmanager
def taken_over(
    host: HostTarget, identity: str, *, progress: Progress
) -> Iterator[tuple[Machine, Provider]]:
    """The VM session `identity` made on per-session host `host` and recorded, for a process
    that takes the session over (`rbottle attach` once the one that made it was killed);
    destroyed on the way out, as that session would have destroyed it.

    Raises:
        HostError: no VM of the session is recorded here (it ended, or was swept).
        ConnectError: the VM does not answer; it is left as it is (the network may be
            down, or its dead-man timer powered it off: `rbottle cleanup --orphans`).
    """
    machine = session_vm.recorded(identity)
    if machine is None:
        raise HostError(
            f"{identity} ran on a VM made for its session ({host.name}), and no VM of it"
            " is recorded on this machine now: it ended, or the VM was destroyed",
            hint=f"`rbottle resume {identity}` starts it again on a new VM",
        )
    provider = host.cloud_provider()
    progress(f"connecting to the VM {machine.machine_id} of {identity}")
    try:
        connect_machine(machine, host.name, connect_timeout=30.0).close()
    except ConnectError as exc:
        exc.hint = (
            f"its dead-man timer powers it off {host.ttl_minutes} min after its session"
            " went silent; `rbottle cleanup --orphans` removes what is left of it"
        )
        raise
    with termination_as_interrupt():
        try:
            yield machine, provider
        finally:
            _destroy(machine, provider, progress)


def _record(identity: str, machine: Machine) -> None:
    try:
        session_vm.record(identity, machine)
    except OSError as exc:  # the session goes on; only a later attach needs the record
        log.warning("`rbottle attach` will not reach this VM if this process dies: %s", exc)


def _destroy(machine: Machine, provider: Provider, progress: Progress) -> None:
    with no_interrupts():
        progress(f"destroying the VM {machine.machine_id}")
        provider.destroy(machine, progress=progress)
        session_vm.forget(machine.identity)


def _kept_key_file(host: HostTarget) -> Path:
    """Where the login key of a `reuse` VM waits for the next session (mode 0600)."""
    return state.home() / "hosts" / host.name / "login_key"


def _keep_key(path: Path, pem: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(pem)
