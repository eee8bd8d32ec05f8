"""An engine that goes quiet while its host answers: how long it is waited for, what a
stopped or vanished bottle becomes, and what the session's record and the user's hint say.
The e2e side (a real dockerd restarted, a fake VM destroyed) is tests/e2e/test_engine_gone.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker.errors
import pytest

from remotebottle import state
from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest import SshHost
from remotebottle.ops import checkpoint
from remotebottle.ops.engine_wait import BottleLost, await_engine, judge
from remotebottle.ops.link import LinkGone
from remotebottle.ops.replay import Shown
from remotebottle.ops.session import gone

pytestmark = pytest.mark.unit

RUNNING = {"Running": True, "ExitCode": 0}
STOPPED = {"Running": False, "ExitCode": 143}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def asker(*results: Mapping[str, Any] | Exception) -> Any:
    queue = list(results)

    def inspect() -> Mapping[str, Any]:
        result = queue.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    return inspect


def test_an_engine_that_answers_at_once_is_not_waited_for() -> None:
    clock = Clock()
    state_, at_once = await_engine(asker(RUNNING), host="vm", sleep=clock.sleep, clock=clock)
    assert state_ == RUNNING and at_once and clock.now == 0


def test_an_engine_restarting_is_waited_for_and_its_stopped_bottle_is_lost() -> None:
    clock = Clock()
    down = ConnectionError("refused")
    relinked: list[float] = []
    told: list[float] = []
    state_, at_once = await_engine(
        asker(down, down, docker.errors.APIError("starting"), STOPPED),
        host="vm",
        relink=lambda: relinked.append(clock.now),
        waiting=lambda: told.append(clock.now),
        sleep=clock.sleep,
        clock=clock,
    )
    assert state_ == STOPPED and not at_once
    assert len(relinked) == 4, "the connection is checked before each ask"
    assert told == [0], "the user is told once, when the first ask goes unanswered"
    with pytest.raises(BottleLost) as lost:
        judge(state_, host="vm")
    assert lost.value.engine_back and lost.value.container_left
    assert "exit status 143" in lost.value.message and "vm" in lost.value.message
    judge(RUNNING, host="vm")  # a bottle the engine kept (live-restore) goes on


def test_an_engine_back_without_the_bottle_says_so() -> None:
    with pytest.raises(BottleLost) as lost:
        await_engine(asker(docker.errors.NotFound("no such container")), host="vm")
    assert lost.value.engine_back and not lost.value.container_left
    assert "gone from vm" in lost.value.message


def test_an_engine_that_stays_silent_ends_the_wait_in_bounded_time() -> None:
    clock = Clock()
    with pytest.raises(BottleLost) as lost:
        await_engine(
            asker(*[OSError("refused")] * 1000), host="vm", wait=60, sleep=clock.sleep, clock=clock
        )
    assert not lost.value.engine_back
    assert 60 <= clock.now <= 61
    assert "has not answered for 60 s" in lost.value.message


def test_a_host_that_goes_away_while_waiting_ends_it_as_a_lost_link() -> None:
    def relink() -> None:
        raise LinkGone("lost the link to vm for 5 s, giving up")

    with pytest.raises(LinkGone):
        await_engine(asker(RUNNING), host="vm", relink=relink)


def test_a_lost_link_leaves_a_bottle_to_attach_to_and_names_both_ways_back() -> None:
    meta = state.Metadata(
        identity="worker-ab12c", agent="worker", host="vm", started_at=state.now(), phase="running"
    )
    state.write_metadata(meta)
    host = HostTarget("vm", SshHost(provider="ssh", address="203.0.113.9"))
    error = gone(LinkGone("lost the link to vm for 5 s, giving up"), host, meta.identity, None)
    assert error.message.startswith("lost the link to vm")
    assert "rbottle attach worker-ab12c" in error.hint
    assert "rbottle resume worker-ab12c" in error.hint
    assert state.read_metadata(meta.identity).phase == "detached"


def test_the_checkpoint_interval_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert checkpoint.sync_seconds() == checkpoint.DEFAULT_SECONDS
    monkeypatch.setenv(checkpoint.SYNC_ENV, "2.5")
    assert checkpoint.sync_seconds() == 2.5
    monkeypatch.setenv(checkpoint.SYNC_ENV, "0")
    assert checkpoint.sync_seconds() == 0
    for bad in ("soon", "-1", "1e9", "nan"):
        monkeypatch.setenv(checkpoint.SYNC_ENV, bad)
        with pytest.raises(Exception, match=checkpoint.SYNC_ENV):
            checkpoint.sync_seconds()
    assert checkpoint.last_copy(None) == ""


def test_a_container_that_ended_on_an_unfinished_line_is_not_shown_it_twice() -> None:
    shown = Shown()
    replay = shown.replay()
    assert shown.take(1, b"one\npart", replay) == b"one\npart"
    # Its log, read after it ended: the complete line, then the unfinished one by itself.
    replay = shown.replay()
    assert shown.take(1, b"one\n", replay) == b""
    assert shown.take(1, b"part", replay) == b""
