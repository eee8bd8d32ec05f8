"""The supervisor's script: what it files, what it refuses, and its two sides.

The script runs in the sidecar, not as part of the package; here it runs as a local
process: the agent's side on a loopback port, the operator's on a unix socket in a
temporary directory, with the real `rbottle-propose` and control commands.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from remotebottle.backend.docker import supervisor

pytestmark = pytest.mark.unit

RESOURCES = Path(supervisor.__file__).parents[2] / "resources" / "supervisor"
SCRIPT = RESOURCES / "supervisor.py"
PROPOSE = RESOURCES / "rbottle-propose"


@functools.cache
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rbottle_supervisor_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        ("egress", {"hosts": ["PyPI.org.", "*.example.com", "pypi.org"]},
         {"hosts": ["pypi.org", "*.example.com"]}),
        ("cred-route", {"name": "gh", "upstream": "https://api.github.com",
                        "headers": ["Authorization"]},
         {"name": "gh", "upstream": "https://api.github.com", "headers": ["Authorization"],
          "role": None}),
        ("capability", {"packages": ["postgresql-client", "libpq5=15.4-0"]},
         {"packages": ["postgresql-client", "libpq5=15.4-0"], "dockerfile": ""}),
        ("capability", {"dockerfile": "RUN true\n"}, {"packages": [], "dockerfile": "RUN true\n"}),
    ],
)  # fmt: skip
def test_valid_payloads_are_filed_in_canonical_form(
    kind: str, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert script().validate(kind, payload) == expected


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("sudo", {}, "unknown kind"),
        ("egress", {"hosts": []}, "at least one host"),
        ("egress", {"hosts": ["https://pypi.org"]}, "not a host name"),
        ("egress", {"hosts": ["pypi.org:443"]}, "not a host name"),
        ("egress", {"hosts": ["10.0.0.1"]}, "not a host name"),
        ("egress", {"hosts": ["a.example"] * 33}, "at most 32"),
        ("egress", {"hosts": ["a.example"], "ports": [1]}, "unknown payload field"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example",
                        "headers": {"Authorization": "Bearer sk-1"}}, "header names only"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example",
                        "inject": {"Authorization": "t"}}, "header names only"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example",
                        "headers": ["Authorization: Bearer sk-1"]}, "not a header name"),
        ("cred-route", {"name": "gh", "upstream": "https://u:p@x.example"}, "credentials"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example/?token=1"}, "query"),
        ("cred-route", {"name": "gh", "upstream": "ftp://x.example"}, "http(s) URL"),
        ("cred-route", {"name": "GH!", "upstream": "https://x.example"}, "name must be"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example", "headers": ["A"],
                        "role": "x"}, "role"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example"}, "at least one header"),
        ("egress", {"hosts": ["*.com"]}, "too wide"),
        ("capability", {"dockerfile": "RUN echo \u202eevil"}, "invisible formatting"),
        ("capability", {}, "packages, a Dockerfile fragment, or both"),
        ("capability", {"packages": ["rm -rf /"]}, "not a Debian package"),
        ("capability", {"dockerfile": "#" * 20000}, "at most 16384"),
        ("capability", {"dockerfile": "\u00e9" * 9000}, "over 16384 bytes"),
        ("capability", {"dockerfile": "RUN \x1b[2J"}, "control characters"),
        ("cred-route", {"name": "gh", "upstream": "https://x.example/a b"}, "http(s) URL"),
    ],
)  # fmt: skip
def test_bad_payloads_are_refused_with_the_reason(
    kind: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(script().Invalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        script().validate(kind, payload)


def test_a_filing_checks_its_reason_and_timeout() -> None:
    filing = script().filing
    ok = {"kind": "egress", "payload": {"hosts": ["a.example"]}}
    assert filing(ok) == ("egress", {"hosts": ["a.example"]}, "", 600.0)
    assert filing({**ok, "reason": "two\nlines\tok"})[2] == "two\nlines\tok"
    for bad, message in [
        ({**ok, "timeout": 0}, "between 1 and"),
        ({**ok, "timeout": True}, "number of seconds"),
        ({**ok, "reason": "x" * 2001}, "at most 2000"),
        ({**ok, "reason": "ok\x1b]0;title\x07"}, "control characters"),
        ({**ok, "approve": True}, "unknown field"),
    ]:
        with pytest.raises(script().Invalid, match=message):
            filing(bad)


def test_a_decision_and_a_timeout_cannot_both_win() -> None:
    board = script().Board()
    item = board.file("egress", {"hosts": ["a.example"]}, "r")
    assert board.decide(item.id, {"approve": True, "reason": "yes"})
    assert board.give_up(item, "timeout", "late")["status"] == "approved"
    assert not board.decide(item.id, {"approve": False})
    late = board.file("egress", {"hosts": ["a.example"]}, "r")
    assert board.give_up(late, "timeout", "late")["status"] == "timeout"
    assert not board.decide(late.id, {"approve": True})
    assert board.listing() == []


def test_an_edited_payload_is_validated_too() -> None:
    board = script().Board()
    item = board.file("egress", {"hosts": ["a.example"]}, "r")
    with pytest.raises(script().Invalid):
        board.decide(item.id, {"approve": True, "payload": {"hosts": ["not a host"]}})
    assert [p["id"] for p in board.listing()] == [item.id]


class Local:
    """The supervisor as a local process, and its two sides."""

    def __init__(self, tmp: Path) -> None:
        self.control = str(tmp / "control.sock")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve", "--host", "127.0.0.1",
             "--port", "0", "--control", self.control],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        listening = json.loads(self.proc.stdout.readline())
        assert listening["event"] == "listening"
        self.port = int(listening["port"])

    def propose(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "RBOTTLE_SUPERVISOR_URL": f"http://127.0.0.1:{self.port}"}
        return subprocess.Popen(
            [sys.executable, str(PROPOSE), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def control_cmd(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args, "--control", self.control],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=10,
        )

    def pending(self, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listing: list[dict[str, Any]] = json.loads(self.control_cmd("list").stdout)
            if len(listing) >= count:
                return listing
            time.sleep(0.05)
        raise AssertionError("nothing was filed")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    server = Local(tmp_path)
    yield server
    server.proc.kill()
    server.proc.wait()


def test_the_agent_waits_for_the_operators_decision(local: Local) -> None:
    agent = local.propose("egress", "pypi.org", "--reason", "pip")
    [proposal] = local.pending()
    assert (proposal["kind"], proposal["payload"], proposal["reason"]) == (
        "egress",
        {"hosts": ["pypi.org"]},
        "pip",
    )
    assert agent.poll() is None
    decided = local.control_cmd(
        "decide", proposal["id"], stdin=json.dumps({"approve": True, "reason": "fine"})
    )
    assert decided.returncode == 0, decided.stderr
    out, _ = agent.communicate(timeout=10)
    assert agent.returncode == 0
    assert "approved: fine" in out
    gone = local.control_cmd("decide", proposal["id"], stdin=json.dumps({"approve": False}))
    assert gone.returncode == supervisor.EXIT_GONE


def test_rejection_timeout_and_refusal_exit_statuses(local: Local) -> None:
    agent = local.propose("capability", "--package", "jq", "--reason", "r")
    [proposal] = local.pending()
    local.control_cmd("decide", proposal["id"], stdin='{"approve": false, "reason": "no"}')
    assert agent.communicate(timeout=10)[0].endswith("rejected: no\n")
    assert agent.returncode == 1

    late = local.propose("egress", "a.example", "--reason", "r", "--timeout", "1")
    out, _ = late.communicate(timeout=10)
    assert late.returncode == 2 and "timeout: no decision within 1 s" in out

    refused = local.propose("egress", "http://a.example/", "--reason", "r")
    out, _ = refused.communicate(timeout=10)
    assert refused.returncode == 2 and "refused:" in out and "not a host name" in out


def test_a_bad_decision_is_refused_and_the_proposal_stays(local: Local) -> None:
    agent = local.propose("egress", "a.example", "--reason", "r")
    [proposal] = local.pending()
    bad = local.control_cmd("decide", proposal["id"], stdin='{"approve": "yes"}')
    assert bad.returncode == 2 and "approve" in bad.stderr
    assert [p["id"] for p in local.pending()] == [proposal["id"]]
    agent.kill()
    agent.wait()
