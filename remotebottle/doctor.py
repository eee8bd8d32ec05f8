"""`doctor`: check what bottles need on this machine, or on a host, and say how to fix
what is missing.

On an engine: its version and whether CVE-2024-29018 (DNS out of internal networks) is
fixed in it, its runtimes with their arguments, and whether gVisor actually runs a
container there (a container is run under runsc when the engine has an image to run it
with), then the images bottles use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import docker

from remotebottle import manifest
from remotebottle.backend.docker.engine import (
    GVISOR_CHECK_ROLE,
    SAFE_ENGINE,
    EngineFacts,
    GvisorCheck,
    check_gvisor,
    engine_facts,
    gvisor_check_image,
    missing_images,
)
from remotebottle.backend.docker.images import agent_image, all_images, git_gate_image
from remotebottle.backend.docker.labels import labels
from remotebottle.backend.docker.planner import gvisor_fallback_warning
from remotebottle.errors import RemoteBottleError
from remotebottle.hosts.local import connect_local_engine
from remotebottle.ops.plan import ALLOW_OLD_ENGINE_FLAG

if TYPE_CHECKING:
    from remotebottle.hosts.resolve import HostTarget

Status = Literal["ok", "warn", "fail"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """Every check, and what the engine said (None when it did not answer).

    `engine`: {"version", "cve_2024_29018": "fixed" | "affected", "runtimes": {name: args},
    "gvisor": "works" | "fails" | "absent" | "unchecked", "gvisor_reason"}.
    """

    host: str
    checks: list[Check]
    engine: dict[str, Any] | None = None
    remote: bool = field(default=False)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)


def run_checks(
    connect: Callable[[], docker.DockerClient] = connect_local_engine,
    manifest_paths: list[Path] | None = None,
) -> list[Check]:
    """Every check of the local engine, in the order a user should fix them."""
    return diagnose_local(connect, manifest_paths).checks


def diagnose_local(
    connect: Callable[[], docker.DockerClient] = connect_local_engine,
    manifest_paths: list[Path] | None = None,
) -> Diagnosis:
    checks = [_manifest(manifest_paths)]
    engine = None
    try:
        client = connect()
    except RemoteBottleError as exc:
        checks.append(Check("engine", "fail", exc.message, exc.hint))
    else:
        try:
            found, engine = _engine(client, remote=False)
            checks.extend(found)
        finally:
            client.close()
    checks.append(_ssh_agent())
    return Diagnosis("local", checks, engine)


def diagnose_host(
    host: HostTarget, manifest_paths: list[Path] | None, *, progress: Progress
) -> Diagnosis:
    """The checks of `host`'s engine, reached as `start --host` reaches it (Docker is not
    installed on it if missing: `doctor` changes nothing)."""
    from remotebottle.hosts.engine import open_engine

    if host.is_local:
        return diagnose_local(manifest_paths=manifest_paths)
    checks = [_manifest(manifest_paths), _ssh_agent()]
    engine = None
    try:
        with open_engine(host, progress=progress, consent=lambda _q: False) as opened:
            found, engine = _engine(opened.client, remote=True)
            checks.extend(found)
    except RemoteBottleError as exc:
        checks.append(Check("engine", "fail", exc.message, exc.hint))
    return Diagnosis(host.name, checks, engine, remote=True)


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


def _engine(
    client: docker.DockerClient, *, remote: bool
) -> tuple[list[Check], dict[str, Any] | None]:
    try:
        facts = engine_facts(client)
    except RemoteBottleError as exc:
        return [Check("engine", "fail", exc.message, exc.hint)], None
    checks = [Check("engine", "ok", f"Docker {facts.version}"), _cve(facts, remote=remote)]
    checks.append(Check("runtimes", "ok", ", ".join(facts.described_runtimes())))
    gvisor, check = _gvisor(client, facts)
    checks.append(gvisor)
    checks.extend(_images(client, remote=remote))
    report = {
        "version": facts.version,
        "cve_2024_29018": "affected" if facts.leaks_internal_dns else "fixed",
        "runtimes": {
            name: list(facts.runtime_args.get(name, ()))
            for name in sorted(facts.runtimes)
            if not name.startswith("io.containerd.")
        },
        "gvisor": (
            "absent"
            if not facts.has_gvisor
            else "unchecked"
            if check is None
            else "works"
            if check.works
            else "fails"
        ),
        "gvisor_reason": check.reason if check is not None and not check.works else None,
    }
    return checks, report


def _cve(facts: EngineFacts, *, remote: bool) -> Check:
    if not facts.leaks_internal_dns:
        return Check(
            "CVE-2024-29018",
            "ok",
            f"fixed: Docker {facts.version} is {SAFE_ENGINE} or newer (internal networks keep"
            " DNS in)",
        )
    detail = (
        f"affected: Docker {facts.version} is older than {SAFE_ENGINE}; containers on internal"
        " networks resolve names through the host"
    )
    if remote:
        return Check(
            "CVE-2024-29018",
            "fail",
            f"{detail}: `rbottle start` refuses this host",
            "upgrade its engine (Debian 13's docker.io is 26.1.5; docs/remote-hosts.md), or"
            f" start with {ALLOW_OLD_ENGINE_FLAG} to use it anyway",
        )
    return Check(
        "CVE-2024-29018",
        "warn",
        detail,
        f"install Docker Engine >= {SAFE_ENGINE} (docs.docker.com/engine/install)",
    )


def _gvisor(client: docker.DockerClient, facts: EngineFacts) -> tuple[Check, GvisorCheck | None]:
    if not facts.has_gvisor:
        return (
            Check(
                "gvisor",
                "warn",
                "runsc is not registered with the engine: bottles run on runc",
                "install gVisor and register runsc with dockerd (provisioning/install-docker.sh"
                " does both on Debian and Ubuntu; gvisor.dev)",
            ),
            None,
        )
    configured = " ".join(("runsc", *facts.gvisor_args))
    image = gvisor_check_image(client)
    if image is None:
        return (
            Check(
                "gvisor",
                "warn",
                f"{configured} is registered; not run here yet: the engine has no image to run a"
                " container with",
                "`rbottle start` runs one under runsc before the bottle starts (runc if it fails)",
            ),
            None,
        )
    try:
        check = check_gvisor(
            client, facts, image, labels(GVISOR_CHECK_ROLE, "doctor", GVISOR_CHECK_ROLE)
        )
    except RemoteBottleError as exc:
        return Check("gvisor", "fail", exc.message, exc.hint), None
    if check.works:
        return (
            Check(
                "gvisor",
                "ok",
                f"{configured} runs containers: bottles' agents and sidecars get gVisor",
            ),
            check,
        )
    return (
        Check(
            "gvisor",
            "warn",
            gvisor_fallback_warning(facts, check).replace("the bottle runs", "bottles run"),
            "see docs/remote-hosts.md (gVisor)",
        ),
        check,
    )


def _images(client: docker.DockerClient, *, remote: bool) -> list[Check]:
    checks = []
    missing = set(missing_images(client, all_images()))
    for ref in all_images():
        if ref not in missing:
            checks.append(Check(f"image {ref}", "ok", "present"))
        elif remote:
            checks.append(
                Check(
                    f"image {ref}",
                    "ok",
                    "not on the host yet",
                    "shipped from this machine by `rbottle start --host` when a bottle needs it",
                )
            )
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
