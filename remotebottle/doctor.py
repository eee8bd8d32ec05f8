"""`doctor`: check what bottles need on this machine and say how to fix what is missing."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker

from remotebottle import manifest
from remotebottle.backend.docker.engine import engine_facts, missing_images
from remotebottle.backend.docker.images import agent_image, all_images, git_gate_image
from remotebottle.errors import RemoteBottleError
from remotebottle.hosts.local import connect_local_engine

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def run_checks(
    connect: Callable[[], docker.DockerClient] = connect_local_engine,
    manifest_paths: list[Path] | None = None,
) -> list[Check]:
    """Every check, in the order a user should fix them."""
    checks = [_manifest(manifest_paths)]
    try:
        client = connect()
    except RemoteBottleError as exc:
        checks.append(Check("engine", "fail", exc.message, exc.hint))
        checks.append(_ssh_agent())
        return checks
    try:
        checks.extend(_engine(client))
    finally:
        client.close()
    checks.append(_ssh_agent())
    return checks


def _manifest(paths: list[Path] | None) -> Check:
    try:
        loaded = manifest.load(paths)
    except RemoteBottleError as exc:
        return Check("manifest", "fail", exc.message.splitlines()[0], exc.hint)
    if not loaded.files:
        return Check(
            "manifest",
            "warn",
            "no claude-bottle.json here or in $HOME",
            "write one: see docs/manifest.md (`rbottle schema` for editors)",
        )
    files = ", ".join(str(p) for p in loaded.files)
    return Check("manifest", "ok", f"{len(loaded.agents)} agent(s) from {files}")


def _engine(client: docker.DockerClient) -> list[Check]:
    try:
        facts = engine_facts(client)
    except RemoteBottleError as exc:
        return [Check("engine", "fail", exc.message, exc.hint)]
    checks = [Check("engine", "ok", f"Docker {facts.version}")]
    if facts.leaks_internal_dns:
        checks.append(
            Check(
                "engine version",
                "warn",
                f"Docker {facts.version} < 25.0.5 leaks DNS from internal networks"
                " (CVE-2024-29018)",
                "install Docker Engine >= 25.0.5 (docs.docker.com/engine/install)",
            )
        )
    if facts.has_gvisor:
        checks.append(Check("gvisor", "ok", "runsc is available: bottles use gVisor"))
    else:
        checks.append(
            Check(
                "gvisor",
                "warn",
                "runsc not installed: bottles use runc",
                "install gVisor and register runsc with dockerd (gvisor.dev)",
            )
        )
    missing = set(missing_images(client, all_images()))
    for ref in all_images():
        if ref not in missing:
            checks.append(Check(f"image {ref}", "ok", "present"))
        elif ref == agent_image():
            checks.append(
                Check(
                    f"image {ref}",
                    "warn",
                    "not built yet",
                    "built on the first `rbottle start` (a few minutes)",
                )
            )
        elif ref == git_gate_image():
            checks.append(
                Check(
                    f"image {ref}",
                    "warn",
                    "not built yet",
                    "built on the first `rbottle start` of a bottle with git remotes",
                )
            )
        else:
            checks.append(
                Check(
                    f"image {ref}",
                    "warn",
                    "not present",
                    "pulled on first use; offline, run tests/harness/setup.sh",
                )
            )
    return checks


def _ssh_agent() -> Check:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return Check(
            "ssh-agent",
            "warn",
            "SSH_AUTH_SOCK is not set",
            "only needed for --host: `eval $(ssh-agent)` and `ssh-add`, or set "
            "IdentityFile in ~/.ssh/config",
        )
    import paramiko

    try:
        keys = paramiko.Agent().get_keys()
    except (paramiko.SSHException, OSError) as exc:
        return Check(
            "ssh-agent",
            "warn",
            f"the agent did not answer: {exc}",
            "restart it: `eval $(ssh-agent)` and `ssh-add`",
        )
    if not keys:
        return Check("ssh-agent", "warn", "the agent holds no keys", "`ssh-add` a key")
    return Check("ssh-agent", "ok", f"{len(keys)} key(s) loaded")
