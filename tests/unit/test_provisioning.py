"""Provisioning scripts, cloud-init user-data and `ensure_docker`'s decisions (no host)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from remotebottle.errors import ProvisionError
from remotebottle.hosts.provision import engine_state, ensure_docker, provisioning_script

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["install-docker.sh", "check-docker.sh"]
USER_DATA = REPO / "cloud-init" / "user-data.yaml"


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_script_syntax(name: str, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} on this machine")
    argv = [shell, "--posix", "-n"] if shell == "bash" else [shell, "-n"]
    result = subprocess.run([*argv, str(REPO / "provisioning" / name)], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_package_data(name: str) -> None:
    assert provisioning_script(name) == (REPO / "provisioning" / name).read_text()


def test_install_script_shape() -> None:
    text = provisioning_script("install-docker.sh")
    assert text.startswith("#!/bin/sh\n")
    assert "set -eu" in text.splitlines()
    for step in (
        "apt-get install docker.io",
        "systemctl enable --now docker",
        "[ -d /run/systemd/system ]",
        "setsid dockerd",
        "/var/log/rbottle-dockerd.log",
        "usermod -aG docker",
        "docker -H",
    ):
        assert step in text, step


def render_user_data(ttl_minutes: int = 30, login_user: str = "admin") -> dict[str, Any]:
    text = USER_DATA.read_text()
    rendered = text.replace("{{ttl_minutes}}", str(ttl_minutes))
    rendered = rendered.replace("{{login_user}}", login_user)
    document: dict[str, Any] = yaml.safe_load(rendered)
    return document


def test_user_data_is_cloud_config_with_documented_placeholders() -> None:
    text = USER_DATA.read_text()
    assert text.startswith("#cloud-config\n")
    header = text.split("\n\n", 1)[0]
    assert "{{ttl_minutes}}" in header
    assert "{{login_user}}" in header
    assert isinstance(yaml.safe_load(text), dict)  # parses before rendering too


def test_user_data_installs_and_starts_docker() -> None:
    commands = [" ".join(map(str, c)) for c in render_user_data()["runcmd"]]
    install = next(i for i, c in enumerate(commands) if "install" in c and "docker.io" in c)
    assert "systemctl enable --now docker" in commands
    assert "usermod -aG docker admin" in commands
    assert commands[-1] == "docker info"
    arm = commands.index("systemctl enable --now rbottle-deadman.timer")
    assert arm < install, "the dead-man timer must be armed before apt runs"


def test_user_data_dead_man_timer() -> None:
    files = {f["path"]: f for f in render_user_data(ttl_minutes=45)["write_files"]}
    timer = files["/etc/systemd/system/rbottle-deadman.timer"]["content"]
    service = files["/etc/systemd/system/rbottle-deadman.service"]["content"]
    check = files["/usr/local/sbin/rbottle-deadman"]
    assert "OnUnitActiveSec=" in timer
    assert "WantedBy=timers.target" in timer
    assert "ExecStart=/usr/local/sbin/rbottle-deadman" in service
    assert check["permissions"] == "0755"
    assert "ttl_seconds=$(( 45 * 60 ))" in check["content"]
    assert "/run/rbottle/heartbeat" in check["content"]
    assert "systemctl poweroff" in check["content"]
    tmpfiles = files["/etc/tmpfiles.d/rbottle.conf"]["content"]
    assert "f /run/rbottle/heartbeat 0644 admin admin -" in tmpfiles


# -- ensure_docker's decisions, against a host that only answers the check ----------------


@dataclass
class Target:
    name: str = "vm1"
    user: str = "admin"
    label: str = "vm1 (192.0.2.1:22)"
    connect_timeout: float = 5.0


@dataclass
class CheckOnlyHost:
    """Answers `check-docker.sh` with a fixed line; anything else fails the test."""

    answer: bytes
    target: Target = field(default_factory=Target)
    commands: list[str] = field(default_factory=list)

    def run(
        self, cmd: str, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[int, bytes, bytes]:
        assert input == provisioning_script("check-docker.sh").encode()
        self.commands.append(cmd)
        return (0 if self.answer.startswith(b"rbottle-check: ready") else 1), self.answer, b""

    @property
    def transport(self) -> Any:
        raise AssertionError("nothing but the check may run")


@dataclass
class Consent:
    answer: bool
    asked: list[str] = field(default_factory=list)

    def __call__(self, question: str) -> bool:
        self.asked.append(question)
        return self.answer


def test_ready_engine_needs_nothing() -> None:
    host = CheckOnlyHost(b"rbottle-check: ready 20.10.24+dfsg1\n")
    consent = Consent(answer=True)
    result = ensure_docker(
        host,  # type: ignore[arg-type]
        docker_socket="/var/run/docker.sock",
        consent=consent,
        progress=lambda _: None,
    )
    assert result is False
    assert consent.asked == []
    assert host.commands == ["sh -s -- /var/run/docker.sock"]


@pytest.mark.parametrize(
    ("state", "question"),
    [
        (
            "missing",
            "Docker Engine is not running on vm1:"
            " install and start it (apt-get install docker.io)?",
        ),
        ("not-running", "Docker Engine is installed on vm1 but not running: start it?"),
        ("no-access", "admin may not use Docker Engine on vm1: add admin to the docker group?"),
    ],
)
def test_refused_consent_changes_nothing(state: str, question: str) -> None:
    host = CheckOnlyHost(f"rbottle-check: {state}\n".encode())
    consent = Consent(answer=False)
    with pytest.raises(ProvisionError) as caught:
        ensure_docker(
            host,  # type: ignore[arg-type]
            docker_socket="/run/user/1000/my docker.sock",
            consent=consent,
            progress=lambda _: None,
        )
    assert consent.asked == [question]
    assert "not allowed" in caught.value.message
    assert "--yes" in caught.value.hint
    assert host.commands == ["sh -s -- '/run/user/1000/my docker.sock'"]


def test_check_without_a_state_line_is_an_error() -> None:
    host = CheckOnlyHost(b"fish: Unknown command: sh\n")
    with pytest.raises(ProvisionError, match="cannot check Docker Engine on vm1: fish"):
        engine_state(host, "/var/run/docker.sock")  # type: ignore[arg-type]
