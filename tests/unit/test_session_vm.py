"""What a session leaves for other rbottle processes: its VM's record and key, and its claim."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import signal
import socket
from dataclasses import replace
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from remotebottle import state
from remotebottle.errors import BottleError
from remotebottle.hosts import session_vm
from remotebottle.hosts.provider import Machine, OwnedResource
from remotebottle.ops.orphans import SessionState, abandoned, orphans, session_state

pytestmark = pytest.mark.unit

SESSION = "impl-ab12c"
MACHINE = Machine(
    provider="ec2",
    machine_id="i-0abc",
    identity=SESSION,
    address="203.0.113.9",
    port=22,
    user="admin",
    host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey",
    login_key="-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n",
    expires_at=datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC),
    details={"region": "eu-west-1"},
)


def test_a_session_vm_is_recorded_privately_until_it_is_forgotten() -> None:
    assert session_vm.recorded(SESSION) is None
    session_vm.record(SESSION, MACHINE)
    directory = state.state_dir(SESSION)
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in (session_vm.RECORD, session_vm.LOGIN_KEY):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert "secret" not in (directory / session_vm.RECORD).read_text()
    assert session_vm.recorded(SESSION) == MACHINE
    # Its process's tunnel is gone (killed): others reach it by the record.
    assert session_vm.published(SESSION) == session_vm.SessionVm("i-0abc", "")
    session_vm.publish(SESSION, session_vm.SessionVm("i-0abc", "unix:///nowhere/docker.sock"))
    session_vm.withdraw(SESSION)
    assert session_vm.recorded(SESSION) == MACHINE, "a closed tunnel leaves the VM's record"
    session_vm.forget(SESSION)
    assert session_vm.recorded(SESSION) is None and session_vm.published(SESSION) is None
    assert not any(directory.iterdir())


def test_a_killed_sessions_socket_is_passed_over_for_its_vm_record(tmp_path: Path) -> None:
    session_vm.record(SESSION, MACHINE)
    path = tmp_path / "docker.sock"
    tunnel = session_vm.SessionVm("i-0abc", f"unix://{path}")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        listening.listen()
        session_vm.publish(SESSION, tunnel)
        assert session_vm.published(SESSION) == tunnel
    assert path.is_socket(), "kill -9 leaves the socket file"
    assert session_vm.published(SESSION) == session_vm.SessionVm("i-0abc", "")


def test_a_record_whose_key_is_gone_is_a_clear_error() -> None:
    session_vm.record(SESSION, MACHINE)
    (state.state_dir(SESSION) / session_vm.LOGIN_KEY).unlink()
    with pytest.raises(BottleError, match="login key is gone"):
        session_vm.recorded(SESSION)
    path = state.state_dir(SESSION) / session_vm.RECORD
    path.write_text(json.dumps({"machine_id": "x", "docker_host": "", "machine": {"evil": 1}}))
    with pytest.raises(BottleError, match="unreadable"):
        session_vm.recorded(SESSION)


def _hold_then_die(ready: Event) -> None:
    with session_vm.claim(SESSION):
        ready.set()
        signal.pause()


def test_a_claim_lives_exactly_as_long_as_its_process() -> None:
    assert not session_vm.claimed(SESSION)
    with session_vm.claim(SESSION):
        assert session_vm.claimed(SESSION)
        with session_vm.claim(SESSION):  # a second holder (attach beside start)
            assert session_vm.claimed(SESSION)
        assert session_vm.claimed(SESSION)
    assert not session_vm.claimed(SESSION)
    assert not state.state_dir(SESSION).exists(), "a claim alone leaves nothing behind"

    ready = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold_then_die, args=(ready,))
    holder.start()
    try:
        assert ready.wait(30)
        assert session_vm.claimed(SESSION)
    finally:
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
    assert not session_vm.claimed(SESSION), "kill -9 must let go of the session"


def test_a_killed_running_session_is_abandoned_and_its_vm_an_orphan() -> None:
    meta = state.Metadata(SESSION, "impl", "cloudy", state.now(), phase="running")
    state.write_metadata(meta)
    assert abandoned(meta)
    with session_vm.claim(SESSION):
        assert not abandoned(meta)
    for other in (replace(meta, phase="detached"), replace(meta, phase=None)):
        assert not abandoned(other)
    assert not abandoned(replace(meta, ended_at=state.now(), phase="ended"))

    now = datetime.datetime.now(datetime.UTC)
    vm = OwnedResource("ec2", "instance", "i-0abc", SESSION, now, now + datetime.timedelta(hours=1))
    assert orphans([vm], now) == [vm]
    assert session_state(SESSION) == SessionState(known=True, ended=False, abandoned=True)
    with session_vm.claim(SESSION):
        assert orphans([vm], now) == []
