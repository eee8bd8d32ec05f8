"""The Fly Machine image's recipe: Debian 13's engine and gVisor, registered at boot by
provisioning's own script (the build and the boot: tests/integration/test_fly_image.py)."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
FLY = REPO / "remotebottle" / "resources" / "fly"


def test_the_image_is_debian_13_with_its_engine_and_runsc() -> None:
    dockerfile = (FLY / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=debian:trixie-slim" in dockerfile
    assert "apt-get install -y --no-install-recommends docker.io \\" in dockerfile
    assert "docker-cli runsc" in dockerfile
    assert 'dpkg --compare-versions "$upstream" lt 25.0.5' in dockerfile
    assert "download.docker.com" not in dockerfile
    assert "COPY install-docker.sh /usr/local/sbin/rbottle-install-docker" in dockerfile


def test_its_install_script_is_provisionings_own() -> None:
    link = FLY / "install-docker.sh"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "provisioning" / "install-docker.sh").resolve()
    packaged = resources.files("remotebottle").joinpath("resources/fly/install-docker.sh")
    assert packaged.read_text() == (REPO / "provisioning" / "install-docker.sh").read_text()


def test_the_init_starts_the_engine_through_that_script() -> None:
    init = (FLY / "rbottle-fly-init").read_text()
    assert "/usr/local/sbin/rbottle-install-docker rbottle" in init
    assert "dockerd_pid=$(cat /var/run/docker.pid)" in init
    assert "dockerd >" not in init  # no second dockerd of its own
    result = subprocess.run(["sh", "-n", str(FLY / "rbottle-fly-init")], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
