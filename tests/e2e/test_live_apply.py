"""Approving a proposal changes the running bottle: the agent's retry succeeds, no restart.

The test plays the operator through `EngineSources`, the same code path the dashboard
uses (`decide` applies the change, records the audit entry, answers the agent).
Egress changes are applied to a running pipelock (its config rewritten in the vault,
then SIGHUP); credential routes are checked end to end against the fake Messages API.
"""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from pydantic import SecretStr

from remotebottle import hostnames
from remotebottle.backend.docker import lab
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command, RouteSpec, Secretish
from remotebottle.errors import BottleError
from remotebottle.hosts.engine import open_engine
from remotebottle.ops.images import place_images
from remotebottle.ops.session import saved_transcript
from remotebottle.supervise import audit, capability
from remotebottle.supervise.model import Decision
from remotebottle.supervise.source import EngineSources
from tests.e2e.conftest import FAKE_API_URL, FakeApi
from tests.e2e.test_proposals import PROPOSE, Agent, wait_pending
from tests.e2e.vmparts import grep_vm_disk, target, vm
from tests.integration.fakevm import FakeVm, fakevm

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

CURL = "curl -sS -m 10 -o /dev/null -w '%{http_code}'"


@pytest.fixture(autouse=True)
def plain_http_fake_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake API speaks plain http: let the agent propose it (test-only; an agent's
    route is otherwise https to a public host)."""
    monkeypatch.setenv(hostnames.TEST_PLAIN_HTTP_ENV, FAKE_API_URL.removeprefix("http://"))


def bottle_spec(identity: str | None = None) -> BottleSpec:
    route = RouteSpec(
        name="first",
        upstream=f"{FAKE_API_URL}/",
        inject={"x-api-key": Secretish("env", SecretStr("first-key"))},
    )
    return BottleSpec(
        identity=identity or f"apply-{secrets.token_hex(3)[:5]}",
        agent="apply",
        bottle="supervised",
        command=Command(mode="exec", argv=("sleep", "600")),
        egress_enabled=False,
        routes=(route,),
    )


@pytest.fixture
def bottle(
    docker_client: docker.DockerClient, fake_api: Callable[..., FakeApi]
) -> Iterator[tuple[Agent, FakeApi]]:
    api = fake_api()
    backend = DockerBottleBackend(docker_client)
    plan = backend.prepare(bottle_spec())
    with backend.launch(plan, LaunchOptions(tty=False, before_agent_start=api.join)) as made:
        backend.release(made)
        agent = Agent(docker_client, plan.spec.identity, made.agent_container)
        try:
            yield agent, api
        finally:
            agent.close()


def test_an_approved_route_works_at_once_and_the_audit_log_has_the_diff(
    docker_client: docker.DockerClient, bottle: tuple[Agent, FakeApi]
) -> None:
    agent, api = bottle
    assert agent.run(f"{CURL} http://cred-proxy:8080/extra/v1/models")[1] == "404"
    filed = agent.start(
        f"{PROPOSE} cred-route extra {FAKE_API_URL}/ --header x-api-key --reason 'models API'"
    )
    [proposal] = wait_pending(docker_client, agent.identity)
    source = EngineSources(engines={"local": docker_client})
    token = f"sk-approved-{secrets.token_hex(8)}"

    with pytest.raises(BottleError, match="needs a value for x-api-key"):
        source.decide(proposal, Decision(approve=True, reason="ok"))
    still = [p.id for p in source.pending() if p.identity == agent.identity]
    assert still == [proposal.id], "a failed approval keeps it pending"

    source.decide(proposal, Decision(approve=True, reason="ok", secrets={"x-api-key": token}))
    code, out = filed.result(timeout=30)
    assert code == 0 and "approved: ok" in out, out
    assert agent.run(f"{CURL} http://cred-proxy:8080/extra/v1/models")[1] == "200"
    assert api.requests()[-1]["headers"]["x-api-key"] == token
    assert agent.run(f"{CURL} http://cred-proxy:8080/first/v1/models")[1] == "200"
    assert api.requests()[-1]["headers"]["x-api-key"] == "first-key", "old routes keep theirs"

    [entry] = audit.read(agent.identity)
    assert (entry["kind"], entry["decision"], entry["requested_by"]) == (
        "cred-route",
        "approved",
        "agent",
    )
    assert entry["before"] == [
        {"name": "first", "upstream": f"{FAKE_API_URL}/", "headers": ["x-api-key"]}
    ]
    assert entry["after"][-1] == {
        "name": "extra",
        "upstream": f"{FAKE_API_URL}/",
        "headers": ["x-api-key"],
    }
    text = audit.log_path(agent.identity).read_text()
    assert token not in text and "first-key" not in text


def test_a_rejected_proposal_changes_nothing_and_is_audited(
    docker_client: docker.DockerClient, bottle: tuple[Agent, FakeApi]
) -> None:
    agent, _ = bottle
    filed = agent.start(
        f"{PROPOSE} cred-route extra {FAKE_API_URL}/ --header x-api-key --reason 'try'"
    )
    [proposal] = wait_pending(docker_client, agent.identity)
    EngineSources(engines={"local": docker_client}).decide(
        proposal, Decision(approve=False, reason="not today")
    )
    code, out = filed.result(timeout=30)
    assert code == 1 and "not today" in out, out
    assert agent.run(f"{CURL} http://cred-proxy:8080/extra/v1/models")[1] == "404"
    [entry] = audit.read(agent.identity)
    assert entry["decision"] == "rejected" and entry["granted"] is None


def projects_tar(note: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("projects/-home-agent-work/session.jsonl")
        info.size = len(note)
        info.uid = info.gid = 1000
        tar.addfile(info, io.BytesIO(note))
    return buffer.getvalue()


def test_an_approved_capability_rebuilds_the_bottle_which_resumes_with_its_transcript(
    docker_client: docker.DockerClient, bottle: tuple[Agent, FakeApi]
) -> None:
    agent, _ = bottle
    note = b'{"said": "before the rebuild"}\n'
    docker_client.api.put_archive(agent.cid, "/home/agent/.claude", projects_tar(note))
    assert agent.run("command -v jq")[0] != 0
    filed = agent.start(f"{PROPOSE} capability --package jq --reason 'parse JSON'")
    [proposal] = wait_pending(docker_client, agent.identity)
    EngineSources(engines={"local": docker_client}).decide(
        proposal, Decision(approve=True, reason="fine")
    )
    code, out = filed.result(timeout=60)
    assert "approved" in out, out
    assert DockerBottleBackend(docker_client).list_active() == [] or all(
        b.identity != agent.identity for b in DockerBottleBackend(docker_client).list_active()
    ), "the bottle was not taken down for its rebuild"
    lines = capability.read(agent.identity)
    assert lines is not None and '"--no-download", "jq"]' in lines

    # What `rbottle resume` does: the same identity, its capability lines, its transcript.
    backend = DockerBottleBackend(docker_client)
    plan = backend.prepare(bottle_spec(agent.identity))
    options = LaunchOptions(
        tty=False, image_lines=lines, transcript=saved_transcript(agent.identity)
    )
    with backend.launch(plan, options) as resumed:
        backend.release(resumed)
        again = Agent(docker_client, agent.identity, resumed.agent_container)
        try:
            assert again.run("jq --version")[0] == 0
            code, text = again.run("cat ~/.claude/projects/-home-agent-work/session.jsonl")
            assert (code, text.encode()) == (0, note)
        finally:
            again.close()


def test_on_a_vm_an_approved_route_applies_through_the_tunnel_and_its_secret_stays_off_disk(
    vm: FakeVm, docker_client: docker.DockerClient, agent_image: str
) -> None:
    token = f"sk-vm-approved-{secrets.token_hex(8)}"
    with open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine:
        backend = DockerBottleBackend(engine.client)
        plan = backend.prepare(bottle_spec())
        place_images(engine, plan, progress=lambda _m: None)
        api = FakeApi(engine.client, agent_image, "unused")
        try:
            options = LaunchOptions(tty=False, before_agent_start=api.join)
            with backend.launch(plan, options) as made:
                backend.release(made)
                agent = Agent(engine.client, plan.spec.identity, made.agent_container)
                try:
                    filed = agent.start(
                        f"{PROPOSE} cred-route extra {FAKE_API_URL}/ --header x-api-key"
                        " --reason 'from the VM'"
                    )
                    [proposal] = wait_pending(engine.client, agent.identity)
                    source = EngineSources(engines={"vm": engine.client})
                    [seen] = [p for p in source.pending() if p.id == proposal.id]
                    assert seen.host == "vm"
                    source.decide(
                        seen, Decision(approve=True, reason="ok", secrets={"x-api-key": token})
                    )
                    code, out = filed.result(timeout=30)
                    assert code == 0, out
                    url = "http://cred-proxy:8080/extra/v1/models"
                    assert agent.run(f"{CURL} {url}")[1] == "200"
                    assert api.requests()[-1]["headers"]["x-api-key"] == token
                finally:
                    agent.close()
        finally:
            api.remove()
    [entry] = audit.read(plan.spec.identity)
    assert entry["host"] == "vm" and entry["decision"] == "approved"
    assert grep_vm_disk(vm, token) == "", "the approved secret is on the VM's disk"


def test_an_approved_egress_host_is_reachable_at_once_and_the_proxy_is_not_restarted(
    docker_client: docker.DockerClient,
    pipelock_image: str,
    agent_image: str,
    fake_api: Callable[..., FakeApi],
) -> None:
    api = fake_api()
    spec = BottleSpec(
        identity=f"egress-{secrets.token_hex(3)[:5]}",
        agent="egress",
        bottle="supervised",
        command=Command(mode="exec", argv=("sleep", "600")),
    )
    backend = DockerBottleBackend(docker_client)
    # fake-api sits on a private address: trusted past SSRF once (and only once) allowed.
    plan = lab.trusting_private_upstreams(backend.prepare(spec), ["fake-api"])
    options = LaunchOptions(tty=False, before_agent_start=api.join)
    with backend.launch(plan, options) as made:
        backend.release(made)
        agent = Agent(docker_client, spec.identity, made.agent_container)
        try:
            proxy = egress_proxy(docker_client, spec.identity)
            started = proxy.attrs["State"]["StartedAt"]
            url = f"{FAKE_API_URL}/v1/models"
            assert agent.run(f"{CURL} {url}")[1] == "403", "not on the allowlist yet"

            filed = agent.start(f"{PROPOSE} egress fake-api --reason 'the test API'")
            [proposal] = wait_pending(docker_client, spec.identity)
            source = EngineSources(engines={"local": docker_client})
            assert "fake-api" not in (source.allowlist(spec.identity, "local") or [])
            source.decide(proposal, Decision(approve=True))
            assert filed.result(timeout=30)[0] == 0

            assert "fake-api" in (source.allowlist(spec.identity, "local") or [])
            assert until_status(agent, f"{CURL} {url}", "200"), "the approved host stays refused"
            proxy.reload()
            assert proxy.attrs["State"]["StartedAt"] == started, "the proxy was restarted"
            [entry] = audit.read(spec.identity)
            assert entry["kind"] == "egress" and entry["decision"] == "approved"
        finally:
            agent.close()


def egress_proxy(client: docker.DockerClient, identity: str) -> Any:
    labels = [f"io.remotebottle.identity={identity}", "io.remotebottle.role=egress"]
    [proxy] = client.containers.list(filters={"label": labels})
    return proxy


def until_status(agent: Agent, command: str, status: str, timeout: float = 15) -> bool:
    """The proxy reloads on SIGHUP in the background: retry briefly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.run(command)[1] == status:
            return True
        time.sleep(0.5)
    return False


def test_egress_for_a_bottle_without_an_egress_proxy_is_a_clear_error_and_stays_pending(
    docker_client: docker.DockerClient, bottle: tuple[Agent, FakeApi]
) -> None:
    agent, _ = bottle
    filed = agent.start(f"{PROPOSE} egress pypi.org --reason 'pip install'")
    [proposal] = wait_pending(docker_client, agent.identity)
    source = EngineSources(engines={"local": docker_client})
    with pytest.raises(BottleError, match="has no egress proxy"):
        source.decide(proposal, Decision(approve=True))
    assert source.allowlist(agent.identity, "local") is None
    assert [p.id for p in source.pending() if p.identity == agent.identity] == [proposal.id]
    assert audit.read(agent.identity) == []
    source.decide(proposal, Decision(approve=False, reason="no egress here"))
    assert filed.result(timeout=30)[0] == 1
