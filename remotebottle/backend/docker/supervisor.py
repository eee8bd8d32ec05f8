"""The supervisor sidecar: the agent's proposals wait here for the operator's decision.

A Python server (resources/supervisor/supervisor.py: the standard library, plus its
proposals module, the host-name rules and the Public Suffix List shipped next to it,
`script_files`) run on the agent image as its own user, on the bottle's internal network
only (it needs no way out). The agent files proposals at `http://supervisor:8090/proposals`
with `rbottle-propose` (put in its home, with a Claude Code skill saying when to use it)
and blocks until the answer. The operator's side is not on any network: a command exec'd
in the sidecar through the engine (local, or a VM's through the SSH tunnel) talks to the
server over a unix socket in the sidecar's private tmpfs, so the agent cannot list or
decide proposals.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import docker
import docker.errors

from remotebottle import hostnames
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.sidecar import (
    HARDENING,
    AgentGrant,
    SidecarSite,
    later_ready,
    logged,
)
from remotebottle.backend.docker.streams import exec_with_stdin
from remotebottle.errors import BottleError, EngineError

ALIAS = "supervisor"
PORT = 8090
URL = f"http://{ALIAS}:{PORT}"
UID = 10003
VAULT_DIR = "supervisor"
MOUNT = "/run/rbottle-vault"
SCRIPT = f"{MOUNT}/{VAULT_DIR}/supervisor.py"
CONTROL_DIR = "/run/supervisor"
CONTROL = f"{CONTROL_DIR}/control.sock"
EXIT_GONE = 3  # the script's exit status for "no such pending proposal"

PROPOSE_PATH = ".local/bin/rbottle-propose"
SKILL_PATH = ".claude/skills/rbottle-propose/SKILL.md"


class ProposalGone(BottleError):
    """The proposal is no longer waiting: decided, timed out, withdrawn, or its bottle ended."""


def _resource(name: str) -> bytes:
    return resources.files("remotebottle").joinpath(f"resources/supervisor/{name}").read_bytes()


def script_files() -> dict[str, bytes]:
    """The supervisor's script and what it imports beyond the standard library, each under
    its package path: its proposals module, the rules for host names
    (`remotebottle.hostnames`) and the Public Suffix List package they use. The script's
    directory is first on its `sys.path`."""
    package = resources.files("remotebottle")
    psl = resources.files("publicsuffixlist")
    return {
        "supervisor.py": _resource("supervisor.py"),
        "remotebottle/__init__.py": b"",
        "remotebottle/resources/supervisor/proposals.py": _resource("proposals.py"),
        "remotebottle/hostnames.py": package.joinpath("hostnames.py").read_bytes(),
        "publicsuffixlist/__init__.py": psl.joinpath("__init__.py").read_bytes(),
        "publicsuffixlist/public_suffix_list.dat": psl.joinpath(
            "public_suffix_list.dat"
        ).read_bytes(),
    }


def grant() -> AgentGrant:
    """What the agent gets from its supervisor, known before it starts: `rbottle-propose`,
    its skill, and where the supervisor answers."""
    return AgentGrant(
        env={"RBOTTLE_SUPERVISOR_URL": URL},
        home_files={PROPOSE_PATH: _resource("rbottle-propose"), SKILL_PATH: _resource("SKILL.md")},
        no_proxy=(ALIAS,),
    )


def start(site: SidecarSite) -> AgentGrant:
    """Start the bottle's supervisor (safe beside the rest of the launch: it only adds
    its own directory to the vault); its container, and the wait until it serves."""
    spec = site.plan.spec
    site.progress("starting the supervisor")
    site.vault.put(VAULT_DIR, script_files(), uid=UID)
    serve = [SCRIPT, "serve", "--port", str(PORT), "--control", CONTROL]
    try:
        for origin in sorted(hostnames.plain_http_for_tests()):
            serve += ["--plain-http-upstream", origin]
    except hostnames.Refused as exc:
        raise BottleError(str(exc)) from None
    client = site.client
    try:
        container = client.containers.create(
            site.agent_image,
            serve,
            entrypoint=["python3"],
            name=f"rb-{spec.identity}-{L.ROLE_SUPERVISOR}",
            labels=L.labels(spec.identity, spec.agent, L.ROLE_SUPERVISOR, spec.host),
            user=f"{UID}:{UID}",
            network=site.internal.id,
            networking_config={
                site.internal.id: client.api.create_endpoint_config(aliases=[ALIAS])
            },
            read_only=True,
            tmpfs={CONTROL_DIR: f"size=64k,mode=0700,uid={UID},gid={UID}"},
            volumes={site.vault.volume: {"bind": MOUNT, "mode": "ro"}},
            mem_limit="128m",
            pids_limit=64,
            **site.runtime,
            **HARDENING,
        )
        container.start()
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not start the bottle's supervisor: {exc}") from None
    return AgentGrant(
        containers=(str(container.id),),
        ready=(later_ready(container, "the supervisor", logged('"event": "listening"')),),
    )


def running(client: docker.DockerClient, identity: str | None = None) -> list[Any]:
    """The running supervisor containers on this engine (of one bottle, if given)."""
    return L.find(client, role=L.ROLE_SUPERVISOR, identity=identity, running_only=True)


def _control(client: docker.DockerClient, container_id: str, args: list[str], data: bytes) -> str:
    code, out, err = exec_with_stdin(
        client,
        container_id,
        ["python3", SCRIPT, *args, "--control", CONTROL],
        data,
        user=f"{UID}:{UID}",
    )
    if code == EXIT_GONE:
        raise ProposalGone(f"proposal {args[-1]} is no longer waiting for a decision")
    if code != 0:
        detail = (err or out).decode(errors="replace").strip()[:300]
        raise BottleError(f"the supervisor refused: {detail}")
    return out.decode()


def list_pending(client: docker.DockerClient, container_id: str) -> list[dict[str, Any]]:
    """The proposals waiting in one supervisor, as its script prints them."""
    listing = json.loads(_control(client, container_id, ["list"], b""))
    if not isinstance(listing, list):
        raise BottleError("the supervisor's list is not a JSON list")
    return listing


def deliver(
    client: docker.DockerClient, container_id: str, proposal_id: str, answer: dict[str, Any]
) -> None:
    """Give the waiting agent `answer` ({approve, reason, payload}) for `proposal_id`."""
    _control(client, container_id, ["decide", proposal_id], json.dumps(answer).encode())
