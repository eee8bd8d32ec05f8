"""Provisioning scripts, cloud-init user-data and `ensure_docker`'s decisions (no host)."""

from __future__ import annotations

import re
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
        "SAFE_ENGINE=25.0.5",
        "CVE-2024-29018",
        "docker-cli",
        "apt-get install runsc",
        "runsc install --clobber=false",
        "--network=host",
    ):
        assert step in text, step


def _functions(text: str, *names: str) -> str:
    """The shell function definitions `names` from a script (top level, `name() {` to `}`)."""
    found = []
    for name in names:
        match = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.DOTALL | re.MULTILINE)
        assert match, name
        found.append(match.group(0))
    return "\n".join(found)


@pytest.mark.parametrize(
    ("version", "too_old"),
    [
        ("20.10.24+dfsg1", True),  # Debian 12's docker.io
        ("20.10.24+dfsg1-1+deb12u1+b6", True),
        ("24.0.7-0ubuntu4", True),  # Ubuntu 24.04 at release
        ("25.0.4", True),
        ("25.0.5", False),
        ("25.0.5+dfsg1", False),
        ("26.1.5+dfsg1-9+deb13u1+b1", False),  # Debian 13's docker.io
        ("5:27.3.1-1~debian.12~bookworm", False),  # Docker's own docker-ce, with an epoch
        ("28.0.0~rc1", False),
    ],
)
def test_engine_version_threshold(version: str, too_old: bool) -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("no dpkg on this machine")
    text = provisioning_script("install-docker.sh")
    script = "SAFE_ENGINE=25.0.5\n" + _functions(text, "engine_too_old") + '\nengine_too_old "$1"\n'
    result = subprocess.run(["sh", "-c", script, "sh", version], capture_output=True)
    assert result.returncode == (0 if too_old else 1), result.stderr.decode()


@pytest.mark.parametrize(
    ("version_line", "release"),
    [
        ("runsc version 0.0~20240729.0", "20240729"),
        ("runsc version release-20240807.0", "20240807"),
        ("runsc version 0.0~20221219.0", "20221219"),
        ("runsc version unknown", ""),
    ],
)
def test_runsc_release_is_read_from_its_version(version_line: str, release: str) -> None:
    text = provisioning_script("install-docker.sh")
    script = (
        f"runsc() {{ echo '{version_line}'; echo 'spec: 1.1.0'; }}\n"
        + _functions(text, "runsc_release")
        + "\nrunsc_release\n"
    )
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == release


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
    document = render_user_data()
    commands = [" ".join(map(str, c)) for c in document["runcmd"]]
    install = commands.index("/usr/local/sbin/rbottle-install-docker")
    assert commands.index("systemctl enable --now docker") > install
    assert "usermod -aG docker admin" in commands
    assert commands[-1] == "docker info"
    arm = commands.index("systemctl enable --now rbottle-deadman.timer")
    assert arm < install, "the dead-man timer must be armed before apt runs"
    files = {f["path"]: f for f in document["write_files"]}
    script = files["/usr/local/sbin/rbottle-install-docker"]
    assert script["permissions"] == "0755"
    text = script["content"]
    assert text.startswith("#!/bin/sh\n")
    for step in (
        "set -eu",
        "apt_get update",
        "SAFE_ENGINE=25.0.5",
        "CVE-2024-29018",
        "docker.io ca-certificates apparmor",
        "docker-cli",
        "apt_get install -y --no-install-recommends runsc",
        "runsc install --clobber=false",
        "--network=host",
        "/run/rbottle/engine-problem",
        "systemctl reload docker",
    ):
        assert step in text, step


def test_user_data_script_syntax(tmp_path: Path) -> None:
    files = {f["path"]: f["content"] for f in render_user_data()["write_files"]}
    for path in ("/usr/local/sbin/rbottle-install-docker", "/usr/local/sbin/rbottle-deadman"):
        script = tmp_path / Path(path).name
        script.write_text(files[path])
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True)
        assert result.returncode == 0, (path, result.stderr.decode())


def test_user_data_and_install_script_agree() -> None:
    """The same threshold and the same runsc decision in both places."""
    script = provisioning_script("install-docker.sh")
    user_data = USER_DATA.read_text()
    for shared in ("25.0.5", "RUNSC_NETNS_FIX=20240807", "/proc/sys/net/core/rmem_default"):
        assert shared in script, shared
        assert shared in user_data, shared


def test_user_data_has_no_stray_placeholders() -> None:
    """The renderer refuses any `{{` left after filling in its two placeholders."""
    text = USER_DATA.read_text()
    text = text.replace("{{ttl_minutes}}", "30").replace("{{login_user}}", "admin")
    assert "{{" not in text


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

    def stream(self, cmd: str, **_: Any) -> int:
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
