"""Identities and the state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from remotebottle.errors import BottleError
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
