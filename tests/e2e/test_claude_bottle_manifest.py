"""A manifest written the way claude-bottle documents it starts unchanged, locally and on a
fake VM.

The files: `~/claude-bottle.json` with the agent (its skill by bare name from
`~/.claude/skills/`, its prompt) and an older `dev` bottle; `./claude-bottle.json` with the
`dev` bottle that wins (env with a literal, a `?prompt` and a `${VAR}` value; a git entry
with `Host`, `Hostname`, a known_hosts-line `KnownHostKey`). The login is the subscription
token in `CLAUDE_BOTTLE_OAUTH_TOKEN`, with no route in the manifest.

- From the CLI, in a real terminal: the `?prompt` value is asked with no echo, and the agent
  clones and pushes through the git gate by the `Host` alias to a repository served by an
  sshd reached by its `Hostname`.
- Claude Code's own turn: authenticated by the token (the fake Messages API sees it, the
  bottle never holds it), with the manifest's prompt and skill. The route rbottle adds points
  at https://api.anthropic.com; here it is pointed at the fake API, the one change made to
  what `build_spec` returns.
On the VM, no secret is on its disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import secrets
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from remotebottle import manifest
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command
from remotebottle.hosts.engine import Engine, open_engine
from remotebottle.ops.images import place_images
from remotebottle.resolve import build_spec
from tests.e2e.conftest import FAKE_API_URL, FakeApi, run_to_end
from tests.e2e.gitupstream import (
    UPSTREAM_HOST,
    UPSTREAM_IMAGE,
    Upstream,
    ensure_upstream_image,
    private_key_needle,
    start_upstream,
)
from tests.e2e.tmux import RBOTTLE, Tmux
from tests.e2e.vmparts import grep_vm_disk, target, vm
from tests.integration.fakevm import FakeVm, fakevm, load_image

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

QUESTION = "Paste the review token"
PROMPT = "You review code for the rbottle e2e suite; be brief."
SKILL = "---\nname: reviewer\ndescription: Reviews a diff for the rbottle e2e suite.\n---\nLook.\n"


@dataclasses.dataclass
class Where:
    """The engine a bottle runs on: the local one, or a fake VM's through its tunnel."""

    client: docker.DockerClient
    vm: FakeVm | None = None
    engine: Engine | None = None


@pytest.fixture(params=["local", "vm"])
def where(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, agent_image: str
) -> Iterator[Where]:
    if request.param == "local":
        yield Where(docker_client)
        return
    fake: FakeVm = request.getfixturevalue("vm")
    ensure_upstream_image(docker_client)
    load_image(docker_client, fake, UPSTREAM_IMAGE)
    with open_engine(target(fake), progress=lambda _m: None, consent=lambda _q: False) as engine:
        yield Where(engine.client, fake, engine)


@pytest.fixture
def upstream(
    where: Where, docker_client: docker.DockerClient, tmp_path: Path
) -> Iterator[Upstream]:
    if where.vm is None:
        ensure_upstream_image(docker_client)
    with start_upstream(where.client, tmp_path / "upstream") as server:
        yield server


@dataclasses.dataclass
class Secrets:
    token: str = dataclasses.field(default_factory=lambda: f"sk-ant-oat01-{secrets.token_hex(16)}")
    asked: str = dataclasses.field(default_factory=lambda: f"asked-{secrets.token_hex(12)}")
    from_env: str = dataclasses.field(default_factory=lambda: f"env-{secrets.token_hex(12)}")

    def environ(self) -> dict[str, str]:
        return {"CLAUDE_BOTTLE_OAUTH_TOKEN": self.token, "REVIEW_API_KEY": self.from_env}

    def all(self) -> list[str]:
        return [self.token, self.asked, self.from_env]


def write_claude_bottle_files(
    home: Path, project: Path, server: Upstream, fake: FakeVm | None
) -> None:
    """Both files in claude-bottle's documented shape (plus `hosts` for the VM)."""
    skill = home / ".claude" / "skills" / "reviewer"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(SKILL)
    home_file: dict[str, Any] = {
        "bottles": {"dev": {"env": {"GREETING": "from the home file"}}},
        "agents": {"implementer": {"bottle": "dev", "skills": ["reviewer"], "prompt": PROMPT}},
    }
    git_entry = {
        "Host": "gitea",
        "Hostname": UPSTREAM_HOST,
        "Port": server.port,
        "User": "admin",
        "IdentityFile": str(server.key_path),
        # As `ssh-keyscan -p PORT` writes it: OpenSSH names a host on another port [host]:port.
        "KnownHostKey": f"[{UPSTREAM_HOST}]:{server.port} {server.host_key}",
        "ExtraHosts": {UPSTREAM_HOST: server.address},
    }
    project_file: dict[str, Any] = {
        "bottles": {
            "dev": {
                "env": {
                    "GREETING": "hello from the project",
                    "REVIEW_TOKEN": f"?{QUESTION}",
                    "REVIEW_API_KEY": "${REVIEW_API_KEY}",
                },
                "git": [git_entry],
            }
        }
    }
    if fake is not None:
        project_file["hosts"] = {"vm": fake.hosts_entry()}
    project.mkdir(parents=True, exist_ok=True)
    (home / "claude-bottle.json").write_text(json.dumps(home_file, indent=2))
    (project / "claude-bottle.json").write_text(json.dumps(project_file, indent=2))


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


SCRIPT = """
set -u
echo "GREETING=$GREETING"
echo "ASKED=$(printf %s "$REVIEW_TOKEN" | sha256sum | cut -c1-16)"
echo "FROM_ENV=$(printf %s "$REVIEW_API_KEY" | sha256sum | cut -c1-16)"
test -f ~/.claude/skills/reviewer/SKILL.md && echo SKILL=reviewer
echo "PROMPT=$(cat ~/.claude/rbottle-prompt.md)"
git clone -q gitea:project.git p && cd p || exit 7
echo reviewed > review.txt && git add review.txt
git -c user.name=agent -c user.email=agent@bottle.test commit -q -m review
git push -q origin HEAD:main 2>/dev/null && echo "PUSHED=$(git rev-parse HEAD)"
"""


def test_the_cli_starts_it_asks_without_echo_and_pushes_through_the_gate(
    where: Where, upstream: Upstream, isolated_home: Path, tmp_path: Path
) -> None:
    values = Secrets()
    project = tmp_path / "project"
    write_claude_bottle_files(isolated_home, project, upstream, where.vm)
    host = "--host vm" if where.vm else ""
    tmux = Tmux.fresh(project)
    try:
        tmux.start(
            f"{RBOTTLE} start implementer {host} --yes -- sh -c {shlex.quote(SCRIPT)}",
            env=values.environ(),
        )
        tmux.wait_for(f"{QUESTION}:", timeout=120)
        tmux.keys(values.asked, "Enter")
        screen = tmux.wait_for("EXITED=", timeout=300)
    finally:
        tmux.kill()
    assert "EXITED=0" in screen, screen
    lines = screen.splitlines()
    assert "GREETING=hello from the project" in lines, screen
    assert f"ASKED={digest(values.asked)}" in lines, screen
    assert f"FROM_ENV={digest(values.from_env)}" in lines, screen
    assert "SKILL=reviewer" in lines and f"PROMPT={PROMPT}" in lines, screen
    for value in values.all():
        assert value not in screen, "a secret value was shown on the terminal"
    [pushed] = [line.removeprefix("PUSHED=") for line in lines if line.startswith("PUSHED=")]
    assert upstream.git("rev-parse", "main") == (0, pushed)
    if where.vm is not None:
        for needle in [*values.all(), private_key_needle(upstream.key_path)]:
            assert grep_vm_disk(where.vm, needle) == "", "a secret is on the VM's disk"


def claude_code_spec(home: Path, project: Path, values: Secrets) -> BottleSpec:
    """The agent from both files, as `rbottle start implementer -p ...` builds it, its login
    route pointed at the fake API."""
    loaded = manifest.load([home / "claude-bottle.json", project / "claude-bottle.json"])
    spec = build_spec(
        loaded,
        "implementer",
        command=Command(mode="print", prompt="say hello"),
        environ=values.environ(),
        prompter=lambda question: values.asked if question == QUESTION else "",
    )
    [route] = spec.routes
    assert route.login == "CLAUDE_BOTTLE_OAUTH_TOKEN"
    return dataclasses.replace(spec, routes=(dataclasses.replace(route, upstream=FAKE_API_URL),))


def test_claude_code_logs_in_with_the_token_and_gets_the_prompt_and_skill(
    where: Where, upstream: Upstream, isolated_home: Path, tmp_path: Path, agent_image: str
) -> None:
    values = Secrets()
    project = tmp_path / "project"
    write_claude_bottle_files(isolated_home, project, upstream, where.vm)
    spec = claude_code_spec(isolated_home, project, values)
    backend = DockerBottleBackend(where.client)
    plan = backend.prepare(spec)
    if where.engine is not None:
        place_images(where.engine, plan, progress=lambda _m: None)
    api = FakeApi(where.client, agent_image, "Reviewed, subscriber.")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(api.remove)
        options = LaunchOptions(tty=False, before_agent_start=api.join)
        code, out, err = run_to_end(backend, plan, options)
        requests = api.requests()
    output = out.getvalue().decode() + err.getvalue().decode()
    assert code == 0, output
    assert "Reviewed, subscriber." in output
    messages = [r for r in requests if r["path"].startswith("/v1/messages")]
    assert messages, "Claude Code's request never reached the upstream"
    for request in messages:
        assert request["headers"]["authorization"] == f"Bearer {values.token}"
    sent = json.dumps([r["body"] for r in messages])
    assert PROMPT in sent, "the manifest's prompt is not in Claude Code's request"
    assert "Reviews a diff for the rbottle e2e suite." in sent, "the skill was not offered"
    for value in values.all():
        assert value not in output
    if where.vm is not None:
        for value in values.all():
            assert grep_vm_disk(where.vm, value) == "", "a secret is on the VM's disk"
