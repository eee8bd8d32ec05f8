"""A fake Anthropic Messages API, good enough for Claude Code to complete a real turn.

Standard library only (runs with a bare ``python3`` in a minimal container)::

    python3 server.py --host 0.0.0.0 --port 8080 --record /tmp/requests.jsonl \\
        --reply "Hello from the fake Messages API." --chunk-delay 0.05 --chunks 4 \\
        [--hold-file /tmp/release] [--tls-cert cert.pem --tls-key key.pem]

- ``POST /v1/messages``: always answers with the reply text and ``end_turn`` (tools are
  ignored), as Server-Sent Events when the body says ``"stream": true`` (the real API's
  event sequence, flushed per event, a delay between text chunks) or as one JSON message.
  With ``--hold-file``, a streamed answer stops before its last text chunk (sending a
  ``ping`` event every few seconds, as the real API does) until that file exists.
- ``POST /v1/messages/count_tokens``: a rough token count.
- ``GET /v1/models[/ID]``, ``HEAD``/``GET`` ``/`` and ``/api/hello`` (Claude Code's
  connectivity probe): small successful answers.
- ``GET /_requests``: every recorded request as a JSON list; ``DELETE /_requests`` clears it.
- Anything else: 404 in Anthropic's error shape.

Every request (method, path, headers, JSON body) is kept in memory and, with ``--record``,
appended to a JSONL file (flushed per line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "Hello from the fake Messages API."
DEFAULT_MODEL = "claude-sonnet-4-5"
HOLD_PING_SECONDS = 5.0


def split_chunks(text: str, parts: int = 4) -> list[str]:
    """Split ``text`` into at most ``parts`` chunks on word boundaries; they join back to it."""
    words = text.split(" ")
    size = -(-len(words) // parts)
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [g if i == 0 else " " + g for i, g in enumerate(groups)]


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


def reply_text(body: dict[str, Any], reply: str) -> str:
    """The reply, or for a structured-output request (Claude Code's session-title call, with
    ``output_config.format`` a ``json_schema``) a JSON object with the reply in each string."""
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") != "json_schema":
        return reply
    props = (fmt.get("schema") or {}).get("properties") or {}
    return json.dumps({k: reply for k, v in props.items() if v.get("type") == "string"})


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropicServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        reply: str = DEFAULT_REPLY,
        chunk_delay: float = 0.05,
        record: str | None = None,
        chunks: int = 4,
        hold_file: str | None = None,
    ) -> None:
        super().__init__(address, Handler)
        self.reply = reply
        self.chunk_delay = chunk_delay
        self.chunks = max(1, chunks)
        self.hold_file = hold_file
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
    # Events go out as they are written, as the real API's do (else a reused connection
    # stalls ~40 ms per event on Nagle's algorithm meeting delayed ACKs).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"fake-anthropic: {format % args}\n")

    def read_request(self) -> tuple[str, Any, bool]:
        """Path without query, JSON body (raw text if unparsable, None if empty), parsed ok."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        ok = True
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body, ok = raw.decode("utf-8", "replace"), False
        path = self.path.split("?", 1)[0]
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

    def do_GET(self) -> None:
        path, _, _ = self.read_request()
        if path == "/_requests":
            with self.server.lock:
                self.send_json(200, list(self.server.requests))
        elif path in ("/", "/healthz", "/api/hello"):
            self.send_json(200, {"ok": True})
        elif path == "/v1/models":
            model = model_info(DEFAULT_MODEL)
            page = {"data": [model], "has_more": False}
            self.send_json(200, {**page, "first_id": model["id"], "last_id": model["id"]})
        elif path.startswith("/v1/models/"):
            self.send_json(200, model_info(path.rsplit("/", 1)[1]))
        else:
            self.send_json(404, error_body("not_found_error", f"Not found: {self.command} {path}"))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path, body, ok = self.read_request()
        if path == "/_requests" and self.command == "DELETE":
            with self.server.lock:
                self.server.requests.clear()
            self.send_json(200, {"ok": True})
        elif path in ("/v1/messages", "/v1/messages/count_tokens") and not (
            ok and isinstance(body, dict)
        ):
            self.send_json(400, error_body("invalid_request_error", "body: not a JSON object"))
        elif path == "/v1/messages/count_tokens":
            self.send_json(200, {"input_tokens": rough_tokens(body.get("messages"))})
        elif path == "/v1/messages" and body.get("stream"):
            self.stream_message(body)
        elif path == "/v1/messages":
            self.send_json(200, self.message(body))
        else:
            self.send_json(404, error_body("not_found_error", f"Not found: {self.command} {path}"))

    do_PUT = do_PATCH = do_DELETE = do_POST

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        text = reply_text(body, self.server.reply)
        return {
            "id": f"msg_fake_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": str(body.get("model") or DEFAULT_MODEL),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage(rough_tokens(body.get("messages")), rough_tokens(text)),
        }

    def event(self, **data: Any) -> None:
        """One SSE event (named after its ``type``) as one HTTP chunk, flushed at once."""
        payload = f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def hold(self) -> None:
        """Wait for the hold file, if there is one, pinging every few seconds meanwhile."""
        path = self.server.hold_file
        pinged = time.monotonic()
        while path and not os.path.exists(path):
            time.sleep(0.1)
            if time.monotonic() - pinged >= HOLD_PING_SECONDS:
                self.event(type="ping")
                pinged = time.monotonic()

    def stream_message(self, body: dict[str, Any]) -> None:
        full = self.message(body)
        start = {**full, "content": [], "stop_reason": None}
        start["usage"] = {**full["usage"], "output_tokens": 1}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", f"req_fake_{uuid.uuid4().hex[:20]}")
        self.end_headers()
        self.event(type="message_start", message=start)
        self.event(type="content_block_start", index=0, content_block={"type": "text", "text": ""})
        self.event(type="ping")
        chunks = split_chunks(full["content"][0]["text"], self.server.chunks)
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(self.server.chunk_delay)
            if i == len(chunks) - 1:
                self.hold()
            self.event(
                type="content_block_delta", index=0, delta={"type": "text_delta", "text": chunk}
            )
        self.event(type="content_block_stop", index=0)
        self.event(
            type="message_delta",
            delta={"stop_reason": "end_turn", "stop_sequence": None},
            usage={"output_tokens": full["usage"]["output_tokens"]},
        )
        self.event(type="message_stop")
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
    parser.add_argument("--chunks", type=int, default=4, help="text chunks per streamed answer")
    parser.add_argument(
        "--hold-file", default=None, help="streamed answers wait for this file before their end"
    )
    parser.add_argument("--tls-cert", default=None, help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key", default=None, help="the certificate's PEM private key")
    args = parser.parse_args(argv)

    server = FakeAnthropicServer(
        (args.host, args.port),
        reply=args.reply,
        chunk_delay=args.chunk_delay,
        record=args.record,
        chunks=args.chunks,
        hold_file=args.hold_file,
    )
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"fake-anthropic listening on {args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
