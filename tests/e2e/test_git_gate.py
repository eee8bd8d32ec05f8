"""The git gate: the agent's git reaches its upstream only through the gate, which holds
the upstream key, mirrors fetches fail-closed, scans every object a push adds with gitleaks
and refuses force-pushes, deletions and CI changes unless the remote allows them.

The upstream is a real sshd + git server (tests/e2e/gitupstream.py) that only the gate can
name (ExtraHosts) and only the gate holds a key for.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from remotebottle import manifest
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.provision import AGENT_UID
from remotebottle.backend.spec import BottleSpec, Command, GitRemoteSpec
from remotebottle.demo import fake_aws_key, probes
from remotebottle.demogit import build_demo_git_image, demo_git, push_probe_script
from remotebottle.hosts.engine import open_engine
from remotebottle.resolve import build_spec
from tests.e2e.conftest import finish, rbottle
from tests.e2e.gitupstream import (
    UPSTREAM_HOST,
    UPSTREAM_IMAGE,
    Upstream,
    ensure_upstream_image,
    private_key_needle,
    start_upstream,
)
from tests.e2e.vmparts import grep_vm_disk, target, vm
from tests.integration.fakevm import FakeVm, fakevm, load_image

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

GIT_ENV = {
    "GIT_AUTHOR_NAME": "agent",
    "GIT_AUTHOR_EMAIL": "agent@bottle.test",
    "GIT_COMMITTER_NAME": "agent",
    "GIT_COMMITTER_EMAIL": "agent@bottle.test",
}


class Agent:
    """The bottle's agent container; commands run as the agent user, in its work dir."""

    def __init__(self, client: docker.DockerClient, container_id: str, identity: str) -> None:
        self.client = client
        self.id = container_id
        self.identity = identity

    def sh(self, script: str) -> tuple[int, str]:
        result = self.client.api.exec_create(
            self.id, ["sh", "-c", script], user=str(AGENT_UID), environment=GIT_ENV
        )
        out = self.client.api.exec_start(result["Id"])
        code = self.client.api.exec_inspect(result["Id"])["ExitCode"]
        return int(code), out.decode(errors="replace")

    def ok(self, script: str) -> str:
        code, out = self.sh(script)
        assert code == 0, out
        return out.strip()


def leaky_file() -> tuple[str, str]:
    """A credentials file gitleaks' default rules catch (aws-access-token), and its key id."""
    key_id = fake_aws_key()
    text = (
        "[default]\n"
        f"aws_access_key_id = {key_id}\n"
        f"aws_secret_access_key = {secrets.token_urlsafe(30)[:40]}\n"
    )
    return text, key_id


def gated_spec(*remotes: GitRemoteSpec, agent: str = "gate") -> BottleSpec:
    """A bottle with no egress proxy whose only ways out are its git remotes."""
    return BottleSpec(
        identity=f"{agent}-{secrets.token_hex(3)[:5]}",
        agent=agent,
        bottle="gated",
        command=Command(mode="exec", argv=("sleep", "infinity")),
        egress_enabled=False,
        git=remotes,
    )


@contextlib.contextmanager
def gated_bottle(client: docker.DockerClient, upstream: Upstream, **allow: bool) -> Iterator[Agent]:
    backend = DockerBottleBackend(client)
    plan = backend.prepare(gated_spec(upstream.spec(**allow)))
    with backend.launch(plan, LaunchOptions(tty=False)) as bottle:
        backend.release(bottle)
        yield Agent(client, bottle.agent_container, bottle.identity)


@pytest.fixture
def upstream(
    docker_client: docker.DockerClient, agent_image: str, tmp_path: Path
) -> Iterator[Upstream]:
    ensure_upstream_image(docker_client)
    with start_upstream(docker_client, tmp_path / "upstream") as server:
        yield server


def test_clone_fetch_and_a_clean_push_go_through_the_gate(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    with gated_bottle(docker_client, upstream) as agent:
        agent.ok(f"git clone -q {upstream.ssh_url} p")
        assert agent.ok("cat p/README") == "hello from upstream"
        # The scp-like spelling reaches the same repository (relative to the user's home).
        agent.ok(f"git clone -q admin@{UPSTREAM_HOST}:project.git q")
        assert agent.ok("cat q/README") == "hello from upstream"
        # Only the gate can name the upstream: the agent has neither its address nor a route.
        assert agent.sh(f"getent hosts {UPSTREAM_HOST}")[0] != 0
        assert agent.sh(f"grep -c {upstream.address} /etc/hosts")[1].strip() == "0"

        newer = upstream.commit("second.txt", "made upstream")
        agent.ok("git -C p fetch -q")
        assert agent.ok("git -C p rev-parse origin/main") == newer

        agent.ok("cd p && git merge -q --ff-only origin/main && echo mine > agent.txt")
        agent.ok("cd p && git add agent.txt && git commit -q -m 'from the agent'")
        code, out = agent.sh("cd p && git push origin HEAD:main 2>&1")
        assert code == 0, out
        assert "upstream accepted the push" in out
        pushed = agent.ok("git -C p rev-parse HEAD")
        assert upstream.git("rev-parse", "main") == (0, pushed)
        listed = agent.ok("git -C q ls-remote origin refs/heads/main")
        assert listed.split() == [pushed, "refs/heads/main"]

        # A push bigger than git's post buffer goes as a chunked request.
        agent.ok("cd p && head -c 3000000 /dev/urandom > big.bin && git add big.bin")
        agent.ok("cd p && git commit -q -m big && git push -q origin HEAD:main")
        head = agent.ok("git -C p rev-parse HEAD")
        assert upstream.git("rev-parse", "main") == (0, head)

        # Several refs at once (atomically upstream), and an annotated tag (its message is
        # scanned too).
        agent.ok("cd p && git tag -a v2 -m 'release 2' && git push -q origin v2")
        agent.ok("cd p && git push -q origin HEAD:refs/heads/feature HEAD:refs/tags/v1")
        assert upstream.git("rev-parse", "feature", "v1", "v2^{commit}") == (
            0,
            f"{head}\n{head}\n{head}",
        )

        # Deleting a ref, rewriting history: refused, as the remote does not allow them.
        code, out = agent.sh("cd p && git push origin :refs/heads/feature 2>&1")
        assert code != 0 and "does not allow deleting refs (AllowDeletes)" in out, out
        assert upstream.git("rev-parse", "feature") == (0, head)
        agent.ok("cd p && git commit -q --amend -m 'big, rewritten'")
        code, out = agent.sh("cd p && git push --force origin HEAD:main 2>&1")
        assert code != 0 and "is not a fast-forward" in out, out
        assert upstream.git("rev-parse", "main") == (0, head)


def test_an_ssh_config_style_entry_the_agent_names_by_its_alias(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    """`Host` is the alias in the agent's URLs, `Hostname` the machine the gate reaches, and
    `KnownHostKey` a known_hosts line for `[Hostname]:Port`, as claude-bottle documents."""
    entry = upstream.manifest_entry() | {
        "Host": "gitea",
        "Hostname": UPSTREAM_HOST,
        "KnownHostKey": f"[{UPSTREAM_HOST}]:{upstream.port},gitea {upstream.host_key} admin@up",
    }
    parsed = manifest.parse(
        json.dumps(
            {
                "bottles": {"gated": {"egress": {"enabled": False}, "git": [entry]}},
                "agents": {"gate": {"bottle": "gated"}},
            }
        )
    )
    bottle_spec = build_spec(
        manifest.Manifest(bottles=parsed.bottles, agents=parsed.agents),
        "gate",
        command=Command(mode="exec", argv=("sleep", "infinity")),
        environ={},
    )
    assert bottle_spec.git[0].known_host_key == upstream.host_key
    backend = DockerBottleBackend(docker_client)
    with backend.launch(backend.prepare(bottle_spec), LaunchOptions(tty=False)) as bottle:
        backend.release(bottle)
        agent = Agent(docker_client, bottle.agent_container, bottle.identity)
        agent.ok("git clone -q gitea:project.git p")
        assert agent.ok("cat p/README") == "hello from upstream"
        assert agent.sh("getent hosts gitea")[0] != 0
        assert agent.sh(f"getent hosts {UPSTREAM_HOST}")[0] != 0
        agent.ok("cd p && echo aliased > alias.txt && git add alias.txt")
        agent.ok("cd p && git commit -q -m 'through the alias'")
        code, out = agent.sh("cd p && git push origin HEAD:main 2>&1")
        assert code == 0 and "upstream accepted the push" in out, out
        assert upstream.git("rev-parse", "main") == (0, agent.ok("git -C p rev-parse HEAD"))


def test_a_push_carrying_an_aws_key_is_refused_and_never_reaches_upstream(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    before = upstream.git("rev-parse", "main")[1]
    with gated_bottle(docker_client, upstream) as agent:
        agent.ok(f"git clone -q {upstream.ssh_url} p")
        text, key_id = leaky_file()
        agent.ok(f"cd p && printf '%s' '{text}' > credentials && git add credentials")
        agent.ok("cd p && git commit -q -m 'add credentials'")
        leaked = agent.ok("git -C p rev-parse HEAD")

        for refspec in ("HEAD:main", "HEAD:refs/heads/leaky"):  # an update, and a new ref
            code, out = agent.sh(f"cd p && git push origin {refspec} 2>&1")
            assert code != 0, out
            assert "push refused: gitleaks found" in out, out
            assert "aws-access-token" in out and "credentials:2" in out, out
            assert key_id not in out, "the finding must be shown redacted"

        assert upstream.git("rev-parse", "main") == (0, before)
        assert upstream.git("cat-file", "-e", leaked)[0] != 0, "the commit reached upstream"
        assert upstream.git("show-ref", "leaky")[0] != 0
        refs = agent.ok("git -C p ls-remote origin")
        assert leaked not in refs and "leaky" not in refs

        # A clean commit on top of upstream's main still goes through.
        agent.ok("cd p && git reset -q --hard origin/main && echo fine > ok.txt && git add ok.txt")
        agent.ok("cd p && git commit -q -m clean && git push -q origin HEAD:main")
        assert upstream.git("rev-parse", "main") == (0, agent.ok("git -C p rev-parse HEAD"))


# Ways past a `git log -p` scan. Each runs in a clone reset to upstream's main, with the
# leaky file at /tmp/credentials, and ends in the push.
SMUGGLING = {
    "a tag of the blob": "git tag leak $(git hash-object -w /tmp/credentials)"
    " && git push origin refs/tags/leak",
    "a key added only in a merge commit": "git checkout -q -b side && echo s > s.txt"
    " && git add s.txt && git commit -q -m side && git checkout -q main"
    " && echo m > m.txt && git add m.txt && git commit -q -m main"
    " && git merge -q --no-commit side && cp /tmp/credentials credentials"
    " && git add credentials && git commit -q -m merge && git push origin HEAD:main",
    "a file with a NUL byte": "printf 'bin\\000ary\\n' > data.bin && cat /tmp/credentials"
    " >> data.bin && git add data.bin && git commit -q -m data && git push origin HEAD:main",
    "a path gitleaks allowlists (vendor/)": "mkdir -p vendor/x && cp /tmp/credentials"
    " vendor/x/keys.go && git add vendor && git commit -q -m vendor"
    " && git push origin HEAD:main",
}


def test_secrets_smuggled_past_a_history_scan_are_refused_and_never_reach_upstream(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    before = upstream.git("rev-parse", "main")[1]
    with gated_bottle(docker_client, upstream) as agent:
        agent.ok(f"git clone -q {upstream.ssh_url} p")
        text, key_id = leaky_file()
        agent.ok(f"printf '%s' '{text}' > /tmp/credentials")
        blob = agent.ok("git hash-object /tmp/credentials")
        for name, script in SMUGGLING.items():
            agent.ok("cd p && git checkout -q main && git reset -q --hard origin/main")
            code, out = agent.sh(f"cd p && {script} 2>&1")
            assert code != 0, f"{name}: {out}"
            assert "push refused: gitleaks found" in out and "aws-access-token" in out, name + out
            assert key_id not in out, f"{name}: the finding must be shown redacted"
            carriers = {blob, agent.ok("git -C p rev-parse HEAD")} - {before}
            if name == "a file with a NUL byte":
                carriers.add(agent.ok("git -C p rev-parse HEAD:data.bin"))
            for oid in carriers:
                assert upstream.git("cat-file", "-e", oid)[0] != 0, f"{name}: {oid} got upstream"
        assert upstream.git("rev-parse", "main") == (0, before)
        assert upstream.git("show-ref", "--verify", "refs/tags/leak")[0] != 0

        # A change to CI definitions is refused by default too.
        agent.ok("cd p && git checkout -q main && git reset -q --hard origin/main")
        agent.ok("cd p && mkdir -p .github/workflows && echo 'on: push' > .github/workflows/x.yml")
        agent.ok("cd p && git add .github && git commit -q -m ci")
        code, out = agent.sh("cd p && git push origin HEAD:main 2>&1")
        assert code != 0 and "changes CI definitions (.github/workflows/x.yml)" in out, out
        assert "AllowCIChanges" in out, out
        assert upstream.git("cat-file", "-e", agent.ok("git -C p rev-parse HEAD"))[0] != 0
        assert upstream.git("rev-parse", "main") == (0, before)


def test_a_remote_can_allow_force_pushes_deletions_and_ci_changes(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    allow = {"allow_force_push": True, "allow_deletes": True, "allow_ci_changes": True}
    with gated_bottle(docker_client, upstream, **allow) as agent:
        agent.ok(f"git clone -q {upstream.ssh_url} p")
        agent.ok("cd p && mkdir -p .github/workflows && echo 'on: push' > .github/workflows/x.yml")
        agent.ok("cd p && git add .github && git commit -q -m ci && git push -q origin HEAD:main")
        assert upstream.git("rev-parse", "main") == (0, agent.ok("git -C p rev-parse HEAD"))

        agent.ok("cd p && git commit -q --amend -m 'ci, reworded'")
        agent.ok("cd p && git push -q --force origin HEAD:main HEAD:refs/heads/extra")
        assert upstream.git("rev-parse", "main") == (0, agent.ok("git -C p rev-parse HEAD"))
        agent.ok("cd p && git push -q origin :refs/heads/extra")
        assert upstream.git("show-ref", "--verify", "refs/heads/extra")[0] != 0

        # Allowances are not a way around the secret scan.
        text, _ = leaky_file()
        agent.ok(f"cd p && printf '%s' '{text}' > .github/workflows/creds.yml")
        agent.ok("cd p && git add .github && git commit -q -m creds")
        code, out = agent.sh("cd p && git push --force origin HEAD:main 2>&1")
        assert code != 0 and "push refused: gitleaks found" in out, out


def test_the_upstream_key_is_only_in_the_gate(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    needle = private_key_needle(upstream.key_path)
    with gated_bottle(docker_client, upstream) as agent:
        agent.ok(f"git clone -q {upstream.ssh_url} p")
        filesystem = b"".join(docker_client.api.export(agent.id))
        assert needle.encode() not in filesystem, "the upstream key is in the agent container"
        assert needle not in json.dumps(docker_client.api.inspect_container(agent.id))
        config = agent.ok("cat ~/.gitconfig")
        assert "insteadOf = " + upstream.spec().url_prefix in config

        wanted = [f"{L.ROLE}={L.ROLE_GIT_GATE}", f"{L.IDENTITY}={agent.identity}"]
        (gate,) = docker_client.containers.list(filters={"label": wanted})
        assert needle not in json.dumps(gate.attrs), "the key is in the gate's env, argv or labels"
        assert gate.attrs["Config"]["User"] == "10002:10002"
        assert gate.attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert gate.attrs["HostConfig"]["CapDrop"] == ["ALL"]
        # The key sits in the vault (tmpfs), readable by the gate's user alone.
        code, out = gate.exec_run(["sh", "-c", "stat -c '%u %a' /vault/gitgate/r0.key"])
        assert (code, out.decode().strip()) == (0, "10002 400")
        mounts = [m.split() for m in gate.exec_run(["cat", "/proc/mounts"]).output.splitlines()]
        assert [b"/vault", b"tmpfs"] in [m[1:3] for m in mounts]

        # Only the agent's network is served: not the engine host, not the outside network.
        outside = next(
            net["IPAddress"]
            for name, net in gate.attrs["NetworkSettings"]["Networks"].items()
            if name.endswith("-egress")
        )
        url = f"http://{outside}:8080/r0/ssh/repo.git/info/refs?service=git-upload-pack"
        status = gate.exec_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url])
        assert status.output.decode() == "403"


def test_fetch_fails_when_the_upstream_is_down(
    docker_client: docker.DockerClient, upstream: Upstream
) -> None:
    with gated_bottle(docker_client, upstream) as agent:
        agent.ok(f"git clone -q {upstream.ssh_url} p")
        upstream.container.stop(timeout=2)
        code, out = agent.sh("git -C p fetch 2>&1")
        assert code != 0, out
        assert "git gate: fetching" in out and "failed" in out, out
        assert agent.sh("git -C p ls-remote origin")[0] != 0
        assert agent.sh(f"git clone -q {upstream.ssh_url} again")[0] != 0
        agent.ok("cd p && echo late > late.txt && git add late.txt && git commit -q -m late")
        code, out = agent.sh("cd p && git push origin HEAD:main 2>&1")
        assert code != 0 and "git gate: fetching" in out, out


VM_SCRIPT = """
set -u
export GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@bottle.test
export GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@bottle.test
git clone -q {url} p && cat p/README
cd p
echo "CLONED $(git rev-parse HEAD)"
echo mine > agent.txt && git add agent.txt && git commit -q -m clean
git push -q origin HEAD:main 2>/dev/null && echo "PUSHED $(git rev-parse HEAD)"
printf '%s' '{leak}' > credentials && git add credentials && git commit -q -m leak
git push origin HEAD:main >/tmp/push.log 2>&1 && echo LEAK-PUSHED
sed 's/^/PUSH: /' /tmp/push.log
echo "LEAKED $(git rev-parse HEAD)"
touch /tmp/waiting
while [ ! -e /tmp/go ]; do sleep 0.2; done
git fetch -q 2>/dev/null || echo FETCH-FAILED
"""


def test_on_a_vm_the_gate_clones_pushes_scans_and_fails_closed(
    vm: FakeVm,
    docker_client: docker.DockerClient,
    agent_image: str,
    write_manifest: Callable[..., Path],
    tmp_path: Path,
) -> None:
    ensure_upstream_image(docker_client)
    load_image(docker_client, vm, UPSTREAM_IMAGE)
    with (
        open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine,
        start_upstream(engine.client, tmp_path / "upstream") as server,
    ):
        text, key_id = leaky_file()
        project = write_manifest(
            {
                "bottles": {
                    "gated": {"egress": {"enabled": False}, "git": [server.manifest_entry()]}
                },
                "agents": {"worker": {"bottle": "gated"}},
                "hosts": {"vm": vm.hosts_entry()},
            }
        ).parent
        script = VM_SCRIPT.format(url=server.ssh_url, leak=text)
        proc = rbottle(
            project, "start", "worker", "--host", "vm", "--yes", "--", "sh", "-c", script
        )
        try:
            agent = wait_for_agent(engine.client, proc)
            server.container.stop(timeout=2)
            code, out = vm.sh(f"docker exec {agent} touch /tmp/go")
            assert code == 0, out
            code, out, err = finish(proc, timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == "hello from upstream", out
        marks = dict(line.split(" ", 1) for line in lines if " " in line)
        pushed, leaked = marks["PUSHED"], marks["LEAKED"]
        assert len({marks["CLONED"], pushed, leaked}) == 3, out
        refusal = "\n".join(line for line in lines if line.startswith("PUSH: "))
        assert "push refused: gitleaks found" in refusal and "aws-access-token" in refusal, out
        assert key_id not in refusal, "the finding must be shown redacted"
        assert "LEAK-PUSHED" not in lines and "FETCH-FAILED" in lines, out
        server.container.start()
        assert server.git("rev-parse", "main") == (0, pushed)
        assert server.git("cat-file", "-e", leaked)[0] != 0
    assert grep_vm_disk(vm, private_key_needle(server.key_path)) == ""


def wait_for_agent(
    client: docker.DockerClient, proc: subprocess.Popen[str], timeout: float = 300
) -> str:
    """The agent container's id once its script waits for /tmp/go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"rbottle ended early ({proc.returncode}): {err}{out}")
        for container in client.containers.list(filters={"label": f"{L.ROLE}={L.ROLE_AGENT}"}):
            if container.exec_run(["test", "-e", "/tmp/waiting"]).exit_code == 0:
                return str(container.id)
        time.sleep(0.5)
    raise AssertionError("the bottle never reached its wait on the VM")


def test_the_demos_git_probe_is_refused_and_a_clean_push_is_not(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    """`rbottle demo`'s git upstream and probe, in a bottle without the egress proxy."""
    image = build_demo_git_image(docker_client, lambda _m: None)
    (probe,) = [p for p in probes() if p.name == "secret in a git push"]
    with demo_git() as git:
        spec = gated_spec(git.remote(), agent="demo")
        backend = DockerBottleBackend(docker_client)
        options = LaunchOptions(
            tty=False, before_agent_start=lambda nets: git.start(docker_client, image, nets)
        )
        with backend.launch(backend.prepare(spec), options) as bottle:
            backend.release(bottle)
            agent = Agent(docker_client, bottle.agent_container, bottle.identity)
            code, out = agent.sh(probe.argv[-1])
            assert (code, probe.read(out)) == (0, "refused"), out
            code, out = agent.sh(push_probe_script("nothing secret here"))
            assert (code, out.split()[-1]) == (0, "pushed"), out
        assert git.key_path.stat().st_mode & 0o077 == 0, "the demo's client key is private"
    assert not git.key_path.exists(), "the demo's client key outlived the demo"
