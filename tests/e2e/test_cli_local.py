"""`rbottle` as a user runs it, on the local engine: start, list, resume, cleanup, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command
from tests.e2e.conftest import finish
from tests.e2e.conftest import rbottle as run_rbottle

pytestmark = pytest.mark.e2e

MANIFEST = {
    "bottles": {"sealed": {"egress": {"enabled": False}, "env": {"GREETING": "${RB_GREETING}"}}},
    "agents": {"worker": {"bottle": "sealed"}},
}


@pytest.fixture
def project(write_manifest: Callable[..., Path]) -> Path:
    return write_manifest(MANIFEST).parent


def rbottle(project: Path, *args: str) -> subprocess.Popen[str]:
    return run_rbottle(project, *args, env={"RB_GREETING": "hello from the manifest"})


def test_start_runs_the_command_and_keeps_state(
    project: Path, agent_image: str, isolated_home: Path
) -> None:
    code, out, err = finish(
        rbottle(project, "start", "worker", "--yes", "--", "sh", "-c", 'echo "$GREETING"; exit 5')
    )
    assert code == 5, err
    assert out.strip() == "hello from the manifest"
    assert "rbottle resume worker-" in err
    identity = err.split("rbottle resume ")[1].split()[0]
    meta = json.loads(
        (Path(os.environ["REMOTEBOTTLE_HOME"]) / "state" / identity / "metadata.json").read_text()
    )
    assert meta["agent"] == "worker" and meta["host"] == "local" and meta["ended_at"]

    code, out, _ = finish(rbottle(project, "list", "--format=json"))
    assert code == 0
    assert {"identity": identity, "status": "saved"}.items() <= next(
        b for b in json.loads(out) if b["identity"] == identity
    ).items()


def test_resume_relaunches_with_the_saved_transcript(project: Path, agent_image: str) -> None:
    write = "mkdir -p ~/.claude/projects/p && echo remembered > ~/.claude/projects/p/t.jsonl"
    code, _, err = finish(rbottle(project, "start", "worker", "--yes", "--", "sh", "-c", write))
    assert code == 0, err
    identity = err.split("rbottle resume ")[1].split()[0]
    code, out, err = finish(
        rbottle(
            project,
            "resume",
            identity,
            "--yes",
            "--",
            "cat",
            "/home/agent/.claude/projects/p/t.jsonl",
        )
    )
    assert code == 0, err
    assert out.strip() == "remembered"


def test_resume_without_state_is_a_clear_error(project: Path) -> None:
    code, _, err = finish(rbottle(project, "resume", "worker-zzzzz", "--yes"))
    assert code == 1
    assert "no saved state for worker-zzzzz" in err


def wait_for(predicate: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition never became true")


def labelled(client: docker.DockerClient, kind: str) -> list[Any]:
    flt: dict[str, Any] = {"label": [f"{L.OWNER}=1"]}
    if kind == "network":
        return list(client.networks.list(filters=flt))
    return list(client.containers.list(all=True, filters=flt))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_a_session_leaves_nothing(
    project: Path, agent_image: str, docker_client: docker.DockerClient, sig: signal.Signals
) -> None:
    before = {c.id for c in labelled(docker_client, "container")}
    proc = rbottle(project, "start", "worker", "--yes", "--", "sleep", "300")
    wait_for(
        lambda: any(
            c.status == "running" and c.id not in before
            for c in labelled(docker_client, "container")
        )
    )
    time.sleep(0.5)
    proc.send_signal(sig)
    code, _, err = finish(proc, timeout=60)
    assert code != 0
    assert "Traceback" not in err
    # the autouse no_leftovers fixture checks that nothing labelled remains


def test_interrupt_during_launch_leaves_nothing(
    project: Path, agent_image: str, docker_client: docker.DockerClient
) -> None:
    before = {n.id for n in labelled(docker_client, "network")}
    proc = rbottle(project, "start", "worker", "--yes", "--", "true")
    wait_for(lambda: bool({n.id for n in labelled(docker_client, "network")} - before), 120)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=60)
    assert code in (0, 130), err
    assert "Traceback" not in err


def test_list_and_cleanup_find_leftovers_by_label(
    project: Path, agent_image: str, docker_client: docker.DockerClient
) -> None:
    backend = DockerBottleBackend(docker_client)
    spec = BottleSpec(
        identity="left-abcde",
        agent="left",
        bottle="b",
        egress_enabled=False,
        command=Command(mode="exec", argv=("true",)),
    )
    with backend.launch(backend.prepare(spec), LaunchOptions(tty=False)) as bottle:
        bottle.keep = True  # as if the client had died: the bottle outlives the launch
    docker_client.containers.get(bottle.agent_container).stop(timeout=1)

    code, out, _ = finish(rbottle(project, "list", "--format=json"))
    assert code == 0
    listed = {b["identity"]: b for b in json.loads(out)}
    assert listed["left-abcde"]["status"] == "exited"

    code, _, err = finish(rbottle(project, "cleanup"))
    assert code == 2 and "no terminal to confirm on" in err
    assert labelled(docker_client, "container")

    code, _, err = finish(rbottle(project, "cleanup", "--yes"))
    assert code == 0, err
    assert "container rb-left-abcde" in err
    assert not [
        c for c in labelled(docker_client, "container") if c.labels.get(L.IDENTITY) == "left-abcde"
    ]
