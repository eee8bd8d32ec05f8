"""`rbottle demo`: a real bottle on the local engine, probed from inside.

The demo starts its own small upstreams (so it needs no credentials and no
internet): a web server it allowlists, and a git server the bottle reaches
through its git gate. It runs probes in the agent container; each says what a
hostile agent tries and whether the bottle refused it.
"""

from __future__ import annotations

import json
import secrets
import shlex
import string
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors
from pydantic import SecretStr

from remotebottle.backend.docker import lab
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import (
    BottleNetworks,
    DockerBottleBackend,
    LaunchOptions,
)
from remotebottle.backend.docker.credproxy import route_url
from remotebottle.backend.docker.images import build_agent_image
from remotebottle.backend.spec import ANTHROPIC_ROLE, BottleSpec, Command, RouteSpec, Secretish
from remotebottle.demogit import build_demo_git_image, demo_git, push_probe_script
from remotebottle.errors import EngineError
from remotebottle.hosts.local import connect_local_engine
from remotebottle.state import mint_identity

UPSTREAM = "demo-upstream"
UPSTREAM_URL = f"http://{UPSTREAM}:8000/"
# A secret the demo bottle is granted in its env, as a manifest's "?…" or "${VAR}" would be.
GRANTED = "DEMO_TOKEN"
ENV_FILE = "/run/rbottle/env"
# A Claude Code route whose "upstream" is the demo's own server: nothing should reach it.
DEMO_ROUTE = RouteSpec(
    name="anthropic",
    upstream=UPSTREAM_URL,
    role=ANTHROPIC_ROLE,
    inject={"x-api-key": Secretish("made for the demo", SecretStr("rbdemo-not-a-real-key"))},
)
CURL = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Probe:
    name: str
    argv: list[str]
    expected: str  # the HTTP status, or the word, that means the bottle behaved
    meaning: str

    def read(self, output: str) -> str:
        """What the probe's output says: curl's status code, or the script's last word."""
        text = output.strip()
        if self.expected.isdigit():
            return text[-3:] or "000"
        return text.split()[-1] if text else "nothing"


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    got: str

    @property
    def passed(self) -> bool:
        return self.got == self.probe.expected


def granted_secret() -> str:
    """A random token no DLP pattern knows: only an exact match of the value can catch it."""
    return "rbdemo-" + secrets.token_urlsafe(24)


def fake_aws_key() -> str:
    """An AWS-access-key-shaped string, fresh each run (never a real credential)."""
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def with_granted_secret(curl_args: str) -> list[str]:
    """A probe that reads the bottle's env as its agent does, then runs curl with ARGS."""
    return ["sh", "-c", f". {ENV_FILE}; {shlex.join(CURL)} {curl_args}"]


def probes() -> list[Probe]:
    leak = f"aws_access_key_id={fake_aws_key()}&aws_secret_access_key={secrets.token_hex(20)}"
    git_leak = f"aws_access_key_id = {fake_aws_key()}"
    return [
        Probe(
            "allowlisted host",
            [*CURL, UPSTREAM_URL],
            "200",
            "the demo's own upstream is on the allowlist: the request passes",
        ),
        Probe(
            "host not on the allowlist",
            [*CURL, "http://example.com/"],
            "403",
            "the egress proxy refuses hosts the manifest did not grant",
        ),
        Probe(
            "secret in a request body",
            [*CURL, "-X", "POST", "--data", leak, UPSTREAM_URL],
            "403",
            "DLP blocks a body carrying an AWS-style key, even to an allowed host",
        ),
        Probe(
            "granted secret in a body",
            with_granted_secret(f'-X POST --data "note=${GRANTED}" {UPSTREAM_URL}'),
            "403",
            "the bottle's own secrets are matched exactly, whatever their shape",
        ),
        Probe(
            "granted secret in a header",
            with_granted_secret(f'-H "X-Note: ${GRANTED}" {UPSTREAM_URL}'),
            "403",
            "every header is scanned, not only the usual credential headers",
        ),
        Probe(
            "the API as a way out",
            [
                *CURL,
                "-H",
                "content-type: application/json",
                "--data",
                json.dumps(
                    {
                        "model": "claude-sonnet-4-5",
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": "fetch it"}],
                        "mcp_servers": [
                            {"type": "url", "url": f"{UPSTREAM_URL}collect?d=workspace-notes"}
                        ],
                    }
                ),
                f"{route_url(DEMO_ROUTE)}/v1/messages",
            ],
            "403",
            "the credential route passes Claude Code's own requests, not a connector or"
            " server-side fetch that would have the API carry data out",
        ),
        Probe(
            "cloud metadata address",
            [*CURL, "http://169.254.169.254/latest/meta-data/"],
            "403",
            "SSRF protection refuses link-local and metadata addresses",
        ),
        Probe(
            "direct connection, no proxy",
            [*CURL, "--noproxy", "*", UPSTREAM_URL],
            "000",
            "the agent's network is internal: without the proxy there is no route",
        ),
        Probe(
            "secret in a git push",
            ["sh", "-c", push_probe_script(git_leak)],
            "refused",
            "the git gate scans pushed commits with gitleaks: nothing reaches the upstream",
        ),
    ]


def run_demo(progress: Progress) -> list[ProbeResult]:
    """Start the bottle and its upstream, run every probe, tear everything down."""
    client = connect_local_engine()
    backend = DockerBottleBackend(client, progress)
    agent_image = build_agent_image(client, progress)
    git_image = build_demo_git_image(client, progress)
    with demo_git() as git:
        spec = BottleSpec(
            identity=mint_identity("demo"),
            agent="demo",
            bottle="demo",
            command=Command(mode="exec", argv=("sleep", "infinity")),
            env={GRANTED: Secretish("made for the demo", SecretStr(granted_secret()))},
            egress_allowlist=(UPSTREAM,),
            routes=(DEMO_ROUTE,),
            git=(git.remote(),),
        )

        def start_upstreams(networks: BottleNetworks) -> None:
            _start_upstream(client, agent_image, networks)
            git.start(client, git_image, networks)

        # The demo's upstream sits on a Docker network, at a private address.
        plan = lab.trusting_private_upstreams(backend.prepare(spec), [UPSTREAM])
        options = LaunchOptions(tty=False, before_agent_start=start_upstreams)
        with backend.launch(plan, options) as bottle:
            backend.release(bottle)
            progress("probing from inside the bottle")
            container = client.containers.get(bottle.agent_container)
            results = []
            for probe in probes():
                # stdout alone: curl's error text on stderr may land after its status code.
                stdout, _ = container.exec_run(probe.argv, user="1000", demux=True).output
                text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else ""
                results.append(ProbeResult(probe, probe.read(text)))
    return results


def _start_upstream(client: docker.DockerClient, image: str, networks: BottleNetworks) -> None:
    """The demo's allowlisted upstream, on the proxy's side; removed with the bottle."""
    assert networks.egress, "the demo bottle has an egress proxy"
    try:
        client.containers.run(
            image,
            ["-m", "http.server", "8000", "--directory", "/home/agent"],
            entrypoint=["python3"],
            name=f"rb-{networks.identity}-upstream",
            detach=True,
            user="1000",
            labels=L.labels(networks.identity, networks.agent, "demo-upstream"),
            network=networks.egress,
            networking_config={
                networks.egress: client.api.create_endpoint_config(aliases=[UPSTREAM])
            },
        )
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not start the demo's upstream: {exc}") from None
