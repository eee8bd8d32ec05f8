"""Against the real engine: facts, seeded images, doctor, and the dry run's runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from remotebottle import pins
from remotebottle.backend.docker.engine import engine_facts, missing_images
from remotebottle.backend.docker.images import ensure_pulled
from remotebottle.doctor import run_checks
from remotebottle.errors import EngineError
from tests.conftest import FULL_MANIFEST, SECRET
from tests.integration.conftest import require, require_pipelock

pytestmark = pytest.mark.integration

SEEDED = [pins.base_image(), pins.gitleaks_image()]


def test_engine_facts(docker_client: docker.DockerClient) -> None:
    facts = engine_facts(docker_client)
    assert facts.version[0].isdigit()
    assert "runc" in facts.runtimes


def test_missing_images_finds_absent_and_present(docker_client: docker.DockerClient) -> None:
    absent = "remotebottle-test/never-built:nope"
    present = [ref for ref in SEEDED if not missing_images(docker_client, [ref])]
    if not present:
        require("no seeded image on the engine; run `make setup`")
    assert missing_images(docker_client, [absent, *present]) == [absent]


@pytest.mark.parametrize("ref", SEEDED)
def test_pinned_images_are_on_the_engine(docker_client: docker.DockerClient, ref: str) -> None:
    if missing_images(docker_client, [ref]):
        require(f"{ref} is not seeded; run `make setup`")
    assert docker_client.images.get(ref).id


def run_image(client: docker.DockerClient, ref: str, *command: str) -> str:
    if missing_images(client, [ref]):
        require(f"{ref} is not seeded; run `make setup`")
    output = client.containers.run(
        ref, list(command), remove=True, network_mode="none", stdout=True, stderr=True
    )
    return output.decode() if isinstance(output, bytes) else str(output)


def test_base_image_is_debian_bookworm(docker_client: docker.DockerClient) -> None:
    out = run_image(docker_client, pins.base_image(), "cat", "/etc/os-release")
    assert "VERSION_CODENAME=bookworm" in out


def test_gitleaks_image_is_the_pinned_version(docker_client: docker.DockerClient) -> None:
    out = run_image(docker_client, pins.gitleaks_image(), "version")
    assert pins.pin("GITLEAKS_GO_VERSION").lstrip("v") in out


def test_pipelock_image_is_the_pinned_version(docker_client: docker.DockerClient) -> None:
    require_pipelock(docker_client)
    out = run_image(docker_client, pins.pipelock_image(), "version")
    assert pins.pipelock_image().rsplit(":", 1)[1] in out


def test_doctor_against_the_real_engine(docker_client: docker.DockerClient) -> None:
    checks = {c.name: c for c in run_checks()}
    assert checks["engine"].status == "ok"
    assert checks["engine"].detail.startswith("Docker ")
    assert checks["gvisor"].status in ("ok", "warn")
    for ref in SEEDED:
        if not missing_images(docker_client, [ref]):
            assert checks[f"image {ref}"].status == "ok"


def test_dry_run_asks_the_local_engine_for_its_runtime(
    docker_client: docker.DockerClient, write_manifest: Callable[..., Path]
) -> None:
    path = write_manifest(FULL_MANIFEST)
    facts = engine_facts(docker_client)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "remotebottle",
            "start",
            "implementer",
            "--dry-run",
            "--format=json",
        ],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_env(), "RB_TEST_TOKEN": SECRET},
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["runtime"] == ("runsc" if facts.has_gvisor else "runc")
    assert SECRET not in result.stdout and SECRET not in result.stderr
    if facts.leaks_internal_dns:
        assert any("CVE-2024-29018" in w for w in plan["warnings"])


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "RB_TEST_TOKEN"}


def test_an_image_that_cannot_be_pulled_is_one_line_saying_why(
    docker_client: docker.DockerClient,
) -> None:
    # A registry on a loopback port nobody serves: the engine's reason, not the request URL.
    with pytest.raises(EngineError) as err:
        ensure_pulled(docker_client, "127.0.0.1:9/remotebottle-test/absent:1", lambda _m: None)
    message = err.value.message
    assert message.startswith("could not pull 127.0.0.1:9/remotebottle-test/absent:1: ")
    assert "connection refused" in message and "http+docker://" not in message
    assert "docker save" in err.value.hint
