"""The interactive session under tmux: typing, resize, detach, attach, exit status.

The same session on the local engine and on a fake VM (`--host vm`, streamed through
the tunnel); `attach` finds the VM from the bottle's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.tmux import RBOTTLE, Tmux
from tests.e2e.vmparts import vm
from tests.integration.fakevm import FakeVm, fakevm

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

MANIFEST = {
    "bottles": {"sealed": {"egress": {"enabled": False}}},
    "agents": {"shell": {"bottle": "sealed"}},
}


@pytest.fixture(params=["local", "vm"])
def where(request: pytest.FixtureRequest) -> str:
    """`--host` arguments: none (the local engine) or the fake VM."""
    return "" if request.param == "local" else "--host vm"


@pytest.fixture
def tmux(
    write_manifest: Callable[..., Path],
    agent_image: str,
    where: str,
    request: pytest.FixtureRequest,
) -> Iterator[Tmux]:
    manifest: dict[str, Any] = dict(MANIFEST)
    if where:
        fake: FakeVm = request.getfixturevalue("vm")
        manifest["hosts"] = {"vm": fake.hosts_entry()}
    project = write_manifest(manifest).parent
    session = Tmux.fresh(project)
    yield session
    session.kill()


def test_typing_resize_detach_attach_and_exit_status(tmux: Tmux, where: str) -> None:
    tmux.start(f"{RBOTTLE} start shell {where} --yes -- bash --norc")
    tmux.wait_for("bash-5.2$")
    tmux.keys("echo typed-$((40+2))", "Enter")
    tmux.wait_for("typed-42")

    tmux.keys("stty size", "Enter")
    tmux.wait_for("30 100")
    tmux.tmux("resize-window", "-t", tmux.name, "-x", "90", "-y", "25")
    time.sleep(0.5)
    tmux.keys("clear; stty size", "Enter")
    tmux.wait_for("25 90")

    tmux.keys("C-p", "C-q")
    screen = tmux.wait_for("EXITED=0")
    assert "detached; the bottle keeps running: rbottle attach shell-" in screen
    identity = screen.split("rbottle attach ")[1].split()[0]
    tmux.kill()

    tmux.start(f"{RBOTTLE} attach {identity}")
    tmux.wait_for("bash-5.2$")
    tmux.keys("echo back-$((1+1))", "Enter")
    tmux.wait_for("back-2")
    tmux.keys("exit 3", "Enter")
    screen = tmux.wait_for("EXITED=3")
    assert f"bottle {identity} ended (exit 3)" in screen
