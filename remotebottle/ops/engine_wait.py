"""Waiting for a VM's Docker engine that went quiet while the VM itself answers SSH.

That is no network cut (`ops/link`): dockerd restarting, stopped or wedged. The session
waits a short while for the engine, then judges the bottle by its state: still running
(the engine kept it, `live-restore`), the stream goes on; stopped or removed, or no
engine, the session ends with `BottleLost`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from remotebottle.errors import RemoteBottleError

ENGINE_WAIT = 60.0  # how long an engine may stay silent while its host answers


class BottleLost(RemoteBottleError):
    """The host answers, but its engine went away and the bottle did not survive it.

    Attributes:
        engine_back: the engine answers again (what is left of the bottle can be removed).
        container_left: the agent's container is still there, stopped (its files can be
            copied out).
    """

    def __init__(self, message: str, *, engine_back: bool, container_left: bool) -> None:
        super().__init__(message)
        self.engine_back = engine_back
        self.container_left = container_left


def await_engine(
    inspect: Callable[[], Mapping[str, Any]],
    *,
    host: str,
    wait: float = ENGINE_WAIT,
    relink: Callable[[], None] = lambda: None,
    waiting: Callable[[], None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Mapping[str, Any], bool]:
    """Ask for the agent container's state until the engine answers, for up to `wait`
    seconds; `relink` first, each time (connect again if the connection is down);
    `waiting` once the first ask went unanswered.

    Returns:
        The container's `State` and whether the engine answered the first time asked.

    Raises:
        BottleLost: the container is gone, or the engine did not answer in time.
        LinkGone: from `relink`: the host went away too.
    """
    started = clock()
    first = True
    while True:
        relink()
        try:
            return inspect(), first
        except docker.errors.NotFound:
            raise BottleLost(
                f"the bottle is gone from {host}: its Docker engine stopped answering, then"
                " came back without the bottle's container",
                engine_back=True,
                container_left=False,
            ) from None
        except (docker.errors.DockerException, OSError):
            pass
        if first:
            waiting()
        first = False
        elapsed = clock() - started
        if elapsed >= wait:
            raise BottleLost(
                f"the Docker engine on {host} has not answered for {elapsed:.0f} s, while"
                f" {host} itself does (SSH)",
                engine_back=False,
                container_left=True,
            )
        sleep(min(1.0, max(0.0, wait - elapsed)))


def judge(state: Mapping[str, Any], *, host: str) -> None:
    """The engine is back: a bottle that runs goes on; a stopped one is lost.

    Raises:
        BottleLost: the agent's container is not running.
    """
    if state.get("Running"):
        return
    code = state.get("ExitCode")
    raise BottleLost(
        f"the Docker engine on {host} stopped answering and came back with the bottle"
        f" stopped (exit status {code}): the engine was restarted or stopped",
        engine_back=True,
        container_left=True,
    )
