"""The git gate sidecar: every `git` remote of a bottle, reached only through it.

The agent's ~/.gitconfig rewrites each upstream URL (`ssh://[User@]Host[:Port]/`, and the
scp-like `[User@]Host:`, Host being the entry's alias) to the gate,
`http://git-gate:8080/<remote>/<form>/`, which it reaches on the bottle's internal network.
The gate (resources/gitgate: a small smart-HTTP server over `git http-backend`, on the
agent image plus the pinned gitleaks) holds a bare mirror per repository, brings it up to
date from the upstream (the entry's Hostname) over SSH before every fetch or push (failing
when the upstream cannot be reached), scans every object a push adds with gitleaks, refuses
force-pushes, deletions and CI changes unless the remote allows them, and forwards clean
pushes upstream. The upstream private key, its host key (pinned for Hostname) and the SSH
settings live only in the bottle's tmpfs vault, readable by the gate's uid alone; the
upstream's `ExtraHosts` are the gate's, not the agent's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import docker
import docker.errors

from remotebottle import hostkeys
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.images import build_git_gate_image
from remotebottle.backend.docker.sidecar import (
    AgentGrant,
    SidecarSite,
    answers,
    internal_subnet,
    start_container,
    wait_ready,
)
from remotebottle.backend.spec import GitRemoteSpec
from remotebottle.errors import BottleError, EngineError

ALIAS = "git-gate"
PORT = 8080
UID = 10002
VAULT_DIR = "gitgate"
MOUNT = "/vault"  # the gate image's server reads /vault/gitgate
MIRRORS = "/srv/mirrors"
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Remote:
    """One upstream as the gate names it (`r0`, `r1`, ...)."""

    name: str
    spec: GitRemoteSpec


def remotes(specs: Sequence[GitRemoteSpec]) -> list[Remote]:
    """Name the bottle's upstreams; refuse what cannot be written safely into configs."""
    named: list[Remote] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if not _USER.match(spec.user):
            raise BottleError(f"git remote {spec.host}: User {spec.user!r} is not a user name")
        if spec.url_prefix in seen:
            raise BottleError(f"git remote {spec.url_prefix} is listed twice")
        seen.add(spec.url_prefix)
        named.append(Remote(f"r{index}", spec))
    return named


def gate_url(remote: Remote, form: str) -> str:
    return f"http://{ALIAS}:{PORT}/{remote.name}/{form}/"


def agent_gitconfig(named: Sequence[Remote]) -> bytes:
    """The agent's ~/.gitconfig: each upstream URL form rewritten to the gate."""
    lines: list[str] = []
    for remote in named:
        spec = remote.spec
        # With and without the user, as with an ssh_config Host alias.
        lines.append(f'[url "{gate_url(remote, "ssh")}"]')
        for user in (f"{spec.user}@", ""):
            lines.append(f"\tinsteadOf = ssh://{user}{spec.host}:{spec.port}/")
            if spec.port == 22:
                lines.append(f"\tinsteadOf = ssh://{user}{spec.host}/")
        lines.append(f'[url "{gate_url(remote, "scp")}"]')
        lines.append(f"\tinsteadOf = {spec.user}@{spec.host}:")
        lines.append(f"\tinsteadOf = {spec.host}:")
    # The gate is on the agent's own network: never through the egress proxy.
    lines += [f'[http "http://{ALIAS}:{PORT}/"]', "\tproxy = "]
    return ("\n".join(lines) + "\n").encode()


def vault_files(named: Sequence[Remote]) -> dict[str, bytes]:
    """The gate's secrets and SSH settings: for the vault only.

    Raises:
        BottleError: an IdentityFile cannot be read.
    """
    directory = f"{MOUNT}/{VAULT_DIR}"
    files: dict[str, bytes] = {}
    config: list[str] = []
    known_hosts: list[str] = []
    for remote in named:
        spec = remote.spec
        config += [
            f"Host {remote.name}",
            f"  HostName {spec.target}",
            f"  Port {spec.port}",
            f"  User {spec.user}",
        ]
        if spec.identity_file is not None:
            config.append(f"  IdentityFile {directory}/{remote.name}.key")
            files[f"{remote.name}.key"] = _read_key(spec)
        name = hostkeys.known_hosts_name(spec.target, spec.port)
        known_hosts.append(f"{name} {' '.join(spec.known_host_key.split()[:2])}")
    config += [
        "Host *",
        "  IdentitiesOnly yes",
        "  IdentityAgent none",
        "  StrictHostKeyChecking yes",
        f"  UserKnownHostsFile {directory}/known_hosts",
        "  GlobalKnownHostsFile /dev/null",
        "  CheckHostIP no",
        "  UpdateHostKeys no",
        "  BatchMode yes",
        "  PasswordAuthentication no",
        "  KbdInteractiveAuthentication no",
        "  ConnectTimeout 15",
        "  ServerAliveInterval 15",
        "  ServerAliveCountMax 4",
    ]
    files["ssh_config"] = ("\n".join(config) + "\n").encode()
    files["known_hosts"] = ("\n".join(known_hosts) + "\n").encode()
    files["remotes.json"] = json.dumps(
        {"remotes": {r.name: policy(r.spec) for r in named}}
    ).encode()
    return files


def policy(spec: GitRemoteSpec) -> dict[str, bool]:
    """What the gate's pre-receive hook may forward for this remote beyond fast-forwards of
    commits that leave CI definitions alone (the gate server's POLICY_KEYS)."""
    return {
        "allowForcePush": spec.allow_force_push,
        "allowDeletes": spec.allow_deletes,
        "allowCIChanges": spec.allow_ci_changes,
    }


def _read_key(spec: GitRemoteSpec) -> bytes:
    assert spec.identity_file is not None
    path = spec.identity_file.expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BottleError(
            f"git remote {spec.host}: cannot read IdentityFile {path}: {exc.strerror}",
            hint="point IdentityFile at the private key the upstream accepts",
        ) from None
    if b"PRIVATE KEY" not in data:
        raise BottleError(f"git remote {spec.host}: IdentityFile {path} is not a private key")
    return data if data.endswith(b"\n") else data + b"\n"


def extra_hosts(specs: Sequence[GitRemoteSpec]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for spec in specs:
        merged.update(spec.extra_hosts)
    return merged


def start(site: SidecarSite) -> AgentGrant:
    """Start the bottle's git gate; the agent gets a ~/.gitconfig pointing at it."""
    spec = site.plan.spec
    if not spec.git:
        return AgentGrant()
    if site.outside is None:
        raise BottleError("the git gate needs the bottle's outside network")
    named = remotes(spec.git)
    files = vault_files(named)
    image = build_git_gate_image(site.client, site.progress)
    site.progress("starting the git gate")
    site.vault.put(VAULT_DIR, files, uid=UID)
    labels = L.labels(spec.identity, spec.agent, L.ROLE_GIT_GATE, spec.host)
    try:
        mirrors = site.client.volumes.create(name=f"rb-{spec.identity}-git-mirrors", labels=labels)
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not create the git gate's mirror volume: {exc}") from None
    gate = start_container(
        site,
        image,
        [],
        role=L.ROLE_GIT_GATE,
        alias=ALIAS,
        user=f"{UID}:{UID}",
        environment={"GITGATE_AGENT_SUBNET": internal_subnet(site)},
        extra_hosts=extra_hosts(spec.git),
        volumes={
            site.vault.volume: {"bind": MOUNT, "mode": "ro"},
            mirrors.name: {"bind": MIRRORS, "mode": "rw"},
        },
        tmpfs={"/tmp": "size=256m,mode=1777"},  # noqa: S108 the gate's HOME and scratch
        mem_limit="1g",
        pids_limit=256,
    )
    health = ["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{PORT}/_health"]
    wait_ready(gate, "the git gate", answers(health))
    return AgentGrant(
        home_files={".gitconfig": agent_gitconfig(named)},
        no_proxy=(ALIAS,),
        containers=(str(gate.id),),
    )
