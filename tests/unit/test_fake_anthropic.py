"""The fake Anthropic Messages API used by the e2e tests speaks the real API's shapes."""

from __future__ import annotations

import http.client
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fake_anthropic import server as fake

pytestmark = pytest.mark.unit

SERVER_PY = Path(fake.__file__)
REPLY = "one two three four five six seven"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[fake.FakeAnthropicServer]:
    srv = fake.FakeAnthropicServer(
        ("127.0.0.1", 0), reply=REPLY, chunk_delay=0.1, record=str(tmp_path / "rec.jsonl")
    )
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=2)


def request(
    srv: fake.FakeAnthropicServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=5)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(
        method, path, body=data, headers={"content-type": "application/json"} | (headers or {})
    )
    return conn.getresponse()


def read_events(resp: http.client.HTTPResponse) -> Iterator[tuple[str, dict[str, Any], float]]:
    """Parse SSE incrementally: (event name, data, monotonic arrival time) per event."""
    name = ""
    while line := resp.readline():
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            name = text[len("event: ") :]
        elif text.startswith("data: "):
            yield name, json.loads(text[len("data: ") :]), time.monotonic()


MESSAGES = {
    "model": "claude-test-1",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_streaming_event_sequence_and_shapes(served: fake.FakeAnthropicServer) -> None:
    resp = request(served, "POST", "/v1/messages?beta=true", MESSAGES | {"stream": True})
    assert resp.status == 200
    assert resp.getheader("content-type", "").startswith("text/event-stream")
    events = list(read_events(resp))

    names = [name for name, _, _ in events]
    deltas = [data for name, data, _ in events if name == "content_block_delta"]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * len(deltas),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert len(deltas) >= 3
    assert all(data["type"] == name for name, data, _ in events)

    message = events[0][1]["message"]
    assert message["id"].startswith("msg_")
    assert (message["type"], message["role"], message["model"]) == (
        "message",
        "assistant",
        "claude-test-1",
    )
    assert message["content"] == [] and message["stop_reason"] is None
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] == 1
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for d in deltas)
    assert "".join(d["delta"]["text"] for d in deltas) == REPLY
    assert events[-3][1] == {"type": "content_block_stop", "index": 0}
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] > 0


def test_stream_is_not_buffered(served: fake.FakeAnthropicServer) -> None:
    sent = time.monotonic()
    resp = request(served, "POST", "/v1/messages", MESSAGES | {"stream": True})
    arrivals = [(name, at) for name, _, at in read_events(resp)]
    first = arrivals[0][1] - sent
    deltas = [at for name, at in arrivals if name == "content_block_delta"]
    total = arrivals[-1][1] - sent
    # The reply takes >= 3 delays of 0.1 s; a buffered stream would deliver everything at the
    # end. Instead message_start arrives at once and each delta a delay after the one before.
    assert len(deltas) == 4
    assert total >= 0.3
    assert first < 0.25
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(deltas))


def test_a_held_stream_ends_only_once_its_hold_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "HOLD_PING_SECONDS", 0.1)
    release = tmp_path / "release"
    srv = fake.FakeAnthropicServer(
        ("127.0.0.1", 0), reply=REPLY, chunk_delay=0.0, chunks=7, hold_file=str(release)
    )
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        resp = request(srv, "POST", "/v1/messages", MESSAGES | {"stream": True})
        events = read_events(resp)
        seen: list[tuple[str, dict[str, Any]]] = []
        while sum(name == "ping" for name, _ in seen) < 3:  # the start's ping, then the hold's
            name, data, _ = next(events)
            seen.append((name, data))
        threading.Timer(0.3, release.touch).start()
        seen += [(name, data) for name, data, _ in events]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=2)
    deltas = [data["delta"]["text"] for name, data in seen if name == "content_block_delta"]
    assert len(deltas) == 7 and "".join(deltas) == REPLY
    names = [name for name, _ in seen]
    last = names.index("content_block_stop") - 1
    assert names[last] == "content_block_delta" and names[last - 1] == "ping", names
    assert names[-1] == "message_stop"


def test_non_streaming_json_ignores_tools(served: fake.FakeAnthropicServer) -> None:
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    resp = request(served, "POST", "/v1/messages", MESSAGES | {"tools": tools, "max_tokens": 1})
    assert resp.status == 200
    assert resp.getheader("content-type") == "application/json"
    body = json.loads(resp.read())
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "claude-test-1"
    assert body["content"] == [{"type": "text", "text": REPLY}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0


def test_structured_output_request_gets_schema_shaped_json(
    served: fake.FakeAnthropicServer,
) -> None:
    """Claude Code's session-title call asks for a json_schema; answer it in kind."""
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["title"],
    }
    fmt = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    body = json.loads(request(served, "POST", "/v1/messages", MESSAGES | fmt).read())
    assert json.loads(body["content"][0]["text"]) == {"title": REPLY}
    served.chunk_delay = 0
    resp = request(served, "POST", "/v1/messages", MESSAGES | fmt | {"stream": True})
    text = "".join(
        d["delta"]["text"] for n, d, _ in read_events(resp) if n == "content_block_delta"
    )
    assert json.loads(text) == {"title": REPLY}


def test_side_endpoints_answer(served: fake.FakeAnthropicServer) -> None:
    count = request(served, "POST", "/v1/messages/count_tokens?beta=true", MESSAGES)
    assert count.status == 200 and json.loads(count.read())["input_tokens"] > 0
    for method, path in [("HEAD", "/"), ("HEAD", "/api/hello"), ("GET", "/v1/models")]:
        resp = request(served, method, path)
        resp.read()
        assert resp.status == 200, (method, path)
    model = json.loads(request(served, "GET", "/v1/models/claude-x").read())
    assert model["type"] == "model" and model["id"] == "claude-x"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind"),
    [
        ("GET", "/nope", None, 404, "not_found_error"),
        ("POST", "/api/oauth/profile", {}, 404, "not_found_error"),
        ("POST", "/v1/messages", b"{not json", 400, "invalid_request_error"),
        ("POST", "/v1/messages", [1, 2], 400, "invalid_request_error"),
    ],
)
def test_errors_use_anthropic_shape(
    served: fake.FakeAnthropicServer, method: str, path: str, body: Any, status: int, kind: str
) -> None:
    resp = request(served, method, path, body)
    assert resp.status == status
    error = json.loads(resp.read())
    assert error["type"] == "error"
    assert error["error"]["type"] == kind and error["error"]["message"]


def test_records_headers_and_body(served: fake.FakeAnthropicServer, tmp_path: Path) -> None:
    headers = {
        "Authorization": "Bearer placeholder",
        "x-api-key": "sk-fake",
        "anthropic-beta": "claude-code-20250219,oauth-2025-04-20",
        "User-Agent": "claude-cli/2.1.330 (external, cli)",
    }
    request(served, "POST", "/v1/messages?beta=true", MESSAGES, headers).read()
    request(served, "HEAD", "/api/hello").read()

    listed = json.loads(request(served, "GET", "/_requests").read())
    on_disk = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert listed == on_disk  # /_requests itself is not recorded
    assert [(r["method"], r["path"]) for r in listed] == [
        ("POST", "/v1/messages?beta=true"),
        ("HEAD", "/api/hello"),
    ]
    first = listed[0]
    assert first["body"] == MESSAGES
    assert first["headers"]["authorization"] == "Bearer placeholder"
    assert first["headers"]["x-api-key"] == "sk-fake"
    assert first["headers"]["anthropic-beta"] == headers["anthropic-beta"]
    assert first["headers"]["user-agent"] == headers["User-Agent"]
    assert listed[1]["body"] is None

    assert request(served, "DELETE", "/_requests").status == 200
    assert json.loads(request(served, "GET", "/_requests").read()) == []
    assert len((tmp_path / "rec.jsonl").read_text().splitlines()) == 2  # the file keeps all


def test_command_line_serves_records_and_stops_on_sigterm(tmp_path: Path) -> None:
    record = tmp_path / "cli.jsonl"
    proc = subprocess.Popen(
        [
            *(sys.executable, str(SERVER_PY), "--host", "127.0.0.1", "--port", "0"),
            *("--record", str(record), "--reply", "custom reply", "--chunk-delay", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("fake-anthropic listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/messages", body=json.dumps(MESSAGES | {"stream": True}))
        text = "".join(
            data["delta"]["text"]
            for name, data, _ in read_events(conn.getresponse())
            if name == "content_block_delta"
        )
        assert text == "custom reply"
        assert json.loads(record.read_text().splitlines()[0])["body"]["stream"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=2) == 0
    finally:
        proc.kill()
        proc.wait()
