"""The git gate's configs: the agent's URL rewriting, the gate's SSH settings, its routing,
each remote's push policy, and the hook's gitleaks config and CI paths.

URL rewriting is checked with the real `git` (`ls-remote --get-url` applies insteadOf
without connecting), and the rewritten URL is fed to the gate server's own parser. The
hook itself, against real git and gitleaks, is in tests/integration/test_gitgate_hook.py.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from remotebottle.backend.docker import gitgate
from remotebottle.backend.spec import GitRemoteSpec
from remotebottle.errors import BottleError

pytestmark = pytest.mark.unit

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExa"
RESOURCES = Path(gitgate.__file__).parents[2] / "resources" / "gitgate"


@functools.cache
def load_script(name: str) -> ModuleType:
    """One of the gate's scripts (they run in the gate image, not as part of the package)."""
    spec = importlib.util.spec_from_file_location(f"rbottle_{name}", RESOURCES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_server() -> ModuleType:
    return load_script("gate_server")


def load_hook(part: str) -> ModuleType:
    """One part of the pre-receive hook (pre_receive.py imports them)."""
    return load_script(f"hook_{part}")


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
    assert "HostKeyAlias" not in config
    assert files["known_hosts"].decode().splitlines() == [
        f"[git.example.test]:2222 {HOST_KEY}",
        f"b.test {HOST_KEY}",
    ]


def test_the_gate_connects_to_the_hostname_and_pins_the_key_for_it() -> None:
    named = gitgate.remotes([remote("gitea", 2222, hostname="gitea.example.test")])
    files = gitgate.vault_files(named)
    assert "Host r0\n  HostName gitea.example.test\n  Port 2222\n" in files["ssh_config"].decode()
    assert files["known_hosts"].decode() == f"[gitea.example.test]:2222 {HOST_KEY}\n"


@pytest.mark.parametrize(
    ("url", "upstream"),
    [
        ("gitea:org/repo.git", "r0:org/repo.git"),
        ("git@gitea:org/repo.git", "r0:org/repo.git"),
        ("ssh://gitea/org/repo.git", "r0:/org/repo.git"),
        ("ssh://git@gitea:22/org/repo.git", "r0:/org/repo.git"),
    ],
)
def test_the_agent_uses_the_host_alias_with_or_without_a_user(
    url: str, upstream: str, tmp_path: Path
) -> None:
    named = gitgate.remotes([remote("gitea", 22, hostname="gitea.example.test")])
    gate_url = rewritten(gitgate.agent_gitconfig(named), url, tmp_path)
    target = load_server().parse(
        "/" + gate_url.removeprefix("http://git-gate:8080/") + "/info/refs", frozenset({"r0"})
    )
    assert target is not None and target.upstream == upstream


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


def test_each_remotes_push_policy_reaches_the_gate_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = gitgate.remotes([remote(allow_deletes=True, allow_ci_changes=True), remote("b.test")])
    (tmp_path / "remotes.json").write_bytes(gitgate.vault_files(named)["remotes.json"])
    server = load_server()
    monkeypatch.setattr(server, "VAULT", tmp_path)
    loaded = server.load_remotes()
    assert loaded == {
        "r0": {"allowForcePush": False, "allowDeletes": True, "allowCIChanges": True},
        "r1": {"allowForcePush": False, "allowDeletes": False, "allowCIChanges": False},
    }
    # The mirror's config keys the hook reads (`git config --type=bool gitgate.<key>`).
    assert server._policy_settings(loaded["r0"]) == [
        ("gitgate.allowForcePush", "false"),
        ("gitgate.allowDeletes", "true"),
        ("gitgate.allowCIChanges", "true"),
    ]


GITLEAKS_LIKE = {
    "title": "gitleaks config",
    "allowlist": {
        "description": "global allow lists",
        "paths": ["(?:^|/)vendor/", "(?:^|/)package-lock\\.json$"],
        "regexes": ["(?i)^true|false|null$"],
        "stopwords": ["abcdefghijklmnopqrstuvwxyz"],
    },
    "rules": [
        {
            "id": "github-pat",
            "regex": "ghp_[0-9a-zA-Z]{36}",
            "entropy": 3,
            "keywords": ["ghp_"],
            "allowlists": [{"paths": ["(?:^|/)@octokit/auth-token/README\\.md$"]}],
        },
        {
            "id": "generic-api-key",
            "regex": "(?i)(?:key|token)[ =]+([\\w.=-]{10,150})",
            "entropy": 3.5,
            "allowlists": [
                {"regexes": ["^[a-zA-Z_.-]+$"]},
                {
                    "condition": "AND",
                    "paths": ["\\.bb$"],
                    "regexTarget": "line",
                    "regexes": ["SRC"],
                },
            ],
        },
        {"id": "pkcs12-file", "path": "(?i)(?:^|\\/)[^\\/]+\\.p(?:12|fx)$"},
    ],
}


def test_the_hooks_gitleaks_config_drops_every_exemption_by_path_and_no_rule() -> None:
    hook = load_hook("gitleaks_config")
    config = hook.without_path_allowlists(GITLEAKS_LIKE)
    assert config["allowlists"] == [
        {
            "description": "global allow lists",
            "regexes": ["(?i)^true|false|null$"],
            "stopwords": ["abcdefghijklmnopqrstuvwxyz"],
        }
    ]
    pat, generic, pkcs12, marker = config["rules"]
    assert "allowlists" not in pat  # a paths-only allowlist goes whole
    # An AND allowlist without its paths would allow more: it goes whole too.
    assert generic["allowlists"] == [{"regexes": ["^[a-zA-Z_.-]+$"]}]
    assert pkcs12 == GITLEAKS_LIKE["rules"][2]  # a rule's own scope is not an exemption
    assert marker["id"] == hook.MARKER_RULE
    assert re.fullmatch(marker["regex"], hook.MARKER.decode().strip())
    assert "allowlist" in GITLEAKS_LIKE and "allowlists" in GITLEAKS_LIKE["rules"][0]

    written = "\n".join(hook.to_toml(config)) + "\n"
    assert tomllib.loads(written) == config


def test_the_default_config_is_found_in_the_gitleaks_binary() -> None:
    hook = load_hook("gitleaks_config")
    text = hook.DEFAULT_CONFIG_HEAD.decode() + '\ntitle = "gitleaks config"\n'
    assert hook.default_config(b"\x7fELF\x00junk" + text.encode() + b"\x00\x01more") == text
    with pytest.raises(SystemExit, match="cannot find"):
        hook.default_config(b"no config here")
    with pytest.raises(SystemExit, match="cannot find"):
        hook.default_config(text.encode() + b"\x00" + text.encode())


@pytest.mark.parametrize(
    ("path", "is_ci"),
    [
        (".github/workflows/ci.yml", True),
        (".GitHub/Workflows/Deploy.YAML", True),
        (".github/actions/setup/action.yml", True),
        (".gitlab-ci.yml", True),
        (".circleci/config.yml", True),
        ("Jenkinsfile", True),
        (".buildkite/pipeline.yml", True),
        ("azure-pipelines.yaml", True),
        (".azure-pipelines/build.yml", True),
        (".travis.yml", True),
        ("bitbucket-pipelines.yml", True),
        (".drone.yml", True),
        (".github/CODEOWNERS", False),
        ("docs/.github/workflows/example.yml", False),
        ("src/Jenkinsfile.groovy", False),
        (".gitlab-ci.yml.orig", False),
        ("README.md", False),
    ],
)
def test_the_hook_knows_the_well_known_ci_definitions(path: str, is_ci: bool) -> None:
    assert bool(load_hook("refs").CI_DEFINITION.match(path)) is is_ci


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("app/config.yaml", "config.yaml"),  # path-scoped rules look at the extension
        ("certs/client.p12", "client.p12"),
        ("backup.tar.gz", "object"),  # gitleaks would take these for archives, and skip them
        ("assets.zip", "object"),
        ("notes.BR.txt", "object"),
        ("weird name", "object"),
        (".env", "object"),
        ("", "object"),
    ],
)
def test_the_hooks_scratch_copies_keep_only_safe_names(path: str, name: str) -> None:
    assert load_hook("scan").copy_name(path) == name
