"""A moto server on loopback standing in for EC2, seeded with Debian 13 AMIs (and a newer
Debian 12 one, which the lookup must not pick).

moto loads the AMIs named by `MOTO_AMIS_PATH` at start (and again after each reset), so
the server answers Debian's owner id (136693071363) with the images below: two amd64
generations, to check that the newest wins, and one arm64 for Graviton types.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEBIAN_OWNER = "136693071363"
AMD64_NEW = "ami-0d3b12a0000000new"
AMD64_OLD = "ami-0d3b12a0000000old"
ARM64_NEW = "ami-0d3b12a00000arm64"
BOOKWORM = "ami-0d3b12a000000012"


def _ami(ami_id: str, name: str, arch: str, created: str) -> dict[str, object]:
    release = "Debian 12 (bookworm)" if name.startswith("debian-12-") else "Debian 13 (trixie)"
    return {
        "ami_id": ami_id,
        "name": name,
        "description": release,
        "owner_id": DEBIAN_OWNER,
        "public": True,
        "virtualization_type": "hvm",
        "architecture": arch,
        "state": "available",
        "image_type": "machine",
        "hypervisor": "xen",
        "root_device_name": "/dev/xvda",
        "root_device_type": "ebs",
        "creation_date": created,
    }


DEBIAN_AMIS = [
    _ami(AMD64_OLD, "debian-13-amd64-20260101-1000", "x86_64", "2026-01-01T10:00:00.000Z"),
    _ami(AMD64_NEW, "debian-13-amd64-20261101-1000", "x86_64", "2026-11-01T10:00:00.000Z"),
    _ami(ARM64_NEW, "debian-13-arm64-20261101-1000", "arm64", "2026-11-01T10:00:00.000Z"),
    _ami(BOOKWORM, "debian-12-amd64-20261201-1000", "x86_64", "2026-12-01T10:00:00.000Z"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """`python -m moto.server` on 127.0.0.1, started and stopped by the fixture.

    Args:
        workdir: where the AMI list and the server log are written.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers.

        Raises:
            RuntimeError: it exited or did not answer in time (the message has its log).
        """
        amis = self.workdir / "amis.json"
        amis.write_text(json.dumps(DEBIAN_AMIS))
        env = {
            "PATH": "/usr/bin:/bin",
            "MOTO_AMIS_PATH": str(amis),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).close()  # noqa: S310
                return
            time.sleep(0.2)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto server did not start on {self.url}: {tail}")

    def reset(self) -> None:
        """Forget every resource (the AMIs come back)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
