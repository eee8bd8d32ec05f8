"""Egress through the real pipelock sidecar: allowlist, DLP, SSRF, no direct route, SSE.

These need the pinned pipelock image; where it cannot exist (no registry, and the
Go module proxy refuses the module) they skip with the harness's recorded reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import docker
import pytest
from pydantic import SecretStr

from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command, Secretish
from remotebottle.demo import run_demo
from remotebottle.session import stream_output
from tests.e2e.conftest import FAKE_API_URL, FakeApi

pytestmark = pytest.mark.e2e


def test_demo_probes_all_behave(pipelock_image: str, agent_image: str) -> None:
    results = run_demo(progress=lambda _msg: None)
    assert [(r.probe.name, r.got) for r in results if not r.passed] == []
    assert len(results) == 6


def test_claude_code_turn_through_the_egress_proxy(
    docker_client: docker.DockerClient,
    pipelock_image: str,
    fake_api: Callable[..., FakeApi],
) -> None:
    api = fake_api(reply="Streamed through pipelock.")
    spec = BottleSpec(
        identity="egress-t1abc",
        agent="egress",
        bottle="b",
        command=Command(mode="print", prompt="hi"),
        egress_allowlist=("fake-api",),
        env={
            "ANTHROPIC_BASE_URL": Secretish("literal", SecretStr(FAKE_API_URL)),
            "ANTHROPIC_API_KEY": Secretish("literal", SecretStr("placeholder-not-a-key")),
        },
    )
    backend = DockerBottleBackend(docker_client)
    options = LaunchOptions(tty=False, trusted_hosts=("fake-api",), before_agent_start=api.join)
    out = io.BytesIO()
    with backend.launch(backend.prepare(spec), options) as bottle:
        inspect = docker_client.api.inspect_container(bottle.agent_container)
        code = stream_output(
            docker_client,
            bottle.agent_container,
            stdout=out,
            on_attached=lambda: backend.release(bottle),
        )
    assert code == 0, out.getvalue().decode(errors="replace")[-2000:]
    assert "Streamed through pipelock." in out.getvalue().decode()
    assert list(inspect["NetworkSettings"]["Networks"]) == [f"rb-{spec.identity}-internal"]
    assert any(r["path"].startswith("/v1/messages") for r in api.requests())
