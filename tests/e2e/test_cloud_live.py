"""A real cloud VM per session: opt-in, because it creates (and destroys) billable resources.

Run with real credentials and RBOTTLE_LIVE_EC2=1 (AWS_PROFILE or keys, and a region) or
RBOTTLE_LIVE_FLY=<app> (FLY_API_TOKEN). Each test starts `rbottle start --host ... -- true`
from the command line, then asks the provider that nothing of that session is left.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest import Ec2Host, FlyHost
from tests.e2e.conftest import finish, rbottle

pytestmark = [pytest.mark.e2e, pytest.mark.live_cloud]

# Taken before the autouse fixture hides the user's cloud credentials from every test.
REAL_ENV = dict(os.environ)
CLOUD_VARS = (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "FLY_API_TOKEN",
)


def live_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The user's own cloud credentials back, for this test only."""
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    for name in CLOUD_VARS:
        if name in REAL_ENV:
            monkeypatch.setenv(name, REAL_ENV[name])
        else:
            monkeypatch.delenv(name, raising=False)
    if "AWS_CONFIG_FILE" not in REAL_ENV:
        monkeypatch.setenv("AWS_CONFIG_FILE", str(Path(REAL_ENV.get("HOME", "~")) / ".aws/config"))
    if "AWS_SHARED_CREDENTIALS_FILE" not in REAL_ENV:
        home = Path(REAL_ENV.get("HOME", "~"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws/credentials"))
    return {name: os.environ[name] for name in CLOUD_VARS if name in os.environ}


def session_leaves_nothing(
    entry: Ec2Host | FlyHost,
    write_manifest: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = live_env(monkeypatch)
    host: dict[str, Any] = entry.model_dump(mode="json", exclude_none=True)
    project = write_manifest(
        {
            "bottles": {"sealed": {"egress": {"enabled": False}}},
            "agents": {"worker": {"bottle": "sealed"}},
            "hosts": {"live": host},
        }
    ).parent
    code, _, err = finish(
        rbottle(project, "start", "worker", "--host", "live", "--yes", "--", "true", env=env),
        timeout=1200,
    )
    assert code == 0, err
    identity = err.split("rbottle resume ")[1].split()[0]
    owned = HostTarget("live", entry).cloud_provider().list_owned()
    left = [r for r in owned if r.identity == identity]
    assert all(r.state in ("terminated", "shutting-down", "destroyed") for r in left), left


@pytest.mark.skipif(
    not REAL_ENV.get("RBOTTLE_LIVE_EC2"),
    reason="live EC2 test: opt in with RBOTTLE_LIVE_EC2=1 and AWS credentials (creates a VM)",
)
def test_a_real_ec2_session_runs_and_leaves_nothing(
    write_manifest: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, agent_image: str
) -> None:
    session_leaves_nothing(Ec2Host(provider="ec2"), write_manifest, monkeypatch)


@pytest.mark.skipif(
    not (REAL_ENV.get("RBOTTLE_LIVE_FLY") and REAL_ENV.get("FLY_API_TOKEN")),
    reason="live Fly test: opt in with RBOTTLE_LIVE_FLY=<app> and FLY_API_TOKEN (creates a VM)",
)
def test_a_real_fly_session_runs_and_leaves_nothing(
    write_manifest: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, agent_image: str
) -> None:
    entry = FlyHost(provider="fly", app=REAL_ENV.get("RBOTTLE_LIVE_FLY", ""))
    session_leaves_nothing(entry, write_manifest, monkeypatch)
