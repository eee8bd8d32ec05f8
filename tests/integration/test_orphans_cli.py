"""`rbottle cleanup --orphans` against moto: what an ended session left is swept, the rest kept."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remotebottle import state
from tests.integration.test_ec2 import REGION, Fake, _live_instances, aws, fake, moto_server

__all__ = ["aws", "fake", "moto_server"]

pytestmark = pytest.mark.integration


def rbottle(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remotebottle", *args],
        cwd=project,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cleanup_orphans_sweeps_ended_sessions_and_spares_live_ones(
    aws: Any, fake: Fake, write_manifest: Callable[..., Path]
) -> None:
    project = write_manifest(
        {"hosts": {"cloud": {"provider": "ec2", "region": REGION, "ttl_minutes": 30}}}
    ).parent
    provider = fake.provider(region=REGION, ttl_minutes=30)
    ended = provider.create("gone-aaaaa", progress=lambda _m: None)
    live = provider.create("live-bbbbb", progress=lambda _m: None)
    for identity, ended_at in (("gone-aaaaa", state.now()), ("live-bbbbb", None)):
        state.write_metadata(
            state.Metadata(identity, "worker", "cloud", state.now(), ended_at=ended_at)
        )

    listed = rbottle(project, "cleanup", "--orphans")
    assert listed.returncode != 0, "without --yes and without a terminal nothing is destroyed"
    assert ended.machine_id in listed.stderr and live.machine_id not in listed.stderr
    assert {i["InstanceId"] for i in _live_instances(aws)} == {ended.machine_id, live.machine_id}

    swept = rbottle(project, "cleanup", "--orphans", "--yes")
    assert swept.returncode == 0, swept.stderr
    assert [i["InstanceId"] for i in _live_instances(aws)] == [live.machine_id]
    names = {k["KeyName"] for k in aws.describe_key_pairs()["KeyPairs"]}
    assert names == {"rbottle-live-bbbbb"}
    groups = {g["GroupName"] for g in aws.describe_security_groups()["SecurityGroups"]}
    assert not any("gone-aaaaa" in g for g in groups)
    provider.destroy(live, progress=lambda _m: None)
