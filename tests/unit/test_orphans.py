"""Which cloud resources `rbottle cleanup --orphans` sweeps."""

from __future__ import annotations

import datetime

import pytest

from remotebottle.hosts.provider import OwnedResource
from remotebottle.ops.orphans import SessionState, orphans

pytestmark = pytest.mark.unit


def test_expired_and_ended_sessions_are_orphans_live_ones_are_not() -> None:
    now = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)
    hour = datetime.timedelta(hours=1)

    def owned(
        kind: str, identity: str, expires: datetime.datetime, state: str = ""
    ) -> OwnedResource:
        created = now - hour
        return OwnedResource("ec2", kind, f"{kind}-{identity}", identity, created, expires, state)

    sessions = {
        "live-aaaaa": SessionState(known=True, ended=False),
        "done-bbbbb": SessionState(known=True, ended=True),
    }
    found = orphans(
        [
            owned("instance", "live-aaaaa", now - hour, "running"),  # expired, but ours and live
            owned("key-pair", "live-aaaaa", now - hour),
            owned("instance", "done-bbbbb", now + hour, "running"),  # its session ended
            owned("instance", "lost-ccccc", now - hour, "running"),  # unknown here, expired
            owned("instance", "other-ddddd", now + hour, "running"),  # unknown, not expired
            owned("security-group", "gone-eeeee", now + hour),  # its VM is gone
        ],
        now,
        session=lambda identity: sessions.get(identity, SessionState(known=False, ended=False)),
    )
    assert [r.resource_id for r in found] == [
        "instance-done-bbbbb",
        "instance-lost-ccccc",
        "security-group-gone-eeeee",
    ]
