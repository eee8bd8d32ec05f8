"""Bench: what the egress proxy (pipelock) adds to the agent's HTTPS requests.

A bottle with its real egress sidecar (strict mode, TLS interception with the bottle's CA,
request-body and header DLP), a credential route to the fake Messages API served over
HTTPS, and, for this bench only, the fake API also on the bottle's internal network so
that the agent can reach it directly as well: that direct path is the baseline, measured
in the same run, alternating with the others. Three paths from inside the agent:

- direct: agent -> fake API (TLS);
- pipelock: agent -> CONNECT through pipelock, TLS intercepted -> fake API (Claude Code
  with its own key in the bottle);
- pipelock+cred: agent -> pipelock (plain HTTP, DLP) -> credential proxy (policy,
  credential injected) -> fake API (TLS) (Claude Code with a credential route).

Measures:

- CONNECT setup: a fresh TCP connection until TLS is up with the upstream (direct), or
  until pipelock answered the CONNECT and TLS is up with pipelock's minted certificate;
- first SSE text event of a streamed `POST /v1/messages`, on a fresh connection each time;
- a 10 MB request body (`POST /v1/messages`, fresh connection), which pipelock scans whole.

    python bench/egress.py [--n 100] [--big 10]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
from pathlib import Path

import docker
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tunnel import machine  # noqa: E402
from remotebottle import pins  # noqa: E402
from remotebottle.backend.docker import lab  # noqa: E402
from remotebottle.backend.docker.backend import (  # noqa: E402
    DockerBottleBackend,
    LaunchOptions,
)
from remotebottle.backend.docker.images import build_agent_image  # noqa: E402
from remotebottle.backend.docker.provision import AGENT_UID  # noqa: E402
from remotebottle.backend.spec import (  # noqa: E402
    ANTHROPIC_ROLE,
    BottleSpec,
    Command,
    RouteSpec,
    Secretish,
)
from tests.e2e.conftest import FAKE_API_ALIAS, FakeApi  # noqa: E402

# Runs in the agent: argv = n, big_mb, the fake API's CA (PEM); prints JSON {measure: [ms]}.
PROBE = r"""
import http.client, json, socket, ssl, sys, time
n, big_mb, upstream_ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
HOST, PORT, PROXY = "fake-api", 8080, ("egress-proxy", 8888)
ROUTE = "http://cred-proxy:8080/anthropic"
contexts = {
    "direct": ssl.create_default_context(cadata=upstream_ca),
    "pipelock": ssl.create_default_context(),  # the system bundle holds the egress CA
}
PATHS = ("direct", "pipelock", "pipelock+cred")
PREFIX = {"direct": "", "pipelock": "", "pipelock+cred": ROUTE}

def connect(path):
    if path == "direct":
        return http.client.HTTPSConnection(HOST, PORT, context=contexts[path], timeout=60)
    if path == "pipelock+cred":
        return http.client.HTTPConnection(*PROXY, timeout=60)
    c = http.client.HTTPSConnection(*PROXY, context=contexts[path], timeout=60)
    c.set_tunnel(HOST, PORT)
    return c

def setup(path):
    t = time.perf_counter()
    c = connect(path)
    c.connect()
    ms = (time.perf_counter() - t) * 1000
    c.close()
    return ms

stream = json.dumps({"model": "m", "max_tokens": 9, "stream": True,
                     "messages": [{"role": "user", "content": "hi"}]})
headers = {"content-type": "application/json"}

def first_event(c, path):
    t = time.perf_counter()
    c.request("POST", PREFIX[path] + "/v1/messages", stream, headers)
    r = c.getresponse()
    while b"content_block_delta" not in r.readline():
        pass
    ms = (time.perf_counter() - t) * 1000
    r.read()
    return ms

words = "the quick brown fox jumps over the lazy dog while agents write code "
text = (words * (big_mb * 1024 * 1024 // len(words) + 1))[: big_mb * 1024 * 1024]
big = json.dumps({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": text}]})

def big_body(c, path):
    t = time.perf_counter()
    c.request("POST", PREFIX[path] + "/v1/messages", big, headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        raise SystemExit(f"big body answered {r.status}")
    return (time.perf_counter() - t) * 1000

out = {}
for i in range(n):
    for p in PATHS:
        if p in contexts:
            out.setdefault(f"setup {p}", []).append(setup(p))
        fresh = connect(p)
        out.setdefault(f"sse-fresh {p}", []).append(first_event(fresh, p))
        fresh.close()
        if i < max(3, n // 10):
            fresh = connect(p)
            out.setdefault(f"big {p}", []).append(big_body(fresh, p))
            fresh.close()
print(json.dumps(out))
"""

MEASURES = (
    ("setup", "connection setup (TCP + TLS; + CONNECT via pipelock)"),
    ("sse-fresh", "first SSE text event, fresh connection"),
    ("big", "{big} MB request body, fresh connection"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="samples per path and measure")
    parser.add_argument("--big", type=int, default=10, help="size of the large body, in MB")
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    image = build_agent_image(client, lambda msg: print(msg, file=sys.stderr))
    api = FakeApi(client, image, "benchmark reply", tls=True)
    assert api.tls

    spec = BottleSpec(
        identity=f"bench-{secrets.token_hex(3)[:5]}",
        agent="bench",
        bottle="bench",
        command=Command(mode="exec", argv=("sleep", "3600")),
        egress_allowlist=(FAKE_API_ALIAS,),
        routes=(
            RouteSpec(
                name="anthropic",
                upstream=f"https://{FAKE_API_ALIAS}:8080/",
                role=ANTHROPIC_ROLE,
                inject={"x-api-key": Secretish("bench", SecretStr("sk-bench-not-a-key"))},
            ),
        ),
    )
    backend = DockerBottleBackend(client)
    try:
        options = LaunchOptions(
            tty=False,
            before_agent_start=api.join_internal_too,
            upstream_ca_certs=(api.tls.ca_pem,),
        )
        plan = lab.trusting_private_upstreams(backend.prepare(spec), [FAKE_API_ALIAS])
        with backend.launch(plan, options) as bottle:
            backend.release(bottle)
            argv = ["python3", "-c", PROBE, str(args.n), str(args.big), api.tls.ca_pem.decode()]
            result = client.containers.get(bottle.agent_container).exec_run(
                argv, user=str(AGENT_UID)
            )
            if result.exit_code != 0:
                raise RuntimeError(result.output.decode(errors="replace")[-3000:])
            samples: dict[str, list[float]] = json.loads(result.output)
    finally:
        api.remove()
    print(f"machine: {machine()}; egress proxy {pins.pipelock_image()}")
    print(f"{args.n} samples each (the large body: {len(samples['big direct'])}), alternating")
    print(f"{'from inside the agent':58} {'median':>9} {'p95':>9}  ratio  added")
    for kind, template in MEASURES:
        title = template.format(big=args.big)
        base = statistics.median(samples[f"{kind} direct"])
        for path in ("direct", "pipelock", "pipelock+cred"):
            if f"{kind} {path}" not in samples:
                continue
            values = sorted(samples[f"{kind} {path}"])
            med = statistics.median(values)
            p95 = values[max(0, int(len(values) * 0.95) - 1)]
            label = f"{title}, {'direct (baseline)' if path == 'direct' else 'via ' + path}"
            print(
                f"  {label:56} {med:7.2f}ms {p95:7.2f}ms  {med / base:5.2f}  {med - base:+7.2f}ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
