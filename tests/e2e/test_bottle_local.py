"""A real bottle on the local engine: real agent image, real Claude Code, real isolation."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from pydantic import SecretStr

from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.engine import engine_facts
from remotebottle.backend.spec import BottleSpec, Command, Secretish
from remotebottle.ops.stream import stream_output
from tests.e2e.conftest import FAKE_API_URL, FakeApi

pytestmark = pytest.mark.e2e

SECRET = "sk-e2e-secret-value-0123456789abcdef"


def spec_for(command: Command, **kwargs: object) -> BottleSpec:
    fields: dict[str, object] = {
        "identity": f"e2e-{__import__('secrets').token_hex(3)[:5]}",
        "agent": "e2e",
        "bottle": "sealed",
        "command": command,
        "egress_enabled": False,
    }
    fields.update(kwargs)
    return BottleSpec(**fields)  # type: ignore[arg-type]


def run_bottle(
    client: docker.DockerClient, spec: BottleSpec, options: LaunchOptions | None = None
) -> tuple[int, str, str, dict[str, object]]:
    """Launch, stream to buffers, end; returns (exit code, stdout, stderr, agent inspect)."""
    backend = DockerBottleBackend(client)
    plan = backend.prepare(spec)
    out, err = io.BytesIO(), io.BytesIO()
    with backend.launch(plan, options or LaunchOptions(tty=False)) as bottle:
        inspect = client.api.inspect_container(bottle.agent_container)
        code = stream_output(
            client,
            bottle.agent_container,
            stdout=out,
            stderr=err,
            on_attached=lambda: backend.release(bottle),
        )
    return code, out.getvalue().decode(), err.getvalue().decode(), inspect


def test_claude_code_completes_a_print_turn(
    docker_client: docker.DockerClient, fake_api: Callable[..., FakeApi]
) -> None:
    api = fake_api(reply="Bottled hello from the fake API.")
    spec = spec_for(
        Command(mode="print", prompt="say hello"),
        prompt="Answer briefly.",
        env={
            "ANTHROPIC_BASE_URL": Secretish("literal", SecretStr(FAKE_API_URL)),
            "ANTHROPIC_API_KEY": Secretish("env", SecretStr(SECRET)),
        },
    )
    code, out, err, _ = run_bottle(
        docker_client, spec, LaunchOptions(tty=False, before_agent_start=api.join)
    )
    assert code == 0, err
    assert "Bottled hello from the fake API." in out
    messages = [r for r in api.requests() if r["path"].startswith("/v1/messages")]
    assert messages, "Claude Code never called the Messages API"
    assert any(r["body"].get("stream") for r in messages if isinstance(r.get("body"), dict))
    system = json.dumps([r["body"].get("system") for r in messages])
    assert "Answer briefly." in system


def test_exit_status_passes_through_and_the_bottle_is_sealed(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    probe = """
    set -u
    printenv GRANTED_SECRET
    id -u
    grep CapEff /proc/self/status
    test -e /var/run/docker.sock && echo DOCKER-SOCKET || echo no-docker-socket
    curl -sS -m 3 -o /dev/null http://1.1.1.1/ 2>/dev/null && echo ROUTE || echo no-route
    curl -sS -m 3 -o /dev/null http://169.254.169.254/latest/meta-data/ 2>/dev/null \
      && echo IMDS || echo no-imds
    getent hosts example.com >/dev/null && echo DNS || echo no-dns
    ls /home/agent/.claude/skills
    exit 7
    """
    spec = spec_for(
        Command(mode="exec", argv=("sh", "-c", probe)),
        env={"GRANTED_SECRET": Secretish("env", SecretStr(SECRET))},
    )
    code, out, err, inspect = run_bottle(docker_client, spec)
    assert code == 7, err
    lines = out.split()
    assert SECRET in lines
    assert "1000" in lines
    assert "0000000000000000" in lines  # no effective capabilities
    for verdict in ("no-docker-socket", "no-route", "no-imds", "no-dns"):
        assert verdict in lines, out
    # The granted secret reached the agent through tmpfs, not through the engine's config.
    assert SECRET not in json.dumps(inspect)
    assert not any(m.get("Source", "").endswith("docker.sock") for m in inspect["Mounts"])


def test_skills_prompt_and_workdir_copy(
    docker_client: docker.DockerClient, agent_image: str, tmp_path: Path
) -> None:
    skill = tmp_path / "skills" / "greet"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text("---\nname: greet\n---\nSay hi.\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hi')\n")
    (project / "build").mkdir()
    (project / "build" / "out.bin").write_text("ignored")
    (project / ".gitignore").write_text("build/\n")
    import subprocess

    subprocess.run(["git", "init", "-q", str(project)], check=True)
    spec = spec_for(
        Command(
            mode="exec",
            argv=(
                "sh",
                "-c",
                "cat ~/.claude/skills/greet/SKILL.md; cat ~/.claude/rbottle-prompt.md; echo; ls -a",
            ),
        ),
        skills=(skill,),
        prompt="Be kind.",
        cwd=project,
    )
    code, out, err, _ = run_bottle(docker_client, spec)
    assert code == 0, err
    assert "Say hi." in out
    assert "Be kind." in out
    assert "main.py" in out and ".gitignore" in out
    assert "build" not in out.split()


def test_gvisor_is_used_when_the_engine_has_it(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    facts = engine_facts(docker_client)
    spec = spec_for(Command(mode="exec", argv=("true",)))
    plan = DockerBottleBackend(docker_client).prepare(spec)
    assert plan.runtime == ("runsc" if facts.has_gvisor else "runc")
    _, _, _, inspect = run_bottle(docker_client, spec)
    assert inspect["HostConfig"]["Runtime"] == plan.runtime


def test_transcript_is_snapshotted_and_restored(
    docker_client: docker.DockerClient, agent_image: str, tmp_path: Path
) -> None:
    writer = spec_for(
        Command(
            mode="exec",
            argv=(
                "sh",
                "-c",
                "mkdir -p ~/.claude/projects/p && "
                "echo '{\"turn\": 1}' > ~/.claude/projects/p/s.jsonl",
            ),
        ),
    )
    backend = DockerBottleBackend(docker_client)
    with backend.launch(backend.prepare(writer), LaunchOptions(tty=False)) as bottle:
        assert (
            stream_output(
                docker_client,
                bottle.agent_container,
                stdout=io.BytesIO(),
                on_attached=lambda: backend.release(bottle),
            )
            == 0
        )
        snapshot = tmp_path / "projects.tar"
        assert backend.save_transcript(bottle.agent_container, snapshot)
    reader = spec_for(Command(mode="exec", argv=("cat", "/home/agent/.claude/projects/p/s.jsonl")))
    code, out, err, _ = run_bottle(
        docker_client, reader, LaunchOptions(tty=False, transcript=snapshot)
    )
    assert code == 0, err
    assert '{"turn": 1}' in out
