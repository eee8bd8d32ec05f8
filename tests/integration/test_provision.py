"""Provisioning against real fake VMs: Docker Engine installed over SSH on a bare VM.

One bare VM (Debian 13) is provisioned once (module scope) and reused by the tests that
need Docker on it; another bare VM stays untouched for the refusals; a bare Debian 12 VM,
whose docker.io (20.10) leaks DNS from internal networks, must be refused. The cloud-init
user-data's install script runs on bare VMs too, and its dead-man check in a throwaway
container.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import yaml

from remotebottle.backend.docker.engine import SAFE_ENGINE_VERSION, version_tuple
from remotebottle.errors import ProvisionError
from remotebottle.hosts.engine import open_engine
from remotebottle.hosts.provision import engine_state, ensure_docker, provisioning_script
from remotebottle.hosts.resolve import HostTarget
from remotebottle.transport.docker_tunnel import DockerTunnel
from remotebottle.transport.ssh import SshConnection
from tests.integration.fakevm import (
    BASE_IMAGE,
    FAKEVM_BARE_IMAGE,
    FAKEVM_OLD_BARE_IMAGE,
    TEST_LABEL,
    FakeVm,
    fakevm,
    load_image,
    skip_unless_image,
    start_fakevm,
)

__all__ = ["fakevm"]

pytestmark = pytest.mark.integration

SOCKET = "/var/run/docker.sock"
INSTALL_QUESTION = (
    "Docker Engine is not running on fakevm: install and start it (apt-get install docker.io)?"
)
StartVm = Callable[[str], contextlib.AbstractContextManager[FakeVm]]
USER_DATA = Path(__file__).resolve().parents[2] / "cloud-init" / "user-data.yaml"
# Settings a user had in daemon.json before rbottle came: they must survive.
USER_DAEMON_JSON = '{"log-level": "info", "max-concurrent-downloads": 2}\n'
TOO_OLD = "is too old: Docker Engine before 25.0.5 lets containers on internal networks"


def assert_safe_engine(version: str) -> None:
    """Docker Engine 25.0.5 or newer (CVE-2024-29018 fixed)."""
    assert version_tuple(version) >= SAFE_ENGINE_VERSION, version


def engine_in(line: str) -> str:
    """The version in "...Docker Engine 26.1.5+dfsg1 is running on ..."."""
    return line.split("Docker Engine ", 1)[1].split()[0]


@dataclass
class Answers:
    """Records what ensure_docker asked and reported; says yes unless told otherwise."""

    consent: bool = True
    questions: list[str] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    progress_times: list[float] = field(default_factory=list)

    def ensure(self, conn: SshConnection) -> bool:
        return ensure_docker(conn, docker_socket=SOCKET, consent=self.ask, progress=self.report)

    def report(self, line: str) -> None:
        self.progress.append(line)
        self.progress_times.append(time.monotonic())

    def ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.consent


@dataclass
class Provisioned:
    vm: FakeVm
    changed: bool
    answers: Answers


@pytest.fixture(scope="module")
def bare_vms(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> StartVm:
    """Starts bare VMs (sshd only, no Docker), each in a fresh work directory."""
    skip_unless_image(docker_client, FAKEVM_BARE_IMAGE)

    def start(name: str) -> contextlib.AbstractContextManager[FakeVm]:
        workdir = tmp_path_factory.mktemp(name)
        return start_fakevm(docker_client, workdir, image=FAKEVM_BARE_IMAGE)

    return start


@pytest.fixture(scope="module")
def provisioned(bare_vms: StartVm) -> Iterator[Provisioned]:
    """A bare VM (with a daemon.json of its user's) on which ensure_docker ran once,
    saying yes."""
    with bare_vms("provisioned") as vm:
        code, out = vm.sh(
            f"mkdir -p /etc/docker && printf '%s' '{USER_DAEMON_JSON}' >/etc/docker/daemon.json",
            user="root",
        )
        assert code == 0, out
        answers = Answers()
        with vm.connect() as conn:
            changed = answers.ensure(conn)
        yield Provisioned(vm, changed, answers)


@pytest.fixture(scope="module")
def untouched(bare_vms: StartVm) -> Iterator[FakeVm]:
    """A bare VM that must stay without Docker (each test restores what it changes)."""
    with bare_vms("untouched") as vm:
        yield vm


def assert_no_docker(vm: FakeVm, *, provision_log: bool = False) -> None:
    probe = "command -v dockerd || command -v runsc || getent group docker"
    if not provision_log:
        probe += " || ls /var/log/rbottle-provision.log"
    code, out = vm.sh(probe, user="root")
    assert code != 0, f"something was installed: {out}"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.3)


# -- a bare VM, provisioned ----------------------------------------------------------------


def test_installs_and_starts_docker(provisioned: Provisioned) -> None:
    assert provisioned.changed is True
    assert provisioned.answers.questions == [INSTALL_QUESTION]
    said = "\n".join(provisioned.answers.progress)
    assert "fakevm: installing Docker Engine: apt-get install docker.io" in said
    assert "fakevm: starting dockerd (no systemd here" in said
    assert "fakevm: installing gVisor: apt-get install runsc" in said
    assert "fakevm: registering gVisor with Docker Engine: runtime runsc in" in said
    assert "fakevm: adding admin to the docker group" in said
    last = provisioned.answers.progress[-1]
    assert_safe_engine(engine_in(last))
    assert last.endswith(f"is running on {SOCKET} (runtimes: runc runsc)")
    # Streamed as they come, not all at the end: apt takes a while after its line.
    times = provisioned.answers.progress_times
    installing = next(i for i, line in enumerate(said.splitlines()) if "installing" in line)
    assert times[-1] - times[installing] > 1.0
    code, out = provisioned.vm.sh("id -nG admin; test -s /var/log/rbottle-dockerd.log", "root")
    assert code == 0
    assert "docker" in out.split()
    assert "runsc" in provisioned.vm.engine_runtimes()


def test_daemon_json_keeps_the_users_settings(provisioned: Provisioned) -> None:
    code, out = provisioned.vm.sh("cat /etc/docker/daemon.json", "root")
    assert code == 0, out
    config = yaml.safe_load(out)  # JSON is YAML
    assert config["log-level"] == "info"
    assert config["max-concurrent-downloads"] == 2
    assert config["runtimes"]["runsc"]["path"] == "/usr/bin/runsc"
    code, out = provisioned.vm.sh("cat /etc/docker/daemon.json~", "root")
    assert (code, out) == (0, USER_DAEMON_JSON)


def test_after_reconnecting_the_tunnel_reaches_the_engine(
    provisioned: Provisioned, docker_client: docker.DockerClient
) -> None:
    skip_unless_image(docker_client, BASE_IMAGE)
    vm = provisioned.vm
    with vm.connect() as conn:
        status, out, err = conn.run("docker info --format '{{.ServerVersion}}'", timeout=30)
        assert status == 0, err.decode()
        assert_safe_engine(out.decode().strip())
        with DockerTunnel(conn, SOCKET, name="fakevm-provisioned") as tunnel:
            client = tunnel.client(timeout=60)
            try:
                assert client.ping()
                load_image(docker_client, vm, BASE_IMAGE)
                output = client.containers.run(
                    BASE_IMAGE, ["echo", "bottled"], remove=True, network_mode="none"
                )
                assert output == b"bottled\n"
                # On a network, under the gVisor runtime provisioning registered.
                network = client.networks.create("rbt-gvisor-check", internal=True)
                try:
                    output = client.containers.run(
                        BASE_IMAGE,
                        ["sh", "-c", "dmesg | head -n 1"],
                        runtime="runsc",
                        network=network.name,
                        remove=True,
                    )
                finally:
                    network.remove()
                assert b"gVisor" in output
            finally:
                client.close()


def test_second_run_changes_nothing_and_asks_nothing(provisioned: Provisioned) -> None:
    answers = Answers(consent=False)
    with provisioned.vm.connect() as conn:
        assert answers.ensure(conn) is False
    assert answers.questions == []
    assert answers.progress == []


def test_install_script_run_again_does_nothing(provisioned: Provisioned) -> None:
    with provisioned.vm.connect() as conn:
        status, out, _ = conn.run(
            f"sudo -n sh -s -- admin {SOCKET}",
            input=provisioning_script("install-docker.sh").encode(),
            timeout=120,
        )
    lines = out.decode().splitlines()
    assert status == 0, lines
    assert lines[:2] == [
        f"rbottle-provision: checking Docker Engine on {SOCKET}",
        f"rbottle-provision: Docker Engine answers on {SOCKET}",
    ]
    assert len(lines) == 3
    assert lines[2].startswith("rbottle-provision: Docker Engine ")
    assert_safe_engine(engine_in(lines[2]))
    # daemon.json was not written again (runsc is registered already).
    code, kept = provisioned.vm.sh("cat /etc/docker/daemon.json~", "root")
    assert (code, kept) == (0, USER_DAEMON_JSON)


def test_stopped_engine_is_started_again(provisioned: Provisioned) -> None:
    vm = provisioned.vm
    code, out = vm.sh("kill $(cat /var/run/docker.pid)", user="root")
    assert code == 0, out
    wait_until(lambda: vm.sh("test -e /var/run/docker.pid", "root")[0] != 0, "dockerd to stop")
    answers = Answers()
    with vm.connect() as conn:
        assert engine_state(conn, SOCKET)[0] == "not-running"
        assert answers.ensure(conn) is True
        assert engine_state(conn, SOCKET)[0] == "ready"
    assert answers.questions == ["Docker Engine is installed on fakevm but not running: start it?"]
    assert not any("installing" in line for line in answers.progress)
    assert any("starting dockerd" in line for line in answers.progress)


def test_user_outside_the_docker_group_is_added_and_the_engine_opens(
    provisioned: Provisioned, isolated_home: Path
) -> None:
    """Through the real caller: consent, group added, log in again, tunnel, ping."""
    vm = provisioned.vm
    code, out = vm.sh("gpasswd -d admin docker", user="root")
    assert code == 0, out
    with vm.connect() as conn:
        assert engine_state(conn, SOCKET)[0] == "no-access"
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "known_hosts").write_text(vm.known_hosts.read_text())
    answers = Answers()
    target = HostTarget(name="fakevm", entry=vm.ssh_host())
    with open_engine(target, progress=answers.progress.append, consent=answers.ask) as engine:
        assert_safe_engine(engine.client.info()["ServerVersion"])
    assert answers.questions == [
        "admin may not use Docker Engine on fakevm: add admin to the docker group?"
    ]
    assert answers.progress == [
        "connecting to fakevm over SSH",
        "setting up Docker Engine on fakevm (sudo -n)",
        f"fakevm: checking Docker Engine on {SOCKET}",
        f"fakevm: Docker Engine answers on {SOCKET}",
        "fakevm: adding admin to the docker group",
        answers.progress[5],
        "connecting to fakevm over SSH",
    ]
    assert answers.progress[5].startswith("fakevm: Docker Engine ")
    assert_safe_engine(engine_in(answers.progress[5]))


# -- a bare VM that stays bare ------------------------------------------------------------


def test_refused_consent_installs_nothing(untouched: FakeVm) -> None:
    answers = Answers(consent=False)
    with untouched.connect() as conn:
        assert engine_state(conn, SOCKET) == ("missing", "")
        with pytest.raises(ProvisionError, match="not allowed to set it up"):
            answers.ensure(conn)
    assert answers.questions == [INSTALL_QUESTION]
    assert answers.progress == []
    assert_no_docker(untouched)


def test_without_passwordless_sudo(untouched: FakeVm) -> None:
    code, out = untouched.sh("mv /etc/sudoers.d/admin /root/sudoers-admin", user="root")
    assert code == 0, out
    try:
        with untouched.connect() as conn, pytest.raises(ProvisionError) as caught:
            Answers().ensure(conn)
    finally:
        untouched.sh("mv /root/sudoers-admin /etc/sudoers.d/admin", user="root")
    assert caught.value.message == (
        "cannot set up Docker Engine on fakevm: admin has no passwordless sudo"
    )
    assert "passwordless sudo" in caught.value.hint
    assert_no_docker(untouched)


def test_host_without_apt_gets_a_clear_error(untouched: FakeVm) -> None:
    code, out = untouched.sh("mv /usr/bin/apt-get /usr/bin/apt-get.hidden", user="root")
    assert code == 0, out
    answers = Answers()
    try:
        with untouched.connect() as conn, pytest.raises(ProvisionError) as caught:
            answers.ensure(conn)
    finally:
        untouched.sh(
            "mv /usr/bin/apt-get.hidden /usr/bin/apt-get; rm -f /var/log/rbottle-provision.log",
            user="root",
        )
    assert caught.value.message == (
        "setting up Docker Engine on fakevm failed: rbottle installs Docker on Debian and"
        " Ubuntu only (no apt-get here); install Docker Engine yourself"
    )
    assert answers.progress == [
        "setting up Docker Engine on fakevm (sudo -n)",
        f"fakevm: checking Docker Engine on {SOCKET}",
    ]
    assert_no_docker(untouched)


def test_installed_engine_older_than_25_0_5_is_refused(untouched: FakeVm) -> None:
    """An old dockerd someone else installed (here: one that says it is 20.10) is neither
    started nor given gVisor."""
    code, out = untouched.sh(
        "printf '#!/bin/sh\\necho \"Docker version 20.10.24+dfsg1, build 297e128\"\\n'"
        " >/usr/local/bin/dockerd && chmod +x /usr/local/bin/dockerd",
        user="root",
    )
    assert code == 0, out
    answers = Answers()
    try:
        with untouched.connect() as conn:
            assert engine_state(conn, SOCKET) == ("not-running", "")
            with pytest.raises(ProvisionError) as caught:
                answers.ensure(conn)
    finally:
        untouched.sh("rm -f /usr/local/bin/dockerd /var/log/rbottle-provision.log", "root")
    assert caught.value.message.startswith(
        "setting up Docker Engine on fakevm failed: Docker Engine 20.10.24+dfsg1 " + TOO_OLD
    )
    assert "(CVE-2024-29018)" in caught.value.message
    assert "Use Debian 13 (trixie) or newer" in caught.value.message
    assert not any("starting" in line for line in answers.progress)
    assert_no_docker(untouched)


# -- Debian 12: its docker.io is too old ----------------------------------------------------


def test_debian_12_docker_io_is_refused_and_nothing_installed(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    skip_unless_image(docker_client, FAKEVM_OLD_BARE_IMAGE)
    with start_fakevm(docker_client, tmp_path, image=FAKEVM_OLD_BARE_IMAGE) as vm:
        answers = Answers()
        with vm.connect() as conn, pytest.raises(ProvisionError) as caught:
            answers.ensure(conn)
        assert caught.value.message.startswith(
            "setting up Docker Engine on fakevm failed: Debian GNU/Linux 12 (bookworm)'s"
            " docker.io 20.10.24"
        )
        assert TOO_OLD in caught.value.message
        assert "(CVE-2024-29018)" in caught.value.message
        assert "docs.docker.com/engine/install" in caught.value.message
        assert answers.questions == [INSTALL_QUESTION]
        assert not any("installing" in line for line in answers.progress)
        assert_no_docker(vm, provision_log=True)


# -- the cloud-init user-data's install script ------------------------------------------------


def user_data_install_script() -> str:
    rendered = USER_DATA.read_text().replace("{{ttl_minutes}}", "30")
    rendered = rendered.replace("{{login_user}}", "admin")
    files = {f["path"]: f["content"] for f in yaml.safe_load(rendered)["write_files"]}
    return str(files["/usr/local/sbin/rbottle-install-docker"])


def run_as_root(vm: FakeVm, script: str, timeout: float = 600) -> tuple[int, str]:
    with vm.connect() as conn:
        status, out, err = conn.run("sudo -n sh -s", input=script.encode(), timeout=timeout)
    return status, (out + err).decode(errors="replace")


def test_user_data_installs_a_safe_engine_and_gvisor(bare_vms: StartVm) -> None:
    with bare_vms("user-data") as vm:
        status, out = run_as_root(vm, user_data_install_script())
        assert status == 0, out[-2000:]
        code, version = vm.sh("dockerd --version", "root")
        assert code == 0, version
        assert_safe_engine(version.split()[2].rstrip(","))
        code, config = vm.sh("cat /etc/docker/daemon.json", "root")
        assert code == 0, config
        assert yaml.safe_load(config)["runtimes"]["runsc"]["path"] == "/usr/bin/runsc"
        assert vm.sh("command -v docker", "root")[0] == 0, "no docker CLI (docker-cli)"
        # Run again: nothing to do, daemon.json untouched.
        status, out = run_as_root(vm, user_data_install_script())
        assert status == 0, out[-2000:]
        assert vm.sh("test -e /etc/docker/daemon.json~", "root")[0] != 0


def test_user_data_refuses_debian_12_docker_io(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    skip_unless_image(docker_client, FAKEVM_OLD_BARE_IMAGE)
    with start_fakevm(docker_client, tmp_path, image=FAKEVM_OLD_BARE_IMAGE) as vm:
        status, out = run_as_root(vm, user_data_install_script())
        assert status == 1, out[-2000:]
        problem = vm.sh("cat /run/rbottle/engine-problem", "root")[1]
        assert problem.startswith("rbottle: Docker Engine 20.10.24")
        assert TOO_OLD in problem
        assert "Use a Debian 13 (trixie) image" in problem
        assert problem.strip() in out
        assert_no_docker(vm)


# -- a VM with Docker already --------------------------------------------------------------


def test_engine_present_needs_nothing(fakevm: FakeVm) -> None:
    answers = Answers(consent=False)
    with fakevm.connect() as conn:
        assert answers.ensure(conn) is False
    assert answers.questions == []
    assert answers.progress == []


def test_fake_vm_runs_what_provisioning_installs(fakevm: FakeVm) -> None:
    """The fake VM the remote tests use has a safe engine and gVisor registered."""
    assert_safe_engine(fakevm.engine_version())
    assert "runsc" in fakevm.engine_runtimes()


# -- the cloud-init dead-man check ---------------------------------------------------------

DEADMAN_DRIVER = r"""
set -eu
mkdir -p /fake /run/rbottle
for tool in systemctl logger; do
    printf '#!/bin/sh\necho "%s $*" >>/tmp/calls\n' "$tool" >/fake/$tool
    chmod +x /fake/$tool
done
printf '%s' "$DEADMAN" >/deadman
export PATH=/fake:$PATH
check() {
    rm -f /tmp/calls
    sh /deadman
    printf '%s: %s\n' "$1" "$(cat /tmp/calls 2>/dev/null | grep -c poweroff || true)"
}
touch /run/rbottle/heartbeat; check fresh
touch -d '2 minutes ago' /run/rbottle/heartbeat; check stale
rm /run/rbottle/heartbeat; check missing
"""


def test_dead_man_check_powers_off_only_without_a_heartbeat(
    docker_client: docker.DockerClient,
) -> None:
    skip_unless_image(docker_client, BASE_IMAGE)
    rendered = USER_DATA.read_text().replace("{{ttl_minutes}}", "1")
    rendered = rendered.replace("{{login_user}}", "admin")
    files = {f["path"]: f["content"] for f in yaml.safe_load(rendered)["write_files"]}
    output = docker_client.containers.run(
        BASE_IMAGE,
        ["sh", "-c", DEADMAN_DRIVER],
        environment={"DEADMAN": files["/usr/local/sbin/rbottle-deadman"]},
        labels={TEST_LABEL: "1"},
        network_mode="none",
        remove=True,
    )
    # The container shares the host's /proc/uptime: past the grace period on any host
    # that has been up for a minute.
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    off_when_missing = "1" if uptime >= 60 else "0"
    assert output.decode().splitlines() == [
        "fresh: 0",
        "stale: 1",
        f"missing: {off_when_missing}",
    ]
