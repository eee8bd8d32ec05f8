"""Identities and the state directory."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from remotebottle.errors import BottleError
from remotebottle.hosts import session_vm
from remotebottle.state import IDENTITY_RE, home, mint_identity, parse_identity, state_dir

pytestmark = pytest.mark.unit


def test_identity_is_agent_dash_five_base36() -> None:
    identities = {mint_identity("implementer") for _ in range(50)}
    assert len(identities) == 50
    for identity in identities:
        assert IDENTITY_RE.match(identity)
        assert parse_identity(identity)[0] == "implementer"


@pytest.mark.parametrize("bad", ["implementer", "implementer-ABCDE", "x-abc", "../etc-abcde", ""])
def test_bad_identities_are_refused(bad: str) -> None:
    with pytest.raises(BottleError, match="is not a bottle identity"):
        parse_identity(bad)


def test_state_dir_under_remotebottle_home(tmp_path: Path) -> None:
    assert state_dir("impl-ab12c") == tmp_path / "rbhome" / "state" / "impl-ab12c"


def test_state_dir_refuses_path_tricks() -> None:
    with pytest.raises(BottleError):
        state_dir("../../x-abcde")


def test_home_defaults_to_xdg_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REMOTEBOTTLE_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert home() == tmp_path / "xdg" / "remotebottle"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert home() == Path.home() / ".local/state/remotebottle"


def test_a_session_vm_record_is_private_and_goes_with_the_session(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as tunnel:
        tunnel.bind(str(tmp_path / "docker.sock"))
        vm = session_vm.SessionVm("i-0abc", f"unix://{tmp_path}/docker.sock")
        assert session_vm.published("impl-ab12c") is None
        session_vm.publish("impl-ab12c", vm)
        path = state_dir("impl-ab12c") / session_vm.RECORD
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert session_vm.published("impl-ab12c") == vm
        session_vm.withdraw("impl-ab12c")
        session_vm.withdraw("impl-ab12c")  # twice is fine
        assert session_vm.published("impl-ab12c") is None


def test_a_killed_sessions_record_points_nowhere_and_is_ignored(tmp_path: Path) -> None:
    gone = session_vm.SessionVm("i-0abc", f"unix://{tmp_path}/gone/docker.sock")
    session_vm.publish("impl-ab12c", gone)
    assert session_vm.published("impl-ab12c") is None


def test_a_damaged_session_vm_record_is_a_clear_error() -> None:
    path = state_dir("impl-ab12c") / session_vm.RECORD
    path.parent.mkdir(parents=True)
    path.write_text('{"machine_id": "i-0abc"}')
    with pytest.raises(BottleError, match="unreadable"):
        session_vm.published("impl-ab12c")
    path.write_text('{"machine_id": "i-0abc", "docker_host": "tcp://203.0.113.9:2375"}')
    with pytest.raises(BottleError, match="not a local tunnel"):
        session_vm.published("impl-ab12c")
