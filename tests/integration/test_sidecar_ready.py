"""Waiting for a sidecar to come up, and finding a bottle's containers by role, against the
real engine: what the error says when a sidecar does not come up, and what the lookup
finds (or says, when the engine does not answer)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from remotebottle import pins
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker import sidecar
from remotebottle.backend.docker.engine import missing_images
from remotebottle.errors import BottleError, EngineError
from tests.e2e.conftest import E2E_LOCK
from tests.integration.conftest import require

pytestmark = pytest.mark.integration

IDENTITY = "readytest-ab12c"
Start = Callable[..., Any]


@pytest.fixture
def start(docker_client: docker.DockerClient) -> Iterator[Start]:
    """Start a container labelled as one of IDENTITY's, in `role`, running `script`; the
    containers are ours (labelled so), so the e2e tests' lock keeps them out of their way."""
    image = pins.base_image()
    if missing_images(docker_client, [image]):
        require(f"{image} is not seeded; run `make setup`")
    made: list[Any] = []

    def run(role: str, script: str, *, started: bool = True) -> Any:
        container = docker_client.containers.create(
            image,
            ["sh", "-c", script],
            labels=L.labels(IDENTITY, "readytest", role),
            network_mode="none",
        )
        made.append(container)
        if started:
            container.start()
        return container

    with E2E_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield run
        finally:
            for container in made:
                container.remove(force=True)


def test_a_sidecar_that_stops_says_how_and_what_it_logged(start: Start) -> None:
    container = start(
        L.ROLE_CRED_PROXY, "echo starting; sleep 0.2; echo 'no route table' >&2; exit 3"
    )
    with pytest.raises(BottleError) as caught:
        sidecar.wait_ready(container, "the test proxy", sidecar.logged("listening"), hint="h")
    assert caught.value.message == (
        "the test proxy stopped: exited (exit 3); log: starting | no route table"
    )
    assert caught.value.hint == "h"


def test_a_sidecar_stopping_under_its_check_says_it_stopped(start: Start) -> None:
    container = start(L.ROLE_EGRESS, "echo 'config refused'; sleep 60")

    def stopped_then_checked(c: Any) -> bool:
        c.kill()
        c.wait()
        return bool(c.exec_run(["true"]).exit_code == 0)  # the engine refuses: not running

    with pytest.raises(BottleError) as caught:
        sidecar.wait_ready(container, "the test proxy", stopped_then_checked)
    assert caught.value.message == "the test proxy stopped: exited (exit 137); log: config refused"


def test_a_sidecar_not_ready_in_time_says_its_state_and_log(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sidecar, "READY_TIMEOUT", 1.0)
    container = start(L.ROLE_GIT_GATE, "echo 'waiting for the upstream'; sleep 60")
    with pytest.raises(BottleError) as caught:
        sidecar.wait_ready(container, "the test gate", sidecar.answers(["false"]))
    assert caught.value.message == (
        "the test gate did not start in 1s: running; log: waiting for the upstream"
    )


def test_a_sidecar_is_ready_once_its_check_passes(start: Start) -> None:
    logging = start(L.ROLE_SUPERVISOR, """sleep 0.5; echo '{"event": "listening"}'; sleep 60""")
    sidecar.wait_ready(logging, "the test supervisor", sidecar.logged('"event": "listening"'))
    answering = start(L.ROLE_EGRESS, "sleep 60")
    sidecar.wait_ready(answering, "the test proxy", sidecar.answers(["true"]))


def test_find_by_role_and_identity(docker_client: docker.DockerClient, start: Start) -> None:
    running = start(L.ROLE_EGRESS, "sleep 60")
    created = start(L.ROLE_EGRESS, "sleep 60", started=False)
    start(L.ROLE_CRED_PROXY, "sleep 60")

    def found(**kwargs: Any) -> set[str]:
        return {c.id for c in L.find(docker_client, role=L.ROLE_EGRESS, **kwargs)}

    assert found(identity=IDENTITY) == {running.id, created.id}
    assert found(identity=IDENTITY, running_only=True) == {running.id}
    assert {running.id, created.id} <= found()
    assert found(identity="other-zz999") == set()


def test_find_on_an_engine_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    # A fixed API version: asking for the engine's would fail already, in the constructor.
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/docker.sock", version="1.44")
    with pytest.raises(EngineError) as caught:
        L.find(client, role=L.ROLE_AGENT, identity=IDENTITY)
    message = caught.value.message
    assert message.startswith(f"could not list the agent containers of {IDENTITY}: "), message
    assert "\n" not in message
