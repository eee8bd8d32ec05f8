"""`--host` resolution: manifest entries, ssh:// URLs, ssh-config aliases, built-ins."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from remotebottle import manifest, state
from remotebottle.errors import HostError
from remotebottle.hosts.engine import ssh_entry
from remotebottle.hosts.provider import Provider
from remotebottle.hosts.registry import DEFAULT
from remotebottle.hosts.resolve import (
    HostEntry,
    HostTarget,
    recorded_host,
    resolve_host,
    ssh_endpoint,
)
from remotebottle.manifest import Ec2Host
from remotebottle.ops import attach as session
from remotebottle.transport.endpoint import SshEndpoint
from tests.conftest import FULL_MANIFEST

pytestmark = pytest.mark.unit

LOADED = manifest.Manifest(
    hosts=dict(manifest.parse(json.dumps(FULL_MANIFEST)).hosts),
)


def test_no_host_is_the_local_engine() -> None:
    target = resolve_host(None, LOADED)
    assert (target.name, target.provider, target.is_local) == ("local", "local", True)


def test_manifest_entry_wins() -> None:
    target = resolve_host("vm1", LOADED)
    assert target.provider == "ssh"
    assert target.entry.address == "vm1.example.test"  # type: ignore[union-attr]


def test_ssh_url() -> None:
    entry = resolve_host("ssh://deploy@10.0.0.5:2222", LOADED).entry
    assert (entry.address, entry.user, entry.port) == ("10.0.0.5", "deploy", 2222)  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["ssh://", "ssh://u:pw@h", "ssh://h/path", "ssh://h:99999"])
def test_bad_ssh_urls(bad: str) -> None:
    with pytest.raises(HostError, match="not a valid ssh:// URL"):
        resolve_host(bad, LOADED)


def test_ssh_config_alias() -> None:
    target = resolve_host("buildbox.lan", LOADED)
    assert target.provider == "ssh" and target.entry.address == "buildbox.lan"  # type: ignore[union-attr]


def test_builtin_ec2_and_fly() -> None:
    assert resolve_host("ec2", LOADED).provider == "ec2"
    with pytest.raises(HostError, match="needs a Fly app"):
        resolve_host("fly", LOADED)


def test_garbage_is_refused() -> None:
    with pytest.raises(HostError, match="is not a host"):
        resolve_host("not a host!", LOADED)


def test_a_bottle_finds_its_host_in_the_manifest_it_was_started_from(
    write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    project = write_manifest(FULL_MANIFEST).parent
    elsewhere = write_manifest({"hosts": {"vm2": {"provider": "ssh", "address": "h"}}}, tmp_path)
    started = {"identity": "plain-ab12c", "agent": "plain", "host": "vm1", "started_at": "now"}
    from_project = state.Metadata(**started, cwd=str(project))
    assert "vm1" in session.manifest_of(from_project).hosts
    explicit = state.Metadata(**started, cwd=str(project), manifest=str(elsewhere))
    assert set(session.manifest_of(explicit).hosts) == {"vm2"}
    assert session.manifest_of(state.Metadata(**started)).hosts == {}


def test_an_ssh_entry_becomes_an_endpoint_with_every_field_transport_uses() -> None:
    entry = manifest.SshHost(
        provider="ssh",
        address="vm1.example.test",
        user="admin",
        port=2200,
        identity_file="~/.ssh/vm1",
        connect_timeout=7.5,
    )
    endpoint = ssh_endpoint(entry)
    assert isinstance(endpoint, SshEndpoint)
    for f in dataclasses.fields(SshEndpoint):
        assert getattr(endpoint, f.name) == getattr(entry, f.name), f.name
    assert ssh_entry(resolve_host("vm1", LOADED)) == SshEndpoint(
        address="vm1.example.test", user="admin", port=2200
    )


def test_a_cloud_host_has_no_standing_endpoint() -> None:
    with pytest.raises(HostError, match="makes a new VM for each session"):
        ssh_entry(resolve_host("ec2", LOADED))


def test_the_registry_decides_each_hosts_kind_once_for_all_callers() -> None:
    kinds = {name: resolve_host(name, LOADED) for name in (None, "vm1", "ec2")}
    assert [(h.kind, h.is_local, h.is_cloud) for h in kinds.values()] == [
        ("local", True, False),
        ("ssh", False, False),
        ("cloud", False, True),
    ]
    ec2 = kinds["ec2"]
    assert ec2.per_session and not ec2.reuse and ec2.ttl_minutes == 15
    with pytest.raises(HostError, match="not a cloud host"):
        kinds["vm1"].cloud_provider()
    kept = HostTarget("kept", Ec2Host(provider="ec2", reuse=True))
    assert kept.is_cloud and kept.reuse and not kept.per_session


def test_a_registry_passed_in_makes_a_clouds_vms() -> None:
    made: list[str] = []

    def factory(entry: HostEntry) -> Provider:
        made.append(entry.provider)
        return cast(Provider, object())

    registry = DEFAULT.with_cloud("ec2", factory)
    host = resolve_host("ec2", LOADED, registry)
    host.cloud_provider()
    assert made == ["ec2"]
    assert resolve_host("ec2", LOADED).registry is DEFAULT, "the default is untouched"


def test_a_session_reopens_the_host_it_recorded_not_todays_manifest_entry(
    write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    project = write_manifest({"hosts": {"vm1": {"provider": "ssh", "address": "new.lan"}}}).parent
    recorded = {"provider": "ssh", "address": "old.lan", "user": "deploy", "port": 2222}
    meta = state.Metadata(
        identity="w-abcde",
        agent="w",
        host="vm1",
        started_at="2026-12-03T10:00:00+00:00",
        cwd=str(project),
        host_entry=recorded,
        phase="detached",
    )
    state.write_metadata(meta)
    host = session.host_of("w-abcde")
    assert (host.name, host.kind, ssh_entry(host).address) == ("vm1", "ssh", "old.lan")
    assert ssh_entry(host).port == 2222
    # Older state has no record: the name is looked up in the manifest it was started from.
    state.write_metadata(dataclasses.replace(meta, host_entry=None))
    assert ssh_entry(session.host_of("w-abcde")).address == "new.lan"


def test_an_unreadable_recorded_host_is_a_clean_error() -> None:
    with pytest.raises(HostError, match="the host recorded for vm1 is unreadable"):
        recorded_host("vm1", {"provider": "ssh"})  # no address
    with pytest.raises(HostError, match="unreadable"):
        recorded_host("vm1", {"provider": "teleport", "address": "x"})
