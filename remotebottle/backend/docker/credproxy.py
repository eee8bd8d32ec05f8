"""The credential proxy sidecar: the agent calls a route, the proxy adds the secret.

A small Node server (resources/credproxy/credproxy.js) run on the agent image as
its own user. It serves `http://cred-proxy:8080/<route>/...` by forwarding to the
route's upstream with the route's `inject` headers, after dropping any credential
the agent sent. The route table, secret values included, lives only in the
bottle's tmpfs vault; `reload_routes` replaces it in a running bottle (SIGHUP).
The proxy reaches upstreams on the bottle's outside network, not through the egress
proxy: the injected secret would (rightly) trip its DLP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

import docker
import docker.errors

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.sidecar import (
    AgentGrant,
    SidecarSite,
    internal_subnet,
    later_ready,
    logged,
    start_container,
)
from remotebottle.backend.docker.vault import Vault
from remotebottle.backend.spec import ANTHROPIC_ROLE, RouteSpec
from remotebottle.errors import BottleError, EngineError

ALIAS = "cred-proxy"
PORT = 8080
UID = 10001
VAULT_DIR = "credproxy"
MOUNT = "/run/rbottle-vault"
SCRIPTS = ("credproxy.js", "anthropic_policy.js")
TRUST_FILE = "upstream-cas.pem"
# What Claude Code holds instead of a token: it must send something, and this is not a secret.
PLACEHOLDER_TOKEN = "rbottle-placeholder-the-credential-proxy-holds-the-token"  # noqa: S105


def route_url(route: RouteSpec) -> str:
    """Where the agent sends requests for `route`."""
    return f"http://{ALIAS}:{PORT}/{route.name}"


def route_table(routes: Sequence[RouteSpec]) -> bytes:
    """The proxy's route table, with the secret header values: for the vault only."""
    table = []
    for route in routes:
        inject: dict[str, str] = {}
        for header, value in route.inject.items():
            if value.value is None:
                raise BottleError(f"route {route.name}: header {header} was not resolved")
            inject[header] = value.value.get_secret_value()
        entry: dict[str, Any] = {"name": route.name, "upstream": route.upstream, "inject": inject}
        if route.role == ANTHROPIC_ROLE:
            headers = {h.lower() for h in inject}
            api_key = "x-api-key" in headers and "authorization" not in headers
            entry["policy"] = {"grants": sorted(route.grants), "apiKey": api_key}
        table.append(entry)
    return json.dumps({"routes": table}).encode()


def agent_env(routes: Sequence[RouteSpec]) -> dict[str, str]:
    """Claude Code's settings for the `anthropic-base-url` route; nothing without one."""
    anthropic = next((r for r in routes if r.role == ANTHROPIC_ROLE), None)
    if anthropic is None:
        return {}
    return {
        "ANTHROPIC_BASE_URL": route_url(anthropic),
        "CLAUDE_CODE_OAUTH_TOKEN": PLACEHOLDER_TOKEN,
    }


def _scripts() -> dict[str, bytes]:
    root = resources.files("remotebottle").joinpath("resources/credproxy")
    return {name: root.joinpath(name).read_bytes() for name in SCRIPTS}


def start(
    site: SidecarSite, egress_proxy: str | None = None, upstream_cas: Sequence[bytes] = ()
) -> AgentGrant:
    """Start the bottle's credential proxy, if it has routes.

    Args:
        site: the bottle being launched.
        upstream_cas: PEM CA certificates trusted for upstream TLS beyond Node's own roots
            (the user's extra CAs; the tests' own upstreams).
        egress_proxy: the egress proxy's address on the outside network, when the bottle
            has one: the agent then reaches this proxy only through it (so request bodies
            pass its DLP), and this proxy serves that address alone. Without one, the
            proxy joins the agent's network and serves connections arriving there.
    """
    spec = site.plan.spec
    if not spec.routes:
        return AgentGrant()
    if site.outside is None:
        raise BottleError("the credential proxy needs the bottle's outside network")
    site.progress("starting the credential proxy")
    files = {**_scripts(), "routes.json": route_table(spec.routes)}
    trust = b"".join(upstream_cas)
    if trust:
        files[TRUST_FILE] = trust
    site.vault.put(VAULT_DIR, files, uid=UID)
    served = f"peer:{egress_proxy}" if egress_proxy else internal_subnet(site)
    proxy = start_container(
        site,
        site.agent_image,
        [f"{MOUNT}/{VAULT_DIR}/{name}" for name in ("credproxy.js", "routes.json")]
        + [str(PORT), served],
        role=L.ROLE_CRED_PROXY,
        alias=None if egress_proxy else ALIAS,
        outside_aliases=[ALIAS] if egress_proxy else None,
        entrypoint=["node"],
        environment={"NODE_EXTRA_CA_CERTS": f"{MOUNT}/{VAULT_DIR}/{TRUST_FILE}"} if trust else {},
        user=f"{UID}:{UID}",
        volumes={site.vault.volume: {"bind": MOUNT, "mode": "ro"}},
        mem_limit="256m",
        pids_limit=128,
    )
    no_proxy = () if egress_proxy else (ALIAS,)
    return AgentGrant(
        env=agent_env(spec.routes),
        no_proxy=no_proxy,
        containers=(str(proxy.id),),
        ready=(later_ready(proxy, "the credential proxy", logged('"event":"listening"')),),
    )


def current_table(client: docker.DockerClient, identity: str) -> list[dict[str, Any]]:
    """The route table bottle `identity`'s proxy serves, secret values included (they stay in
    memory: for changing the table, never for showing it)."""
    _running_proxy(client, identity)
    raw = Vault.attach(client, identity).read(VAULT_DIR, "routes.json")
    return list(json.loads(raw)["routes"])


def reload_routes(client: docker.DockerClient, identity: str, routes: Sequence[RouteSpec]) -> None:
    """Replace the route table of bottle `identity`'s running proxy; no restart.

    Requests already in flight finish on the old table; the next ones use the new.
    """
    reload_table(client, identity, route_table(routes))


def reload_table(client: docker.DockerClient, identity: str, table: bytes) -> None:
    """`reload_routes` with the table already serialised (see `route_table`)."""
    proxy = _running_proxy(client, identity)
    vault = Vault.attach(client, identity)
    previous = vault.read(VAULT_DIR, "routes.json")
    problem = _swap_table(proxy, vault, table)
    if problem:
        # The vault must hold what the proxy serves, or the next change builds on a lie.
        _swap_table(proxy, vault, previous)
        raise BottleError(f"the credential proxy {problem}; it keeps the routes it had")


def _swap_table(proxy: Any, vault: Vault, table: bytes) -> str | None:
    """Write `table` and have the proxy load it; None when it did, else what went wrong."""
    before = _log_counts(proxy)
    vault.put(VAULT_DIR, {"routes.json": table}, uid=UID)
    try:
        proxy.kill(signal="SIGHUP")
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not signal the credential proxy: {exc}") from None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reloaded, failed = _log_counts(proxy)
        if failed > before[1]:
            return "rejected the new route table"
        if reloaded > before[0]:
            return None
        time.sleep(0.1)
    return "did not confirm the new route table"


def _running_proxy(client: docker.DockerClient, identity: str) -> Any:
    found = L.find(client, role=L.ROLE_CRED_PROXY, identity=identity, running_only=True)
    if not found:
        raise BottleError(
            f"bottle {identity} was started without a credential proxy: no routes to change",
            hint="add a cred_proxy route to the bottle in the manifest, then resume it",
        )
    return found[0]


def _log_counts(proxy: Any) -> tuple[int, int]:
    logs = proxy.logs().decode(errors="replace")
    return logs.count('"event":"reloaded"'), logs.count('"event":"reload-failed"')
