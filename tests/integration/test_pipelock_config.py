"""The egress proxy's generated config, against the pinned pipelock itself.

pipelock 2.3.0 parses its config strictly (unknown keys, at any depth, are errors) and
validates it (the CA key's mode, the TLS CA's type, value ranges). These tests give it the
exact config a bottle gets and check that it loads, and that what it then runs with is
what the config asks for: strict mode, TLS interception, body and header DLP.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from remotebottle import pins
from remotebottle.backend.docker import egress
from tests.integration.conftest import require_pipelock

pytestmark = pytest.mark.integration

ALLOWLIST = ["api.anthropic.com", "pypi.org"]


def config_files(config: dict[str, Any]) -> bytes:
    """A tar for /: the config and a fresh CA at the paths the bottle uses."""
    ca = egress.make_ca("config-test")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data, mode in (
            (egress.CONFIG_PATH, (json.dumps(config) + "\n").encode(), 0o400),
            (egress.CA_CERT_PATH, ca.cert_pem, 0o400),
            (egress.CA_KEY_PATH, ca.key_pem, 0o400),
            (egress.SECRETS_PATH, b"a-granted-secret-value-0123456789\n", 0o400),
        ):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def pipelock(docker_client: docker.DockerClient) -> Iterator[Any]:
    """A factory: a created (not started) pipelock container with a given config."""
    require_pipelock(docker_client)
    made: list[Any] = []

    def create(config: dict[str, Any], command: list[str]) -> Any:
        container = docker_client.containers.create(
            pins.pipelock_image(), command, labels={"io.remotebottle.test": "1"}
        )
        made.append(container)
        container.put_archive("/", config_files(config))
        return container

    yield create
    for container in made:
        container.remove(force=True)


def generated() -> dict[str, Any]:
    return dict(json.loads(egress.pipelock_config(ALLOWLIST, with_secrets=True)))


def check(pipelock: Any, config: dict[str, Any]) -> tuple[int, str]:
    container = pipelock(config, ["check", "--config", egress.CONFIG_PATH])
    container.start()
    code = container.wait(timeout=30)["StatusCode"]
    return code, container.logs().decode(errors="replace")


def test_the_generated_config_passes_pipelocks_own_validation(pipelock: Any) -> None:
    code, out = check(pipelock, generated())
    assert code == 0, out
    assert "Config validation: OK" in out
    assert "Mode:           strict" in out
    assert f"API allowlist:  {len(ALLOWLIST)} domains" in out


@pytest.mark.parametrize(
    "path",
    [("max_tunnel_secs",), ("forward_proxy", "max_tunnel_secs"), ("request_body_scanning", "x")],
)
def test_a_key_pipelock_does_not_know_is_refused(pipelock: Any, path: tuple[str, ...]) -> None:
    """The check above would catch a misspelt or dropped key: pipelock refuses unknown keys
    at any depth, rather than running with a security setting silently ignored."""
    config = generated()
    where = config
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = 1
    code, out = check(pipelock, config)
    assert code != 0
    assert f"field {path[-1]} not found" in out, out


def test_pipelock_runs_with_what_the_config_asks(
    pipelock: Any, docker_client: docker.DockerClient
) -> None:
    container = pipelock(generated(), egress.pipelock_command())
    container.start()
    deadline = time.monotonic() + 30
    health: dict[str, Any] = {}
    while time.monotonic() < deadline and not health:
        container.reload()
        assert container.status == "running", container.logs().decode(errors="replace")
        address = container.attrs["NetworkSettings"]["IPAddress"]
        try:
            url = f"http://{address}:{egress.PROXY_PORT}/health"
            with urllib.request.urlopen(url, timeout=2) as response:
                health = json.loads(response.read())
        except OSError:
            time.sleep(0.2)
    assert health, container.logs().decode(errors="replace")
    assert health["version"] == pins.pipelock_image().rsplit(":", 1)[1]
    assert health["mode"] == "strict"
    assert health["forward_proxy_enabled"] is True
    assert health["tls_interception_enabled"] is True
    assert health["request_body_scan_enabled"] is True
    assert health["response_scan_enabled"] is True
    assert health["kill_switch_active"] is False
    assert health["dlp_patterns"] > 40
    # The only expected warnings: the agent reaches the proxy on its network, not loopback
    # (pipelock's load-time check does not look at metrics_listen; the /stats probe does).
    logs = container.logs().decode(errors="replace").splitlines()
    warnings = [line for line in logs if "warn" in line.lower()]
    assert all("WARNING: fetch_proxy.listen: " in line for line in warnings), warnings
    stats = f"http://{address}:{egress.PROXY_PORT}/stats"
    with pytest.raises(urllib.error.HTTPError):  # /stats is on loopback only
        urllib.request.urlopen(stats, timeout=2)
