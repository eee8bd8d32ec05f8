"""Bench: what the credential proxy adds to each request the agent makes.

A bottle with one route to the fake Messages API; for this bench only, the fake API
is also put on the bottle's internal network, so that the agent can reach it directly
as well. From inside the agent, on kept-alive connections, alternating:

- round trip of a small request (`GET /v1/models`): direct vs through the proxy;
- time to the first text event of a streamed `POST /v1/messages`, on a new connection
  from the agent each time: direct vs proxy (which keeps its upstream connections).

    python bench/cred_proxy.py [--n 200]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

import docker
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tunnel import machine  # noqa: E402
from remotebottle.backend.docker.backend import (  # noqa: E402
    DockerBottleBackend,
    LaunchOptions,
)
from remotebottle.backend.docker.images import build_agent_image  # noqa: E402
from remotebottle.backend.docker.provision import AGENT_UID  # noqa: E402
from remotebottle.backend.spec import BottleSpec, Command, RouteSpec, Secretish  # noqa: E402
from tests.e2e.conftest import FAKE_API_ALIAS, FakeApi  # noqa: E402

# Runs in the agent: N alternating samples per path; prints JSON {path: [ms, ...]}.
PROBE = """
import http.client, json, statistics, sys, time
n = int(sys.argv[1])
paths = {"direct": ("fake-api", 8080, ""), "proxy": ("cred-proxy", 8080, "/api")}
conns = {k: http.client.HTTPConnection(h, p) for k, (h, p, _) in paths.items()}
body = json.dumps({"model": "m", "max_tokens": 9, "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]})
out = {f"{k} {m}": [] for k in paths for m in ("get", "sse")}
for _ in range(n):
    for k, (_, _, prefix) in paths.items():
        c = conns[k]
        t = time.perf_counter()
        c.request("GET", prefix + "/v1/models")
        c.getresponse().read()
        out[f"{k} get"].append((time.perf_counter() - t) * 1000)
        fresh = http.client.HTTPConnection(*paths[k][:2])
        t = time.perf_counter()
        fresh.request("POST", prefix + "/v1/messages", body, {"content-type": "application/json"})
        r = fresh.getresponse()
        while b"content_block_delta" not in r.readline():
            pass
        out[f"{k} sse"].append((time.perf_counter() - t) * 1000)
        r.read()
        fresh.close()
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per path and kind")
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    image = build_agent_image(client, lambda msg: print(msg, file=sys.stderr))
    api = FakeApi(client, image, "benchmark reply")

    spec = BottleSpec(
        identity=f"bench-{secrets.token_hex(3)[:5]}",
        agent="bench",
        bottle="bench",
        command=Command(mode="exec", argv=("sleep", "3600")),
        egress_enabled=False,
        routes=(
            RouteSpec(
                name="api",
                upstream=f"http://{FAKE_API_ALIAS}:8080/",
                inject={"x-api-key": Secretish("bench", SecretStr("sk-bench"))},
            ),
        ),
    )
    backend = DockerBottleBackend(client)
    try:
        options = LaunchOptions(tty=False, before_agent_start=api.join_internal_too)
        with backend.launch(backend.prepare(spec), options) as bottle:
            result = client.containers.get(bottle.agent_container).exec_run(
                ["python3", "-c", PROBE, str(args.n)], user=str(AGENT_UID)
            )
            if result.exit_code != 0:
                raise RuntimeError(result.output.decode(errors="replace")[-500:])
            samples: dict[str, list[float]] = json.loads(result.output)
    finally:
        api.remove()
    print(f"machine: {machine()}; {args.n} samples each, alternating, kept-alive connections")
    print(f"{'from inside the agent':46} {'median':>8} {'p95':>8}  ratio")
    for kind, title in (("get", "GET /v1/models"), ("sse", "first SSE text event")):
        base = sorted(samples[f"direct {kind}"])
        for path in ("direct", "proxy"):
            values = sorted(samples[f"{path} {kind}"])
            med, p95 = values[len(values) // 2], values[int(len(values) * 0.95) - 1]
            label = f"{title}, {'direct (baseline)' if path == 'direct' else 'via cred-proxy'}"
            print(f"  {label:44} {med:6.2f}ms {p95:6.2f}ms  {med / base[len(base) // 2]:4.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
