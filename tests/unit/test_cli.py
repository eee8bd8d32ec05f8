"""The command line: help that teaches, clean one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from remotebottle.cli import COMMANDS, build_parser, main
from tests.conftest import FULL_MANIFEST, SECRET

OAUTH_TOKEN = "sk-ant-oat01-cli-unit-test-not-real"

pytestmark = pytest.mark.unit

SUBCOMMANDS = [
    "start",
    "attach",
    "resume",
    "list",
    "cleanup",
    "hosts",
    "env",
    "dashboard",
    "demo",
    "schema",
    "doctor",
]


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unit tests never reach an engine: point DOCKER_HOST at a socket nobody serves."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("RB_TEST_TOKEN", SECRET)
    monkeypatch.setenv("CLAUDE_BOTTLE_OAUTH_TOKEN", OAUTH_TOKEN)


@pytest.fixture
def project(write_manifest: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_manifest(FULL_MANIFEST)
    monkeypatch.chdir(path.parent)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_subcommand_is_registered() -> None:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "==SUPPRESS=="]
    choices = actions[0].choices
    assert choices is not None
    assert sorted(choices) == sorted(SUBCOMMANDS)
    assert len(COMMANDS) == len(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_help_teaches(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: rbottle {command}" in out
    assert len(out.splitlines()) > 6
    assert "example" in out or command in ("demo", "doctor")


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("rbottle 0.")


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "usage: rbottle" in err


def test_dry_run_json_is_the_plan_without_secrets(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run(capsys, "start", "implementer", "--dry-run", "--format=json")
    assert code == 0
    plan = json.loads(out)
    assert plan["agent"] == "implementer"
    assert plan["host"] == {"name": "local", "provider": "local"}
    assert plan["runtime"] == "auto"  # no engine answers in unit tests
    assert "pypi.org" in plan["egress"]["allowlist"]
    assert SECRET not in out


def test_claude_code_without_a_credential_says_what_to_export(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAUDE_BOTTLE_OAUTH_TOKEN")
    code, _, err = run(capsys, "start", "plain", "-p", "say hi", "--dry-run")
    assert code == 1
    assert "no Anthropic credential for Claude Code: export CLAUDE_BOTTLE_OAUTH_TOKEN" in err
    code, _, _ = run(capsys, "start", "plain", "--dry-run", "--", "true")
    assert code == 0


def test_dry_run_text_is_the_preflight(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "start", "implementer", "--dry-run", "--host", "vm1")
    assert code == 0 and out == ""
    assert "vm1 (ssh)" in err and "egress" in err and "via the git gate" in err
    assert "anthropic    via credential proxy route 'anthropic' (x-api-key from" in err
    assert SECRET not in err


def test_print_and_exec_modes_reach_the_plan(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "start", "plain", "-p", "say hi", "--dry-run", "--format=json")
    assert code == 0 and json.loads(out)["command"] == {"mode": "print", "prompt": "say hi"}
    assert json.loads(out)["anthropic_credential"].startswith(
        "subscription token from $CLAUDE_BOTTLE_OAUTH_TOKEN, via the credential proxy"
    )
    assert OAUTH_TOKEN not in out
    code, out, _ = run(
        capsys, "start", "plain", "--dry-run", "--format=json", "--", "sh", "-c", "exit 3"
    )
    assert code == 0 and json.loads(out)["command"] == {
        "mode": "exec",
        "argv": ["sh", "-c", "exit 3"],
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["start", "implementer", "--format=json"], "--format=json is only for --dry-run"),
        (["start", "implementer", "--dry-run", "-p", "x", "--", "ls"], "cannot be combined"),
        (["start", "implementer", "--dry-run", "--"], "`--` must be followed by a command"),
        (["list", "--", "ls"], "only accepted by `rbottle start`"),
        (["start", "implementer", "--cwd", "/no/such/dir", "--dry-run"], "not a directory"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("error:") == 1 and expected in err
    assert "Traceback" not in err


def test_unknown_agent_is_one_line_and_a_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "start", "nobody", "--dry-run")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: no agent named 'nobody'")
    assert lines[1].startswith("hint: ")
    assert len(lines) == 2


def test_bad_manifest_is_one_line(
    write_manifest: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_manifest({"bottles": {"b": {"ssh": []}}})
    monkeypatch.chdir(path.parent)
    code, _, err = run(capsys, "start", "a", "--dry-run")
    assert code == 1
    assert err.splitlines()[0] == f"error: {path}: bottles.b.ssh: no longer supported: use `git`"
    assert "Traceback" not in err


def test_debug_shows_the_traceback(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--debug", "start", "nobody", "--dry-run")
    assert code == 1 and "Traceback" in err


def test_missing_variable_fails_the_dry_run(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RB_TEST_TOKEN")
    code, _, err = run(capsys, "start", "implementer", "--dry-run")
    assert code == 1 and "${RB_TEST_TOKEN} is not set in the local environment" in err
    assert str(project) in err


def test_explicit_manifest_option(
    write_manifest: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_manifest(FULL_MANIFEST, where=tmp_path / "elsewhere")
    code, out, _ = run(
        capsys, "start", "plain", "--dry-run", "--format=json", "--manifest", str(path)
    )
    assert code == 0 and json.loads(out)["bottle"] == "bare"
    code, _, err = run(
        capsys, "start", "plain", "--dry-run", "--manifest", str(tmp_path / "nope.json")
    )
    assert code == 1 and "no such manifest file" in err


@pytest.mark.parametrize("argv", [["env", "cloud"], ["hosts", "trust", "cloud"]])
def test_a_cloud_host_has_no_standing_machine_to_reach(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code != 0 and out == ""
    assert "makes a new VM for each session" in err and "Traceback" not in err


def test_a_cloud_dry_run_shows_what_would_be_paid_for_and_needs_no_credentials(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "start", "plain", "--host", "cloud", "--dry-run", "--format=json")
    assert code == 0, err
    vm = json.loads(out)["vm"]
    assert vm["provider"] == "ec2" and vm["region"] == "eu-west-1"
    assert vm["instance_type"] == "t3.medium" and "15 min" in vm["ttl"]
    assert vm["hourly_price"].startswith("~$")
    code, out, err = run(capsys, "start", "plain", "--host", "cloud", "--dry-run")
    assert code == 0 and "destroyed when the session ends" in err


def test_a_cloud_vm_without_credentials_is_a_clean_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "start", "plain", "--host", "cloud", "--yes", "--", "true")
    assert code != 0 and out == ""
    assert "credentials" in err.lower() and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["start", "plain", "--yes", "--", "true"],
        ["list"],
        ["cleanup", "--yes"],
        ["attach", "impl-ab12c"],
        ["demo"],
    ],
)
def test_engine_commands_without_an_engine_fail_cleanly(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _out, err = run(capsys, *argv)
    assert code == 1
    assert "no Docker engine answers" in err
    assert "hint: start the engine" in err
    assert "Traceback" not in err


def test_prompted_value_without_a_terminal_is_a_clean_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "start", "implementer", "--yes", "-p", "hi")
    assert code == 1
    assert "cannot ask for 'a question': no terminal" in err
    assert "Traceback" not in err


def test_start_without_yes_and_no_terminal_refuses(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "start", "plain", "--", "true")
    assert code == 2
    assert "no terminal to confirm on" in err and "--yes" in err


def test_resume_without_state_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "resume", "implementer-ab12c")
    assert code == 1 and "no saved state for implementer-ab12c" in err


def test_attach_checks_the_identity(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "attach", "not-an-identity!")
    assert code == 1 and "is not a bottle identity" in err


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert set(json.loads(out)["properties"]) >= {"bottles", "agents", "hosts"}


def test_hosts_lists_manifest_entries(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hosts", "--format=json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["local"]["provider"] == "local"
    assert rows["vm1"]["where"] == "admin@vm1.example.test:2200"
    assert rows["cloud"]["lifetime"] == "per session"


@pytest.mark.parametrize(("marker", "status"), [("", "known"), ("@revoked ", "unknown")])
def test_hosts_reads_host_keys_from_known_hosts(
    project: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str], marker: str, status: str
) -> None:
    import paramiko

    key = paramiko.ECDSAKey.generate()
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    line = f"{marker}[vm1.example.test]:2200 {key.get_name()} {key.get_base64()}\n"
    (ssh_dir / "known_hosts").write_text(line)
    code, out, _ = run(capsys, "hosts", "--format=json")
    assert code == 0
    keys = {row["name"]: row["host_key"] for row in json.loads(out)}
    assert keys == {"local": None, "vm1": status, "cloud": None}


def test_doctor_without_engine_fails_with_a_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "doctor", "--format=json")
    assert code == 1
    report = json.loads(out)
    engine = next(c for c in report["checks"] if c["name"] == "engine")
    assert engine["status"] == "fail" and "dockerd" in engine["fix"]
    manifest_check = next(c for c in report["checks"] if c["name"] == "manifest")
    assert manifest_check["status"] == "ok"


def test_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "remotebottle", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("rbottle ")


def test_an_engine_client_error_no_layer_caught_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout from docker-py's HTTP stack (seen under load) ends in one line, no
    traceback: the real exception class, raised where a command would meet it."""
    import requests

    from remotebottle.cli import listing

    def timed_out(_args: object) -> int:
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)")

    monkeypatch.setattr(listing, "run_command", timed_out)
    code, _out, err = run(capsys, "list")
    assert code == 1
    assert "error: the Docker engine's connection failed: Read timed out" in err
    assert "Traceback" not in err and err.count("\n") <= 2
