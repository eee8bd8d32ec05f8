"""What goes into the agent container: home files, the workdir copy, and the tmpfs setup.

Non-secret files (skills, prompt, Claude Code settings, the project copy, the
CA bundle that trusts the egress proxy) are put into the container before it
starts. Secret values (env) go in after start, through an exec's stdin into a
tmpfs: never container env, argv or disk. The setup runs as the agent user, so
the container needs no capability at all.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from remotebottle.backend.spec import BottleSpec

AGENT_UID = 1000
AGENT_HOME = "/home/agent"
WORKDIR = f"{AGENT_HOME}/work"
PROMPT_PATH = f"{AGENT_HOME}/.claude/rbottle-prompt.md"
SETUP_DIR = "/run/rbottle"

CA_BUNDLE_DIR = "/etc/ssl/certs"
CA_BUNDLE = f"{CA_BUNDLE_DIR}/ca-certificates.crt"

# Run as the agent user in the started container; the env file arrives on stdin.
SETUP_SCRIPT = f"umask 077 && cat > {SETUP_DIR}/env"
# Lets the entrypoint go on, once the session is attached and will miss no output.
RELEASE_COMMAND = ["touch", f"{SETUP_DIR}/ready"]

# Claude Code's first-run screens, answered once so a session goes straight to the prompt.
CLAUDE_JSON = {
    "hasCompletedOnboarding": True,
    "theme": "dark",
    "bypassPermissionsModeAccepted": False,
    "projects": {WORKDIR: {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
}


class TarBuilder:
    """An in-memory tar whose entries belong to the agent user."""

    def __init__(self, uid: int = AGENT_UID) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w")  # noqa: SIM115 closed in bytes()
        self._uid = uid
        self._dirs: set[str] = set()

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = self._uid
        return info

    def directory(self, name: str) -> None:
        parts = Path(name).parts
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in self._dirs:
                self._dirs.add(path)
                self._tar.addfile(self._info(path, tarfile.DIRTYPE, 0o755))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        parent = str(Path(name).parent)
        if parent != ".":
            self.directory(parent)
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def tree(self, root: Path, prefix: str, paths: Iterable[Path] | None = None) -> None:
        """Add files under `root` (all, or only `paths` relative to it) below `prefix`."""
        chosen = paths if paths is not None else (p.relative_to(root) for p in root.rglob("*"))
        for rel in sorted(chosen):
            source = root / rel
            if source.is_symlink() or not source.is_file():
                continue
            mode = 0o755 if source.stat().st_mode & 0o111 else 0o644
            self.file(f"{prefix}/{rel.as_posix()}", source.read_bytes(), mode)

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def home_archive(spec: BottleSpec, granted: Mapping[str, bytes] | None = None) -> bytes:
    """Files for the agent's home, rooted at /home/agent: Claude Code's settings, skills,
    the prompt, and what the sidecars grant (`granted`, by relative path)."""
    tar = TarBuilder()
    for name, data in (granted or {}).items():
        tar.file(name, data)
    tar.file(".claude.json", json.dumps(CLAUDE_JSON, indent=2).encode())
    tar.directory(".claude/skills")
    for skill in spec.skills:
        tar.tree(skill, f".claude/skills/{skill.name}")
    prompt = spec.prompt_file.read_bytes() if spec.prompt_file else (spec.prompt or "").encode()
    if prompt:
        tar.file(".claude/rbottle-prompt.md", prompt)
    return tar.bytes()


def project_files(cwd: Path) -> list[Path]:
    """The files of `cwd` that a copy takes: what its .gitignore files do not exclude.

    Outside a git work tree the same rules apply, through a throwaway repository
    whose work tree is `cwd`. Without git at all, every file but `.git` is taken.
    """
    listing = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    try:
        inside = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            timeout=60,
        )
        if inside.returncode == 0:
            listed = _git(["-C", str(cwd), *listing])
        else:
            with tempfile.TemporaryDirectory(prefix="rbottle-ls-") as scratch:
                _git(["init", "-q", "--bare", scratch])
                listed = _git([f"--git-dir={scratch}", f"--work-tree={cwd}", *listing])
    except (OSError, subprocess.SubprocessError):
        return [p.relative_to(cwd) for p in cwd.rglob("*") if ".git" not in p.parts]
    return [Path(name) for name in listed.decode().split("\0") if name]


def _git(args: list[str]) -> bytes:
    return subprocess.run(["git", *args], capture_output=True, check=True, timeout=60).stdout


def workdir_archive(cwd: Path) -> bytes:
    """The project copy, rooted at the workdir."""
    tar = TarBuilder()
    tar.tree(cwd, ".", project_files(cwd))
    return tar.bytes()


def env_file(spec: BottleSpec) -> bytes:
    """Shell `export` lines: the manifest env (resolved secrets)."""
    lines = []
    for name, entry in spec.env.items():
        if entry.value is None:
            raise ValueError(f"env {name} was not resolved")
        lines.append(f"export {name}={shlex.quote(entry.value.get_secret_value())}")
    return ("\n".join(lines) + "\n").encode()


def trust_bundle_archive(existing_bundle: bytes, extra_cas: Iterable[bytes]) -> bytes:
    """The image's CA bundle plus the sidecars' CAs (the egress proxy's), for CA_BUNDLE_DIR."""
    tar = TarBuilder(uid=0)
    bundle = existing_bundle.rstrip(b"\n") + b"\n" + b"".join(extra_cas)
    tar.file("ca-certificates.crt", bundle, 0o644)
    return tar.bytes()


def agent_command(spec: BottleSpec, *, resume: bool = False) -> list[str]:
    """The agent container's command."""
    if spec.command.mode == "exec":
        return list(spec.command.argv)
    argv = ["claude"]
    if resume:
        argv.append("--continue")
    if spec.prompt or spec.prompt_file:
        argv += ["--append-system-prompt-file", PROMPT_PATH]
    if spec.command.mode == "print":
        argv += ["-p", spec.command.prompt or ""]
    return argv
