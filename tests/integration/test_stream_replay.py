"""Re-attaching to a running container against the real engine: the output it printed
before comes back whole (docker-py reads the first bytes along with the response
headers; `streams.buffered_start` gives them back), and a `Shown` skips what was shown."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from remotebottle import pins
from remotebottle.backend.docker.engine import missing_images
from remotebottle.backend.docker.streams import iter_frames
from remotebottle.ops.replay import Shown
from remotebottle.ops.stream import follow_output
from tests.integration.conftest import require

pytestmark = pytest.mark.integration

LINES = 40
COUNT = f"i=0; while [ $i -lt {LINES} ]; do echo tick $i; i=$((i+1)); done; sleep 3; exit 5"
EXPECTED = b"".join(b"tick %d\n" % i for i in range(LINES))


@pytest.fixture
def counter(docker_client: docker.DockerClient) -> Iterator[Any]:
    image = pins.base_image()
    if missing_images(docker_client, [image]):
        require(f"{image} is not seeded; run `make setup`")
    container = docker_client.containers.run(
        image, ["sh", "-c", COUNT], detach=True, network_mode="none"
    )
    try:
        deadline = time.monotonic() + 30
        while b"tick %d" % (LINES - 1) not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield container
    finally:
        container.remove(force=True)


def test_an_attach_with_logs_replays_everything_printed_before(
    docker_client: docker.DockerClient, counter: Any
) -> None:
    for _ in range(3):  # the bytes read along with the headers vary from try to try
        hijacked = docker_client.api.attach_socket(
            counter.id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
        )
        data = b""
        for _stream, payload in iter_frames(hijacked):
            data += payload
            if len(data) >= len(EXPECTED):
                break
        hijacked.close()
        assert data == EXPECTED


def test_following_again_skips_what_was_shown_and_gets_the_status(
    docker_client: docker.DockerClient, counter: Any
) -> None:
    shown = Shown()
    shown.take(1, b"tick 0\ntick 1\nti", shown.replay())  # shown before a cut, mid-line
    out, err = io.BytesIO(), io.BytesIO()
    end = follow_output(docker_client, counter.id, stdout=out, stderr=err, shown=shown)
    assert end.exit_code == 5 and not end.link_lost
    assert out.getvalue() == EXPECTED[len(b"tick 0\ntick 1\nti") :]
    assert shown.count(1) == len(EXPECTED)
