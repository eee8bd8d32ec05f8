"""The credential proxy: the agent calls a route, the upstream sees the secret, the agent never.

The upstream is the fake Messages API, which records every request's headers. It sits on
the bottle's outside network, where the agent has no route: the proxy is its only way there.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from pydantic import SecretStr

from remotebottle.backend.docker import credproxy
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.provision import AGENT_UID
from remotebottle.backend.spec import ANTHROPIC_ROLE, BottleSpec, Command, RouteSpec, Secretish
from remotebottle.errors import BottleError
from remotebottle.hosts.engine import open_engine
from remotebottle.ops.images import place_images
from remotebottle.ops.stream import stream_output
from tests.e2e.conftest import FAKE_API_URL, FakeApi, finish, rbottle
from tests.e2e.vmparts import grep_vm_disk, target, vm
from tests.integration.fakevm import FakeVm, fakevm

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e


def token() -> str:
    return f"sk-ant-e2e-{secrets.token_hex(16)}"


def anthropic_route(value: str) -> RouteSpec:
    return RouteSpec(
        name="anthropic",
        upstream=f"{FAKE_API_URL}/",
        role=ANTHROPIC_ROLE,
        inject={"x-api-key": Secretish("env", SecretStr(value))},
    )


def spec(command: Command, *routes: RouteSpec) -> BottleSpec:
    return BottleSpec(
        identity=f"creds-{secrets.token_hex(3)[:5]}",
        agent="creds",
        bottle="proxied",
        command=command,
        egress_enabled=False,
        routes=routes,
    )


def run(client: docker.DockerClient, cid: str, script: str) -> tuple[int, str]:
    result = client.api.exec_create(cid, ["sh", "-c", script], user=str(AGENT_UID))
    out = client.api.exec_start(result["Id"])
    code = client.api.exec_inspect(result["Id"])["ExitCode"]
    return int(code), out.decode(errors="replace")


def exported(client: docker.DockerClient, cid: str) -> bytes:
    """The agent container's whole filesystem (what `docker export` gives)."""
    return b"".join(client.api.export(cid))


def print_turn(
    client: docker.DockerClient, api: FakeApi, secret: str
) -> Iterator[tuple[int, str, dict[str, Any], bytes]]:
    """Run one `claude -p` turn through the proxy; yield (exit, output, inspect, filesystem)."""
    backend = DockerBottleBackend(client)
    plan = backend.prepare(spec(Command(mode="print", prompt="say hello"), anthropic_route(secret)))
    out, err = io.BytesIO(), io.BytesIO()
    with backend.launch(plan, LaunchOptions(tty=False, before_agent_start=api.join)) as bottle:
        code = stream_output(
            client,
            bottle.agent_container,
            stdout=out,
            stderr=err,
            on_attached=lambda: backend.release(bottle),
        )
        inspect = client.api.inspect_container(bottle.agent_container)
        yield (
            code,
            out.getvalue().decode() + err.getvalue().decode(),
            inspect,
            exported(client, bottle.agent_container),
        )


def assert_upstream_saw_only(api: FakeApi, secret: str) -> None:
    messages = [r for r in api.requests() if r["path"].startswith("/v1/messages")]
    assert messages, "Claude Code's request never reached the upstream"
    for request in messages:
        assert request["headers"].get("x-api-key") == secret
        assert "authorization" not in request["headers"], "the agent's placeholder went upstream"


def test_claude_code_turn_through_the_proxy_and_the_token_is_not_in_the_agent(
    docker_client: docker.DockerClient, fake_api: Callable[..., FakeApi]
) -> None:
    secret = token()
    api = fake_api(reply="Hello through the credential proxy.")
    for code, output, inspect, filesystem in print_turn(docker_client, api, secret):
        assert code == 0, output
        assert "Hello through the credential proxy." in output
        env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
        assert env["ANTHROPIC_BASE_URL"] == "http://cred-proxy:8080/anthropic"
        assert env["CLAUDE_CODE_OAUTH_TOKEN"] == credproxy.PLACEHOLDER_TOKEN
        assert secret not in json.dumps(inspect)
        assert secret.encode() not in filesystem
    assert_upstream_saw_only(api, secret)


@pytest.fixture
def proxied_bottle(
    docker_client: docker.DockerClient, fake_api: Callable[..., FakeApi]
) -> Iterator[tuple[str, str, FakeApi, str]]:
    """A running bottle (`sleep`) with a plain route to the fake API: (identity, agent id,
    api, secret)."""
    secret = token()
    api = fake_api()
    route = RouteSpec(
        name="upstream",
        upstream=f"{FAKE_API_URL}/v1",
        inject={"Authorization": Secretish("env", SecretStr(f"Bearer {secret}"))},
    )
    backend = DockerBottleBackend(docker_client)
    plan = backend.prepare(spec(Command(mode="exec", argv=("sleep", "600")), route))
    with backend.launch(plan, LaunchOptions(tty=False, before_agent_start=api.join)) as bottle:
        backend.release(bottle)
        yield plan.spec.identity, bottle.agent_container, api, secret


CURL = "curl -sS -m 10 -o /dev/null -w '%{http_code}'"


def test_the_agent_reaches_the_upstream_only_through_the_proxy_and_never_holds_the_secret(
    docker_client: docker.DockerClient, proxied_bottle: tuple[str, str, FakeApi, str]
) -> None:
    _, cid, api, secret = proxied_bottle
    code, status = run(
        docker_client,
        cid,
        f"{CURL} -H 'Authorization: Bearer stolen' -H 'X-Api-Key: mine'"
        " 'http://cred-proxy:8080/upstream/models?limit=1'",
    )
    assert (code, status) == (0, "200")
    seen = api.requests()[-1]
    assert seen["path"] == "/v1/models?limit=1"
    assert seen["headers"]["authorization"] == f"Bearer {secret}"
    assert "x-api-key" not in seen["headers"]

    assert run(docker_client, cid, f"{CURL} http://cred-proxy:8080/nope/models")[1] == "404"
    assert run(docker_client, cid, f"{CURL} {FAKE_API_URL}/v1/models")[0] != 0, (
        "the agent reached the upstream directly"
    )

    # Every process's environment, the home directory, the container's config.
    code, leaked = run(
        docker_client,
        cid,
        "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n';"
        " find /home/agent -type f -size -4M -exec cat {} +; env",
    )
    assert code == 0 and "NO_PROXY=" in leaked
    assert secret not in leaked
    assert secret not in json.dumps(docker_client.api.inspect_container(cid))


def test_routes_are_replaced_in_a_running_bottle(
    docker_client: docker.DockerClient, proxied_bottle: tuple[str, str, FakeApi, str]
) -> None:
    identity, cid, api, _ = proxied_bottle
    fresh = token()
    credproxy.reload_routes(
        docker_client,
        identity,
        [
            RouteSpec(
                name="renamed",
                upstream=f"{FAKE_API_URL}/v1",
                inject={"x-api-key": Secretish("env", SecretStr(fresh))},
            )
        ],
    )
    assert run(docker_client, cid, f"{CURL} http://cred-proxy:8080/upstream/models")[1] == "404"
    assert run(docker_client, cid, f"{CURL} http://cred-proxy:8080/renamed/models")[1] == "200"
    seen = api.requests()[-1]["headers"]
    assert seen["x-api-key"] == fresh and "authorization" not in seen


def test_on_a_vm_the_token_reaches_the_upstream_and_never_the_vms_disk(
    vm: FakeVm, docker_client: docker.DockerClient, agent_image: str
) -> None:
    secret = token()
    with open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine:
        backend = DockerBottleBackend(engine.client)
        bottle_spec = spec(Command(mode="print", prompt="say hello"), anthropic_route(secret))
        place_images(engine, backend.prepare(bottle_spec), progress=lambda _m: None)
        api = FakeApi(engine.client, agent_image, "Hello from the proxy on the VM.")
        try:
            for code, output, inspect, filesystem in print_turn(engine.client, api, secret):
                assert code == 0, output
                assert "Hello from the proxy on the VM." in output
                assert secret not in json.dumps(inspect)
                assert secret.encode() not in filesystem
            assert_upstream_saw_only(api, secret)
        finally:
            api.remove()
    assert grep_vm_disk(vm, secret) == "", "the token is on the VM's disk"


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["quiet", "debug-logging"])
def test_cli_start_gives_the_agent_the_route_and_a_placeholder_only(
    write_manifest: Callable[..., Path], agent_image: str, debug: list[str]
) -> None:
    """With --debug every logger (docker-py, urllib3, paramiko, ours) writes to stderr:
    the route's secret must still be in none of it."""
    secret = token()
    project = write_manifest(
        {
            "bottles": {
                "proxied": {
                    "egress": {"enabled": False},
                    "cred_proxy": {
                        "routes": [
                            {
                                "name": "anthropic",
                                "role": "anthropic-base-url",
                                "upstream": "https://upstream.invalid",
                                "inject": {"x-api-key": "${RB_ANTHROPIC_KEY}"},
                            }
                        ]
                    },
                }
            },
            "agents": {"worker": {"bottle": "proxied"}},
        }
    ).parent
    probe = (
        'echo "$ANTHROPIC_BASE_URL $CLAUDE_CODE_OAUTH_TOKEN";'
        " curl -s -o /dev/null -w '%{http_code}\\n' \"$ANTHROPIC_BASE_URL/v1/models\";"
        " cat /proc/[0-9]*/environ | tr '\\0' '\\n'"
    )
    code, out, err = finish(
        rbottle(
            project,
            *debug,
            "start",
            "worker",
            "--yes",
            "--",
            "sh",
            "-c",
            probe,
            env={"RB_ANTHROPIC_KEY": secret},
        )
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"http://cred-proxy:8080/anthropic {credproxy.PLACEHOLDER_TOKEN}"
    assert lines[1] == "502", "the proxy should answer for an unreachable upstream"
    assert secret not in out + err
    if debug:
        assert " DEBUG: " in err, "--debug logged nothing"


STREAM_PROBE = """
import json, time, urllib.request
body = {"model": "m", "max_tokens": 9, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}
request = urllib.request.Request(
    "http://cred-proxy:8080/upstream/messages", data=json.dumps(body).encode(),
    headers={"content-type": "application/json"})
first = last = None
with urllib.request.urlopen(request) as response:
    for line in response:
        if b"content_block_delta" in line and first is None:
            first = time.monotonic()
        if b"message_stop" in line:
            last = time.monotonic()
print(f"{last - first:.3f}")
"""


def test_streamed_responses_pass_event_by_event(
    docker_client: docker.DockerClient, proxied_bottle: tuple[str, str, FakeApi, str]
) -> None:
    """The fake API sends its reply in three text chunks 50 ms apart, so at least 100 ms
    pass between the first chunk and the end of the stream at the source. A buffering proxy
    delivers them together (about 1 ms apart); the bar sits at half the source's spread
    because the first chunk itself can reach the client late on a busy machine."""
    _, cid, _, _ = proxied_bottle
    code, out = run(docker_client, cid, f"python3 -c '{STREAM_PROBE}'")
    assert code == 0, out
    assert float(out) >= 0.05, f"the stream arrived in one piece ({out.strip()} s apart)"


def test_one_bad_request_does_not_take_the_proxy_down_and_outsiders_are_refused(
    docker_client: docker.DockerClient, proxied_bottle: tuple[str, str, FakeApi, str]
) -> None:
    identity, cid, api, _ = proxied_bottle
    assert run(docker_client, cid, f"{CURL} 'http://cred-proxy:8080/%E0%A4%A/x'")[1] == "400"
    encoded = "http://cred-proxy:8080/upstream/models/..%2F..%2Fother"
    assert run(docker_client, cid, f"{CURL} '{encoded}'")[1] == "400"
    assert run(docker_client, cid, f"{CURL} http://cred-proxy:8080/upstream/models")[1] == "200"

    # From the outside network (where the upstream sits), the proxy serves nobody.
    labels = [f"io.remotebottle.identity={identity}", "io.remotebottle.role=cred-proxy"]
    [proxy] = docker_client.containers.list(filters={"label": labels})
    outside = next(
        net["IPAddress"]
        for name, net in proxy.attrs["NetworkSettings"]["Networks"].items()
        if name.endswith("-egress")
    )
    result = api.container.exec_run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{outside}:8080/upstream/x"]
    )
    assert result.output.decode() == "403"
    assert not any(r["path"] == "/v1/x" for r in api.requests()), "an outsider got through"


def test_a_table_the_proxy_rejects_leaves_the_old_one_in_force_and_in_the_vault(
    docker_client: docker.DockerClient, proxied_bottle: tuple[str, str, FakeApi, str]
) -> None:
    identity, cid, _, _ = proxied_bottle
    before = credproxy.current_table(docker_client, identity)
    bad = json.dumps({"routes": [{"name": "x", "upstream": "ftp://nope.example"}]}).encode()
    with pytest.raises(BottleError, match="rejected the new route table"):
        credproxy.reload_table(docker_client, identity, bad)
    assert credproxy.current_table(docker_client, identity) == before
    assert run(docker_client, cid, f"{CURL} http://cred-proxy:8080/upstream/models")[1] == "200"
