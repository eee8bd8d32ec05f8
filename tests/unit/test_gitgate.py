"""The git gate's configs: the agent's URL rewriting, the gate's SSH settings, its routing.

URL rewriting is checked with the real `git` (`ls-remote --get-url` applies insteadOf
without connecting), and the rewritten URL is fed to the gate server's own parser.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from remotebottle.backend.docker import gitgate
from remotebottle.backend.spec import GitRemoteSpec
from remotebottle.errors import BottleError

pytestmark = pytest.mark.unit

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExa"
SERVER = Path(gitgate.__file__).parents[2] / "resources" / "gitgate" / "gate_server.py"


@functools.cache
def load_server() -> ModuleType:
    """The gate's server script (it runs in the gate image, not as part of the package)."""
    spec = importlib.util.spec_from_file_location("rbottle_gate_server", SERVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def remote(host: str = "git.example.test", port: int = 2222, **kw: object) -> GitRemoteSpec:
    fields: dict[str, object] = {"host": host, "user": "git", "port": port}
    fields["known_host_key"] = HOST_KEY
    return GitRemoteSpec(**(fields | kw))  # type: ignore[arg-type]


def rewritten(config: bytes, url: str, home: Path) -> str:
    (home / ".gitconfig").write_bytes(config)
    result = subprocess.run(
        ["git", "ls-remote", "--get-url", url],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("url", "upstream"),
    [
        ("ssh://git@git.example.test:2222/srv/repo.git", "r1:/srv/repo.git"),
        ("ssh://git@git.example.test:2222/~/repo.git", "r1:~/repo.git"),
        ("git@git.example.test:team/repo.git", "r1:team/repo.git"),
        ("git@git.example.test:/srv/repo.git", "r1:/srv/repo.git"),
        ("ssh://git@other.test/org/repo", "r0:/org/repo"),
        ("ssh://git@other.test:22/org/repo", "r0:/org/repo"),
        ("git@other.test:org/repo", "r0:org/repo"),
    ],
)
def test_every_spelling_of_an_upstream_url_reaches_the_gate_and_maps_back(
    url: str, upstream: str, tmp_path: Path
) -> None:
    named = gitgate.remotes([remote("other.test", 22), remote()])
    gate_url = rewritten(gitgate.agent_gitconfig(named), url, tmp_path)
    prefix = "http://git-gate:8080/"
    assert gate_url.startswith(prefix), gate_url
    server = load_server()
    target = server.parse(
        "/" + gate_url.removeprefix(prefix) + "/info/refs", frozenset({"r0", "r1"})
    )
    assert target is not None and target.upstream == upstream
    assert target.mirror.parent == server.MIRRORS and target.mirror.name.endswith(".git")


def test_other_urls_are_left_alone(tmp_path: Path) -> None:
    config = gitgate.agent_gitconfig(gitgate.remotes([remote()]))
    for url in ("https://github.com/org/repo", "ssh://root@git.example.test:2222/x"):
        assert rewritten(config, url, tmp_path) == url


@pytest.mark.parametrize(
    "path",
    [
        "/r9/ssh/repo.git/info/refs",  # not a remote of this bottle
        "/r0/http/repo.git/info/refs",
        "/r0/ssh/repo.git/objects/info/packs",  # dumb HTTP
        "/r0/ssh//info/refs",
        "/r0/ssh/re%0apo.git/info/refs",
        "/r0",
    ],
)
def test_the_gate_serves_only_its_remotes_over_smart_http(path: str) -> None:
    assert load_server().parse(path, frozenset({"r0"})) is None


def test_the_gate_gets_the_key_the_pinned_host_key_and_strict_ssh(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----")
    named = gitgate.remotes([remote(identity_file=key), remote("b.test", 22)])
    files = gitgate.vault_files(named)
    assert files["r0.key"].endswith(b"KEY-----\n")
    assert "r1.key" not in files
    config = files["ssh_config"].decode()
    assert "Host r0\n  HostName git.example.test\n  Port 2222\n  User git\n" in config
    assert "IdentityFile /vault/gitgate/r0.key" in config
    assert "StrictHostKeyChecking yes" in config and "IdentitiesOnly yes" in config
    assert files["known_hosts"].decode().splitlines() == [
        f"r0 {HOST_KEY}",
        f"r1 {HOST_KEY}",
    ]


def test_bad_remotes_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(BottleError, match="cannot read IdentityFile"):
        gitgate.vault_files(gitgate.remotes([remote(identity_file=tmp_path / "missing")]))
    public = tmp_path / "id.pub"
    public.write_text(HOST_KEY)
    with pytest.raises(BottleError, match="is not a private key"):
        gitgate.vault_files(gitgate.remotes([remote(identity_file=public)]))
    with pytest.raises(BottleError, match="is not a user name"):
        gitgate.remotes([remote(user="git\n  ProxyCommand sh")])
    with pytest.raises(BottleError, match="listed twice"):
        gitgate.remotes([remote(), remote()])


def test_the_gate_takes_the_remotes_extra_hosts() -> None:
    specs = [remote(extra_hosts={"a.test": "10.0.0.1"}), remote("b.test", 22, extra_hosts={})]
    assert gitgate.extra_hosts(specs) == {"a.test": "10.0.0.1"}
