"""Shared fixtures: isolated HOME/state for every test, and manifest writing helpers.

Under CI (CI=true) a skipped test is a failed one: every real part must be present. The
only exception is a test marked ``live_cloud`` (opt-in, it creates billable VMs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

FULL_MANIFEST: dict[str, Any] = {
    "bottles": {
        "dev": {
            "env": {
                "GIT_AUTHOR_NAME": "Bottled",
                "TOKEN": "${RB_TEST_TOKEN}",
                "ASK": "?a question",
            },
            "egress": {"allowlist": ["pypi.org", "api.anthropic.com", "PyPI.org"]},
            "git": [
                {
                    "Host": "git.example.test",
                    "User": "git",
                    "Port": 2222,
                    "IdentityFile": "~/.ssh/upstream",
                    "KnownHostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample",
                    "ExtraHosts": {"git.example.test": "10.1.2.3"},
                }
            ],
            "cred_proxy": {
                "routes": [
                    {
                        "name": "anthropic",
                        "role": "anthropic-base-url",
                        "upstream": "https://api.anthropic.com",
                        "inject": {"x-api-key": "${RB_TEST_TOKEN}"},
                    }
                ]
            },
        },
        "bare": {},
    },
    "agents": {
        "implementer": {"bottle": "dev", "prompt": "be careful"},
        "plain": {"bottle": "bare"},
    },
    "hosts": {
        "vm1": {"provider": "ssh", "address": "vm1.example.test", "user": "admin", "port": 2200},
        "cloud": {"provider": "ec2", "region": "eu-west-1"},
    },
}

SECRET = "sk-test-very-secret-0123456789"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and os.environ.get("CI")) or item.get_closest_marker("live_cloud"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true, which is a failure (only tests marked live_cloud may skip):"
        f" {reason}"
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real ~/claude-bottle.json or state dir."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("REMOTEBOTTLE_HOME", str(tmp_path / "rbhome"))
    # Cloud SDKs must never reach for real credentials or an instance metadata service.
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FLY_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # Nor a real Anthropic credential: a bottle's login comes from these when it has no route.
    for name in ("CLAUDE_BOTTLE_OAUTH_TOKEN", "RBOTTLE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    return home


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    def write(data: Any, where: Path | None = None) -> Path:
        directory = where or (tmp_path / "project")
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "claude-bottle.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return path

    return write
