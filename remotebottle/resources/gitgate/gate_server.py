#!/usr/bin/python3
"""The git gate's server (runs inside the gate container, python3 stdlib only).

The agent speaks smart HTTP to it: `http://git-gate:8080/<remote>/<form>/<path>`, where
`<remote>` names an upstream in the gate's vault (`r0`, `r1`, ...) and `<form>` says how
the agent spelled the URL (`ssh` for `ssh://user@host/path`, `scp` for `user@host:path`).
Before advertising refs, the gate brings its bare mirror up to date from the upstream over
SSH (creating it on first use); if that fails, so does the agent's request: never stale
data. Pushes go through `git http-backend` into the mirror, whose pre-receive hook checks
and scans them and forwards them upstream; what it may forward beyond fast-forwards (force
pushes, deletions, CI changes) is the remote's policy, set in the mirror's config (`gitgate.*`)
on every refresh. The upstream key, host key and SSH settings live only in the vault,
read-only to this uid.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, ClassVar

VAULT = Path(os.environ.get("GITGATE_VAULT", "/vault/gitgate"))
MIRRORS = Path(os.environ.get("GITGATE_MIRRORS", "/srv/mirrors"))
HOOKS = os.environ.get("GITGATE_HOOKS", "/opt/gitgate/hooks")
PORT = int(os.environ.get("GITGATE_PORT", "8080"))
# The bottle's internal network: only connections arriving there (from the agent) are served.
AGENT_SUBNET = os.environ.get("GITGATE_AGENT_SUBNET", "")
UPSTREAM_TIMEOUT = 600
SERVICES = ("git-upload-pack", "git-receive-pack")
SUFFIXES = ("/info/refs", "/git-upload-pack", "/git-receive-pack")
# What a remote may allow the hook to forward (the vault's remotes.json); all off by default.
POLICY_KEYS = ("allowForcePush", "allowDeletes", "allowCIChanges")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def from_agent_network(local_address: str) -> bool:
    try:
        return ipaddress.ip_address(local_address) in ipaddress.ip_network(AGENT_SUBNET)
    except ValueError:
        return False


class UpstreamError(Exception):
    """The upstream could not be reached or refused: the agent's request fails."""


@dataclass(frozen=True)
class Target:
    """One request's repository: its remote, its upstream (`alias:path`) and its mirror."""

    remote: str
    upstream: str
    mirror: Path
    suffix: str


def git_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 the gate's own tmpfs
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": f"ssh -F {VAULT}/ssh_config",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


Policy = dict[str, bool]


def load_remotes() -> dict[str, Policy]:
    """Each remote's name and what the hook may forward for it."""
    remotes = json.loads((VAULT / "remotes.json").read_text())["remotes"]
    return {
        name: {k: policy.get(k) is True for k in POLICY_KEYS} for name, policy in remotes.items()
    }


def parse(path: str, remotes: Collection[str]) -> Target | None:
    """The target of a request path, or None when it names nothing this gate serves."""
    parts = urllib.parse.unquote(path).split("/", 3)
    if len(parts) != 4 or parts[0] or parts[1] not in remotes or parts[2] not in ("ssh", "scp"):
        return None
    remote, form, rest = parts[1], parts[2], parts[3]
    suffix = next((s for s in SUFFIXES if rest.endswith(s)), None)
    if suffix is None:
        return None
    repo = rest[: -len(suffix)]
    if not repo.strip("/") or len(repo) > 1024 or _UNSAFE.search(repo):
        return None
    if form == "ssh" and not repo.startswith("~"):
        upstream = f"{remote}:/{repo}"
    else:
        upstream = f"{remote}:{repo}"
    key = hashlib.sha256(upstream.encode()).hexdigest()[:32]
    return Target(remote, upstream, MIRRORS / f"{key}.git", suffix)


_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(mirror: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(mirror, threading.Lock())


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(
            argv, env=git_env(), capture_output=True, text=True, timeout=UPSTREAM_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise UpstreamError(f"{what}: timed out after {UPSTREAM_TIMEOUT}s") from None
    if result.returncode != 0:
        detail = "\n".join(result.stderr.strip().splitlines()[-6:])
        raise UpstreamError(f"{what} failed:\n{detail}")


def _configure(mirror: Path, settings: list[tuple[str, str]]) -> None:
    for key, value in settings:
        _run(["git", "-C", str(mirror), "config", key, value], "configuring the mirror")


def _policy_settings(policy: Policy) -> list[tuple[str, str]]:
    return [(f"gitgate.{key}", "true" if policy.get(key) else "false") for key in POLICY_KEYS]


def refresh(target: Target, policy: Policy) -> None:
    """Make the mirror match the upstream now (clone it on first use), or raise."""
    with _lock(target.mirror):
        if target.mirror.is_dir():
            _run(
                ["git", "-C", str(target.mirror), "fetch", "--prune", "--quiet", "origin"],
                f"fetching {target.upstream}",
            )
            _configure(target.mirror, _policy_settings(policy))
            return
        scratch = MIRRORS / f".new-{secrets.token_hex(6)}"
        try:
            _run(
                ["git", "clone", "--mirror", "--quiet", target.upstream, str(scratch)],
                f"cloning {target.upstream}",
            )
            settings = [
                ("http.receivepack", "true"),
                ("core.hooksPath", HOOKS),
                ("receive.advertisePushOptions", "false"),
            ]
            _configure(scratch, settings + _policy_settings(policy))
            scratch.rename(target.mirror)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # for Expect: 100-continue; every response closes
    remotes: ClassVar[dict[str, Policy]] = {}

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        self.close_connection = True
        url = urllib.parse.urlsplit(self.path)
        if method == "GET" and url.path == "/_health":
            self._reply(200, "ok\n")
            return
        if AGENT_SUBNET and not from_agent_network(self.connection.getsockname()[0]):
            self._reply(403, "git gate: serves the bottle's agent only\n")
            return
        target = parse(url.path, self.remotes)
        if target is None:
            self._reply(404, "git gate: not a repository of this bottle's git remotes\n")
            return
        if method == "GET":
            service = urllib.parse.parse_qs(url.query).get("service", [""])[0]
            if target.suffix != "/info/refs" or service not in SERVICES:
                self._reply(403, "git gate: only smart HTTP (git >= 1.6.6) is served\n")
                return
            try:
                refresh(target, self.remotes[target.remote])
            except UpstreamError as exc:
                self._reply(502, f"git gate: {exc}\n")
                return
        elif target.suffix == "/info/refs" or not target.mirror.is_dir():
            self._reply(404, "git gate: ask for info/refs first\n")
            return
        self._cgi(method, target, url.query)

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _cgi(self, method: str, target: Target, query: str) -> None:
        env = git_env() | {
            "GIT_PROJECT_ROOT": str(MIRRORS),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{target.mirror.name}{target.suffix}",
            "REQUEST_METHOD": method,
            "QUERY_STRING": query,
            "REMOTE_USER": "agent",
            "REMOTE_ADDR": self.client_address[0],
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for header, variable in (
            ("Content-Type", "CONTENT_TYPE"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
        ):
            if value := self.headers.get(header):
                env[variable] = value
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = 0 if chunked else int(self.headers.get("Content-Length") or 0)
        if not chunked:
            env["CONTENT_LENGTH"] = str(length)
        proc = subprocess.Popen(
            ["git", "http-backend"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        feeder = threading.Thread(
            target=self._feed, args=(proc.stdin, chunked, length), daemon=True
        )
        feeder.start()
        try:
            self._relay(proc.stdout)
        except BaseException:
            # The agent went away mid-transfer: nobody drains git's output any more.
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            feeder.join(timeout=5)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _feed(self, sink: IO[bytes], chunked: bool, length: int) -> None:
        try:
            if chunked:
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    sink.write(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass
            else:
                while length > 0:
                    data = self.rfile.read(min(length, 1 << 16))
                    if not data:
                        break
                    sink.write(data)
                    length -= len(data)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.close()

    def _relay(self, source: IO[bytes]) -> None:
        status, headers, ended = 200, [], False
        while line := source.readline():
            line = line.rstrip(b"\r\n")
            if not line:
                ended = True
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name, value.strip()))
        if not ended:
            self._reply(500, "git gate: git http-backend failed\n")
            return
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        while data := source.read1(1 << 16):  # type: ignore[attr-defined]
            self.wfile.write(data)
            self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("git-gate: " + (format % args) + "\n")


def main() -> None:
    Handler.remotes = load_remotes()
    MIRRORS.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 the bottle's networks
    server.daemon_threads = True
    sys.stderr.write(f"git-gate: listening on {PORT}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
