"""A fake Anthropic Messages API, good enough for Claude Code to complete a real turn.

Standard library only (runs with a bare ``python3`` in a minimal container)::

    python3 server.py --host 0.0.0.0 --port 8080 --record /tmp/requests.jsonl \
        --reply "Hello from the fake Messages API." --chunk-delay 0.05

- ``POST /v1/messages``: always answers with the reply text and ``end_turn`` (tools are
  ignored), as Server-Sent Events when the body says ``"stream": true`` (the real API's
  event sequence, flushed per event, one delay between text chunks) or as one JSON message.
- ``POST /v1/messages/count_tokens``: a rough token count.
- ``GET /v1/models[/ID]``, ``HEAD``/``GET /`` and ``/api/hello`` (Claude Code's connectivity
  probe): small successful answers.
- ``GET /_requests``: every recorded request as a JSON list; ``DELETE /_requests`` clears it.
- Anything else: 404 in Anthropic's error shape.

Every request (method, path, headers, JSON body) is kept in memory and, with ``--record``,
appended to a JSONL file (flushed per line).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "Hello from the fake Messages API."
DEFAULT_MODEL = "claude-sonnet-4-5"


def split_chunks(text: str, parts: int = 4) -> list[str]:
    """Split ``text`` into up to ``parts`` non-empty chunks on word boundaries."""
    words = text.split(" ")
    size = max(1, -(-len(words) // parts))
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [g if i == 0 else " " + g for i, g in enumerate(groups)] or [""]


def rough_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


class FakeAnthropicServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        reply: str = DEFAULT_REPLY,
        chunk_delay: float = 0.05,
        record: str | None = None,
    ) -> None:
        super().__init__(address, Handler)
        self.reply = reply
        self.chunk_delay = chunk_delay
        self.record_path = record
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)
            if self.record_path:
                with open(self.record_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")
                    fh.flush()


class Handler(BaseHTTPRequestHandler):
    server: FakeAnthropicServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"fake-anthropic: {format % args}\n")

    # -- plumbing -----------------------------------------------------------------------

    def read_body(self) -> tuple[Any, bool]:
        """The JSON body (None when empty) and whether it parsed; raw text if it did not."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None, True
        try:
            return json.loads(raw), True
        except ValueError:
            return raw.decode("utf-8", "replace"), False

    def handle_any(self) -> tuple[str, Any, bool]:
        path = self.path.split("?", 1)[0]
        body, ok = self.read_body()
        if path != "/_requests":
            self.server.record(
                {
                    "time": time.time(),
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
        return path, body, ok

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:20]}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_json(self, status: int, kind: str, message: str) -> None:
        self.send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

    # -- verbs --------------------------------------------------------------------------

    def do_GET(self) -> None:
        path, _, _ = self.handle_any()
        if path == "/_requests":
            with self.server.lock:
                self.send_json(200, list(self.server.requests))
        elif path in ("/", "/healthz", "/api/hello"):
            self.send_json(200, {"ok": True})
        elif path == "/v1/models":
            model = model_info(DEFAULT_MODEL)
            self.send_json(
                200,
                {
                    "data": [model],
                    "has_more": False,
                    "first_id": model["id"],
                    "last_id": model["id"],
                },
            )
        elif path.startswith("/v1/models/"):
            self.send_json(200, model_info(path.rsplit("/", 1)[1]))
        else:
            self.send_error_json(404, "not_found_error", f"Not found: {self.command} {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path, body = self.handle_any()
        if path == "/v1/messages/count_tokens":
            self.send_json(200, {"input_tokens": rough_tokens(body)})
        elif path == "/v1/messages":
            if not isinstance(body, dict) or "_raw" in body:
                self.send_error_json(400, "invalid_request_error", "body must be a JSON object")
                self.stream_message(body)
            else:
                self.send_json(200, self.message(body, self.server.reply))
        else:
            self.send_error_json(404, "not_found_error", f"Not found: {self.command} {path}")

    do_PUT = do_PATCH = do_DELETE = do_POST

    # -- messages -----------------------------------------------------------------------

    def message(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"msg_fake_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": str(body.get("model") or DEFAULT_MODEL),
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage(rough_tokens(body.get("messages")), rough_tokens(text)),
        }

    def event(self, name: str, data: dict[str, Any]) -> None:
        payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def stream_message(self, body: dict[str, Any]) -> None:
        text = self.server.reply
        full = self.message(body, text)
        start = {**full, "content": [], "stop_reason": None, "usage": {**full["usage"]}}
        start["usage"]["output_tokens"] = 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:20]}")
        self.end_headers()
        self.event("message_start", {"type": "message_start", "message": start})
        self.event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        self.event("ping", {"type": "ping"})
        for i, chunk in enumerate(split_chunks(text)):
            if i:
                time.sleep(self.server.chunk_delay)
            self.event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": chunk},
                },
            )
        self.event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self.event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": full["usage"]["output_tokens"]},
            },
        )
        self.event("message_stop", {"type": "message_stop"})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def model_info(model_id: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "2025-01-01T00:00:00Z",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake Anthropic Messages API for tests.")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--record", default=None, help="append each request as JSONL here")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--chunk-delay", type=float, default=0.05)
    args = parser.parse_args(argv)

    server = FakeAnthropicServer(
        (args.host, args.port), reply=args.reply, chunk_delay=args.chunk_delay, record=args.record
    )

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"fake-anthropic listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
