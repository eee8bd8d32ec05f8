"""The preflight says which engine and runtime a bottle gets, and shows an allowed old
engine in red; `--allow-old-engine` reaches the plan."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from remotebottle import manifest
from remotebottle.backend.docker.engine import EngineFacts, GvisorCheck
from remotebottle.backend.docker.planner import plan
from remotebottle.backend.spec import Command
from remotebottle.cli import console, main
from remotebottle.cli.preflight import render_preflight
from remotebottle.hosts.resolve import resolve_host
from remotebottle.ops.plan import StartPlan
from remotebottle.resolve import build_spec
from tests.conftest import FULL_MANIFEST, SECRET

pytestmark = pytest.mark.unit

RED = "\x1b[1;31m"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("RB_TEST_TOKEN", SECRET)


@pytest.fixture
def project(write_manifest: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_manifest(FULL_MANIFEST)
    monkeypatch.chdir(path.parent)
    return path


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the preflight prints on stderr, with its colours."""
    buffer = io.StringIO()
    made = Console(
        file=buffer, force_terminal=True, color_system="standard", width=200, highlight=False
    )
    monkeypatch.setattr(console, "err", made, raising=False)
    return buffer


def preflight_lines(text: str, label: str) -> list[str]:
    """The preflight rows (colours kept) labelled `label`."""
    return [line for line in text.splitlines() if ANSI.sub("", line).startswith(f"{label} ")]


def clear(screen: io.StringIO) -> None:
    screen.seek(0)
    screen.truncate()


def test_the_flag_reaches_the_dry_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["start", "implementer", "--dry-run", "--format=json"]) == 0
    assert json.loads(capsys.readouterr().out)["allow_old_engine"] is False
    argv = ["start", "implementer", "--dry-run", "--format=json", "--allow-old-engine"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["allow_old_engine"] is True
    assert data["engine"] is None and data["runtime"] == "auto"  # no engine answers here


def test_a_host_engine_is_said_to_be_checked_and_an_allowed_old_one_is_red(
    project: Path, screen: io.StringIO
) -> None:
    assert main(["start", "implementer", "--dry-run", "--host", "vm1"]) == 0
    text = screen.getvalue()
    (engine,) = preflight_lines(text, "engine")
    assert "older than 25.0.5 is refused (CVE-2024-29018)" in engine and RED not in engine
    assert "old engine" not in text
    (runtime,) = preflight_lines(text, "runtime")
    assert "decided by the engine: runsc (gVisor) for the agent and its sidecars" in runtime

    clear(screen)
    assert main(["start", "implementer", "--dry-run", "--host", "vm1", "--allow-old-engine"]) == 0
    text = screen.getvalue()
    (engine,) = preflight_lines(text, "engine")
    assert "older than 25.0.5 is used all the same" in engine and RED in engine
    (allowed,) = preflight_lines(text, "old engine")
    assert RED in allowed and "allowed (--allow-old-engine)" in allowed
    assert "CVE-2024-29018" in allowed


def _local_start(
    loaded: manifest.Manifest, facts: EngineFacts, check: GvisorCheck | None
) -> StartPlan:
    spec = build_spec(loaded, "plain", command=Command(mode="exec", argv=("true",)), environ={})
    return StartPlan(host=resolve_host(None, loaded), bottle=plan(spec, facts, check))


def test_the_local_engine_version_and_runtime_are_shown(
    write_manifest: Callable[..., Path], screen: io.StringIO
) -> None:
    loaded = manifest.load([write_manifest(FULL_MANIFEST)])
    safe = EngineFacts(
        version="26.1.5+dfsg1",
        runtimes=frozenset({"runc", "runsc"}),
        runtime_args={"runsc": ("--network=host",)},
    )
    render_preflight(_local_start(loaded, safe, None))
    text = screen.getvalue()
    (engine,) = preflight_lines(text, "engine")
    assert "Docker 26.1.5+dfsg1 (CVE-2024-29018 fixed)" in engine and RED not in engine
    (runtime,) = preflight_lines(text, "runtime")
    assert "runsc --network=host (gVisor) for the agent and its sidecars, once a" in runtime

    clear(screen)
    old = EngineFacts(version="20.10.24+dfsg1", runtimes=frozenset({"runc"}))
    render_preflight(_local_start(loaded, old, None))
    text = screen.getvalue()
    (engine,) = preflight_lines(text, "engine")
    assert "Docker 20.10.24+dfsg1: older than 25.0.5" in engine and RED in engine
    assert "runc (the engine has no gVisor)" in text
    assert "leaks DNS from internal networks (CVE-2024-29018): upgrade the engine" in text


def test_resume_and_doctor_take_their_new_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    assert "--allow-old-engine" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "--host HOST" in capsys.readouterr().out
