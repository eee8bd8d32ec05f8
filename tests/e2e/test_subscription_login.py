"""Login with no manifest wiring: a bottle without a Claude Code route logs in from
`CLAUDE_BOTTLE_OAUTH_TOKEN` (or `ANTHROPIC_API_KEY`) in the local environment, and the
credential never enters it.

A real `claude -p` turn runs against the fake Messages API, which records what arrives: the
token as the bearer credential (the key as `x-api-key`, without the OAuth beta). The route
rbottle adds points at https://api.anthropic.com; here it is pointed at the fake API, the
only change to what `build_spec` made.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import secrets
import tarfile
from collections.abc import Callable

import docker
import pytest

from remotebottle import manifest
from remotebottle.backend.docker import credproxy
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command
from remotebottle.ops.stream import stream_output
from remotebottle.resolve import build_spec
from tests.e2e.conftest import FAKE_API_URL, FakeApi
from tests.integration.fakevm import TEST_LABEL

pytestmark = pytest.mark.e2e

# While Claude Code's turn runs, every process's command line and environment, sampled into
# a file: the container's exported filesystem holds them for the test to search.
SCRIPT = """
sample() { while :; do cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null \
  | tr '\\0' '\\n'; echo SAMPLED; sleep 0.1; done; }
sample > /tmp/processes.txt 2>&1 &
claude -p 'say hello'; code=$?
kill $!
echo "ENV:$CLAUDE_CODE_OAUTH_TOKEN:$ANTHROPIC_BASE_URL"
exit $code
"""


def login_spec(variable: str, token: str) -> BottleSpec:
    parsed = manifest.parse(
        json.dumps(
            {
                "bottles": {"sealed": {"egress": {"enabled": False}}},
                "agents": {"worker": {"bottle": "sealed"}},
            }
        )
    )
    spec = build_spec(
        manifest.Manifest(bottles=parsed.bottles, agents=parsed.agents),
        "worker",
        command=Command(mode="exec", argv=("sh", "-c", SCRIPT)),
        environ={variable: token},
    )
    [route] = spec.routes
    assert route.login == variable
    assert route.upstream == "https://api.anthropic.com/"
    return dataclasses.replace(spec, routes=(dataclasses.replace(route, upstream=FAKE_API_URL),))


def bottle_logs(client: docker.DockerClient, identity: str) -> str:
    found = client.containers.list(all=True, filters={"label": f"{L.IDENTITY}={identity}"})
    return "".join(c.logs().decode(errors="replace") for c in found)


@pytest.mark.parametrize(
    "variable", ["CLAUDE_BOTTLE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"], ids=["subscription", "api-key"]
)
def test_the_local_credential_logs_claude_code_in_and_never_enters_the_bottle(
    docker_client: docker.DockerClient,
    fake_api: Callable[..., FakeApi],
    caplog: pytest.LogCaptureFixture,
    variable: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = f"sk-ant-e2e-{secrets.token_hex(16)}"
    api = fake_api(reply="Hello, subscriber.")
    backend = DockerBottleBackend(docker_client)
    plan = backend.prepare(login_spec(variable, token))
    out, err = io.BytesIO(), io.BytesIO()
    options = LaunchOptions(tty=False, before_agent_start=api.join)
    with backend.launch(plan, options) as bottle:
        code = stream_output(
            docker_client,
            bottle.agent_container,
            stdout=out,
            stderr=err,
            on_attached=lambda: backend.release(bottle),
        )
        inspect = json.dumps(docker_client.api.inspect_container(bottle.agent_container))
        filesystem = b"".join(docker_client.api.export(bottle.agent_container))
        logs = bottle_logs(docker_client, bottle.identity)
    output = out.getvalue().decode() + err.getvalue().decode()
    assert code == 0, output
    assert "Hello, subscriber." in output
    assert f"ENV:{credproxy.PLACEHOLDER_TOKEN}:http://cred-proxy:8080/anthropic" in output

    messages = [r for r in api.requests() if r["path"].startswith("/v1/messages")]
    assert messages, "Claude Code's request never reached the upstream"
    subscription = variable == "CLAUDE_BOTTLE_OAUTH_TOKEN"
    for request in messages:
        headers = request["headers"]
        betas = headers["anthropic-beta"].split(",")
        if subscription:
            assert headers["authorization"] == f"Bearer {token}"
            assert "x-api-key" not in headers and "oauth-2025-04-20" in betas
        else:
            assert headers["x-api-key"] == token
            assert "authorization" not in headers
            assert not any(b.startswith("oauth-") for b in betas), betas

    for where, text in {
        "the agent's output": output,
        "the agent container's config": inspect,
        "a container's log": logs,
        "rbottle's own log": caplog.text,
    }.items():
        assert token not in text, f"the token is in {where}"
    assert b"SAMPLED\n" in filesystem and b"ANTHROPIC_BASE_URL=http://cred-proxy" in filesystem
    assert token.encode() not in filesystem, "the token is in the agent's processes or files"


def test_claude_code_sends_the_token_alike_with_or_without_a_base_url(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    """What the proxy must replace, from Claude Code itself. With `CLAUDE_CODE_OAUTH_TOKEN`
    set it sends the token as `authorization: Bearer` with the OAuth beta and no `x-api-key`,
    to https://api.anthropic.com (no `ANTHROPIC_BASE_URL`) and to a base URL alike, so
    the proxy replaces that one header (and the placeholder it holds) and nothing else.

    A plain container of the agent image on an internal network, where the fake API answers
    as api.anthropic.com and as proxy.test, over TLS from a CA Claude Code is told to trust."""
    token = f"sk-ant-oat01-{secrets.token_hex(16)}"
    api = FakeApi(
        docker_client,
        agent_image,
        "Hello, token.",
        tls=True,
        names=("api.anthropic.com", "proxy.test"),
        port=443,
    )
    assert api.tls is not None
    network = docker_client.networks.create(
        f"rb-test-login-{secrets.token_hex(3)}", internal=True, labels={TEST_LABEL: "1"}
    )
    seen: dict[str, dict[str, str]] = {}
    try:
        api.join_network(network.name)
        for base_url in ("", "https://proxy.test"):
            env = {"CLAUDE_CODE_OAUTH_TOKEN": token, "NODE_EXTRA_CA_CERTS": "/tmp/ca.pem"}
            if base_url:
                env["ANTHROPIC_BASE_URL"] = base_url
            code, logs = run_claude(docker_client, agent_image, network.name, env, api.tls.ca_pem)
            assert code == 0 and "Hello, token." in logs, logs
            [message] = [
                r for r in api.requests() if r["path"].split("?")[0].endswith("/v1/messages")
            ]
            seen[base_url or "api.anthropic.com"] = message["headers"]
            api.clear()
    finally:
        api.remove()
        network.remove()
    direct, based = seen["api.anthropic.com"], seen["https://proxy.test"]
    for headers in (direct, based):
        assert headers["authorization"] == f"Bearer {token}"
        assert "oauth-2025-04-20" in headers["anthropic-beta"].split(",")
        assert "x-api-key" not in headers
    # To api.anthropic.com itself it adds request-class and id headers (x-claude-code-*,
    # x-claude-1p-request-class, x-client-request-id), none of them a credential.
    assert set(based) <= set(direct), (direct, based)
    for headers in (direct, based):
        only_token = [k for k, v in headers.items() if token in v]
        assert only_token == ["authorization"], "the token travels in another header too"


def run_claude(
    client: docker.DockerClient, image: str, network: str, env: dict[str, str], ca_pem: bytes
) -> tuple[int, str]:
    """`claude -p 'say hello'` in a throwaway container of `image` on `network`."""
    container = client.containers.create(
        image,
        ["-p", "say hello"],
        entrypoint=["claude"],
        environment=env,
        network=network,
        labels={TEST_LABEL: "1"},
    )
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo("ca.pem")
            info.size, info.mode = len(ca_pem), 0o644
            tar.addfile(info, io.BytesIO(ca_pem))
        container.put_archive("/tmp", buffer.getvalue())
        container.start()
        code = int(container.wait(timeout=180)["StatusCode"])
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
