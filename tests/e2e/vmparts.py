"""Fake-VM parts shared by the e2e tests of remote bottles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.streams import exec_with_stdin
from remotebottle.hosts.resolve import HostTarget
from tests.integration.fakevm import FakeVm


def vm_owned(vm: FakeVm) -> list[str]:
    """Everything labelled as ours on the VM's engine (asked inside the VM, not over SSH)."""
    flt = f"label={L.OWNER}=1"
    _, out = vm.sh(
        f"docker ps -aq --filter {flt}; docker network ls -q --filter {flt};"
        f" docker volume ls -q --filter {flt}"
    )
    return out.split()


@pytest.fixture
def vm(fakevm: FakeVm, isolated_home: Path) -> Iterator[FakeVm]:
    """The shared fake VM, trusted in this test's ~/.ssh/known_hosts; checked clean after."""
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "known_hosts").write_text(fakevm.known_hosts.read_text())
    yield fakevm
    deadline = time.monotonic() + 10
    while (left := vm_owned(fakevm)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left on the VM: {left}"


def grep_vm_disk(vm: FakeVm, needle: str) -> str:
    """Files on the VM's disks holding `needle` (memory filesystems and /proc left out).

    The needle goes in on stdin, so the search itself does not put it on a command line.
    """
    script = r"""
    skip=$(awk '$3 ~ /^(tmpfs|proc|sysfs|devtmpfs|devpts|mqueue|cgroup2?|securityfs)$/ \
        {printf "-path %s -prune -o ", $2}' /proc/mounts)
    needle=$(cat)
    find / $skip -type f -size -64M -print0 2>/dev/null \
        | xargs -0 grep -lF -e "$needle" 2>/dev/null || true
    """
    code, out, err = exec_with_stdin(
        vm.container.client, str(vm.container.id), ["sh", "-c", script], needle.encode()
    )
    assert code == 0, err
    return out.decode(errors="replace").strip()


def target(vm: FakeVm) -> HostTarget:
    return HostTarget("vm", vm.ssh_host())
