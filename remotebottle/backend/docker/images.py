"""The images a bottle uses: the agent image (built from the package) and pinned sidecars.

Production code names the real, pinned references and pulls what is missing;
tests pre-seed the engine so nothing is pulled.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from remotebottle import pins
from remotebottle.backend.docker import derived
from remotebottle.backend.spec import BottleSpec, ImageRefs
from remotebottle.errors import BottleError, EngineError

AGENT_REPOSITORY = "remotebottle/agent"
GIT_GATE_REPOSITORY = "remotebottle/git-gate"
EXTRA_CA_ENV = "REMOTEBOTTLE_EXTRA_CA_CERTS"

Progress = Callable[[str], None]


def extra_ca_certs() -> bytes:
    """The user's extra CA certificates (PEM) for image builds and bottles, or b""."""
    path = os.environ.get(EXTRA_CA_ENV)
    if not path:
        return b""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise BottleError(
            f"{EXTRA_CA_ENV}={path}: cannot read: {exc.strerror}",
            hint="point it at a PEM file of CA certificates, or unset it",
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise BottleError(f"{EXTRA_CA_ENV}={path}: no PEM certificate in it")
    return data


def _agent_context_files() -> dict[str, bytes]:
    root = resources.files("remotebottle").joinpath("resources/agent")
    return {
        "Dockerfile": root.joinpath("Dockerfile").read_bytes(),
        "rbottle-entry": root.joinpath("rbottle-entry").read_bytes(),
        "extra-ca.crt": extra_ca_certs(),
    }


def _git_gate_context_files() -> dict[str, bytes]:
    root = resources.files("remotebottle").joinpath("resources/gitgate")
    return {
        name: root.joinpath(name).read_bytes()
        for name in (
            "Dockerfile",
            "gate_server.py",
            "pre_receive.py",
            "hook_git.py",
            "hook_refs.py",
            "hook_scan.py",
            "hook_gitleaks_config.py",
        )
    }


def inputs_hash(files: dict[str, bytes], *refs: str) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    digest.update("\0".join(refs).encode())
    return digest.hexdigest()[:10]


def agent_image() -> str:
    """The agent image reference: Claude Code's version plus a hash of the build inputs."""
    digest = inputs_hash(_agent_context_files(), pins.base_image())
    return f"{AGENT_REPOSITORY}:cc-{pins.claude_code_version()}-{digest}"


def git_gate_image() -> str:
    """The git gate image reference: a hash of its inputs, the agent image and gitleaks."""
    digest = inputs_hash(_git_gate_context_files(), agent_image(), pins.gitleaks_image())
    return f"{GIT_GATE_REPOSITORY}:{digest}"


def image_refs(spec: BottleSpec) -> ImageRefs:
    return ImageRefs(
        agent=agent_image(),
        egress=pins.pipelock_image() if spec.egress_enabled else None,
        git_gate=git_gate_image() if spec.git else None,
    )


def all_images() -> list[str]:
    """Every image a bottle may need, for `doctor` and for seeding."""
    return [
        pins.base_image(),
        agent_image(),
        git_gate_image(),
        pins.pipelock_image(),
        pins.gitleaks_image(),
    ]


def _context_tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644 if name == "Dockerfile" or "." in name else 0o755
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def has_image(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not inspect image {ref}: {exc}") from None
    return True


def build_agent_image(client: docker.DockerClient, progress: Progress) -> str:
    """Build the agent image unless the engine has it already (layer cache applies)."""
    ref = agent_image()
    if has_image(client, ref):
        return ref
    ensure_pulled(client, pins.base_image(), progress)
    progress(f"building {ref} (first time only: a few minutes)")
    build_image(
        client,
        ref,
        _agent_context_files(),
        {"BASE_IMAGE": pins.base_image(), "CLAUDE_CODE_VERSION": pins.claude_code_version()},
        progress,
    )
    return ref


def derived_image(base: str, lines: str) -> str:
    """The reference of `base` plus approved Dockerfile `lines`: one per content."""
    return f"{AGENT_REPOSITORY}-custom:{inputs_hash({'lines': lines.encode()}, base)}"


def build_derived_image(
    client: docker.DockerClient, base: str, lines: str, progress: Progress
) -> str:
    """`base` plus Dockerfile `lines` run as root (a bottle's approved capabilities), built
    once per content; the result runs as the agent user like the base.

    Only the download of approved packages has network (see `derived`); the lines
    themselves are built with none.
    """
    packages = derived.packages_of(lines)
    ref = derived_image(base, lines)
    if has_image(client, ref):
        return ref
    start = base
    if packages:
        start = f"{ref}-packages"
        progress(f"downloading the approved packages: {' '.join(packages)}")
        download = derived.download_dockerfile(base, packages)
        build_image(client, start, {"Dockerfile": download}, {}, progress)
    dockerfile = derived.offline_dockerfile(start, lines, downloaded=bool(packages))
    progress(f"building {ref} with the bottle's approved capabilities (no network)")
    build_image(client, ref, {"Dockerfile": dockerfile}, {}, progress, network_mode="none")
    return ref


def build_git_gate_image(client: docker.DockerClient, progress: Progress) -> str:
    """Build the git gate image (on the agent image, with the pinned gitleaks) if missing."""
    ref = git_gate_image()
    if has_image(client, ref):
        return ref
    agent = build_agent_image(client, progress)
    ensure_pulled(client, pins.gitleaks_image(), progress)
    progress(f"building {ref}")
    build_image(
        client,
        ref,
        _git_gate_context_files(),
        {"AGENT_IMAGE": agent, "GITLEAKS_IMAGE": pins.gitleaks_image()},
        progress,
    )
    return ref


def build_image(
    client: docker.DockerClient,
    ref: str,
    files: dict[str, bytes],
    buildargs: dict[str, str],
    progress: Progress,
    *,
    network_mode: str | None = None,
) -> None:
    """Build `ref` from a context of `files` (one of them the Dockerfile), reporting steps.
    `network_mode="none"`: its RUN steps have no network."""
    tail: list[str] = []
    try:
        stream = client.api.build(
            fileobj=_context_tar(files),
            custom_context=True,
            tag=ref,
            buildargs=buildargs,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode=network_mode,
        )
        for chunk in stream:
            if "error" in chunk:
                raise BottleError(
                    f"building {ref} failed: {str(chunk['error']).strip()}",
                    hint=_build_hint(tail),
                )
            line = _ANSI.sub("", str(chunk.get("stream", ""))).strip()
            if line:
                tail.append(line)
                if line.startswith("Step "):
                    progress(line)
    except docker.errors.DockerException as exc:
        raise EngineError(f"building {ref} failed: {exc}") from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _build_hint(tail: list[str]) -> str:
    text = " | ".join(line for line in tail[-6:] if line)
    if "certificate" in text and not os.environ.get(EXTRA_CA_ENV):
        return (
            f"behind a TLS-inspecting proxy? set {EXTRA_CA_ENV}=/path/to/its-ca.pem "
            "(e.g. /etc/ssl/certs/ca-certificates.crt) and retry"
        )
    return f"last build output: {text[-400:]}"


def ensure_pulled(client: docker.DockerClient, ref: str, progress: Progress) -> None:
    """Pull `ref` only when the engine does not have it."""
    if has_image(client, ref):
        return
    progress(f"pulling {ref}")
    repository, _, tag = ref.rpartition(":")
    try:
        client.images.pull(repository, tag=tag)
    except docker.errors.DockerException as exc:
        # The engine's own explanation, not docker-py's wrapping of the request URL.
        why = getattr(exc, "explanation", None) or str(exc)
        raise EngineError(
            f"could not pull {ref}: {str(why).splitlines()[0][:300]}",
            hint=f"no registry reachable? copy it from a machine that has it: "
            f"`docker save {ref} | docker load` (or over ssh), then retry",
        ) from None
