"""The bottle's supervisor: carries the agent's proposals to the operator and back.

Runs in its own sidecar container (python3 of the agent image: the standard library,
and the packages shipped next to this script).

    supervisor.py serve --port 8090 --control /run/supervisor/control.sock
        [--plain-http-upstream NAME:PORT ...]   (the test suite's own upstreams only)
        The agent POSTs /proposals ({kind, payload, reason, timeout}) on the port; the
        request is validated, kept in memory, and blocks until the operator decides, the
        timeout passes, or the agent hangs up (the proposal is then withdrawn). The
        answer is {id, status, reason, payload}; status is approved, rejected or timeout.
        The operator's side is a unix socket in the sidecar's private tmpfs: nothing on
        the network can list or decide proposals.
    supervisor.py list --control SOCK
        Prints the pending proposals as JSON (run by the operator through `docker exec`).
    supervisor.py decide ID --control SOCK
        Reads {approve, reason, payload} on stdin and answers proposal ID.
        Exit 0 delivered, 3 no such pending proposal, 2 anything else.

What a proposal may carry, and the board where it waits, are in proposals.py, shipped
next to this script under its package path (remotebottle/resources/supervisor/), so the
same import works in the sidecar and in the package.
"""

from __future__ import annotations

import argparse
import http.server
import json
import select
import socket
import socketserver
import sys
import threading
import time
from typing import Any

from remotebottle.resources.supervisor.proposals import Board, Invalid, Pending, Rules, filing, log

MAX_BODY = 64 * 1024
EXIT_GONE = 3


def _hung_up(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def agent_handler(board: Board) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "rbottle-supervisor"
        sys_version = ""
        timeout = 15  # for reading a request; waiting for the decision does not read

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/proposals":
                self._reply(404, {"error": "not found"})
                return
            try:
                size = int(self.headers.get("Content-Length") or "0")
                if not 0 < size <= MAX_BODY:
                    raise Invalid(f"the request body must be 1 to {MAX_BODY} bytes")
                try:
                    body = json.loads(self.rfile.read(size))
                except ValueError:
                    raise Invalid("the request body is not JSON") from None
                kind, payload, reason, timeout = filing(body, board.rules)
                item = board.file(kind, payload, reason)
            except Invalid as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, self._wait(item, timeout))

        def _wait(self, item: Pending, timeout: float) -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while not item.answered.wait(0.5):
                if _hung_up(self.connection):
                    return board.give_up(item, "withdrawn", "the agent stopped waiting")
                if time.monotonic() >= deadline:
                    return board.give_up(item, "timeout", f"no decision within {timeout:g} s")
            return item.answer

        def do_PUT(self) -> None:
            self._reply(405, {"error": "method not allowed"})

        do_DELETE = do_PATCH = do_PUT

    return Handler


def control_handler(board: Board) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                request = json.loads(self.rfile.readline(MAX_BODY * 2))
                if request.get("op") == "list":
                    answer: dict[str, Any] = {"ok": True, "proposals": board.listing()}
                elif request.get("op") == "decide":
                    found = board.decide(str(request.get("id")), request.get("decision"))
                    answer = {"ok": found, "gone": not found}
                else:
                    answer = {"ok": False, "error": "unknown op"}
            except (Invalid, ValueError, AttributeError) as exc:
                answer = {"ok": False, "error": str(exc)}
            self.wfile.write(json.dumps(answer).encode() + b"\n")

    return Handler


class AgentServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(host: str, port: int, control: str, plain_http: list[str]) -> None:
    board = Board(Rules(plain_http=frozenset(plain_http)))
    ctl = ControlServer(control, control_handler(board))
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    agent = AgentServer((host, port), agent_handler(board))
    log("listening", port=agent.server_address[1], control=control)
    agent.serve_forever()


def ask(control: str, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(control)
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="supervisor.py")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve")
    serve_cmd.add_argument("--host", default="0.0.0.0")  # noqa: S104 the bottle's own network
    serve_cmd.add_argument("--port", type=int, default=8090)
    serve_cmd.add_argument(
        "--plain-http-upstream", action="append", default=[], help="NAME:PORT (tests only)"
    )
    list_cmd = sub.add_parser("list")
    decide_cmd = sub.add_parser("decide")
    decide_cmd.add_argument("id")
    for cmd in (serve_cmd, list_cmd, decide_cmd):
        cmd.add_argument("--control", required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port, args.control, args.plain_http_upstream)
        return 0
    try:
        if args.command == "list":
            answer = ask(args.control, {"op": "list"})
        else:
            decision = json.loads(sys.stdin.read())
            answer = ask(args.control, {"op": "decide", "id": args.id, "decision": decision})
    except (OSError, ValueError) as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return 2
    if answer.get("gone"):
        print(f"supervisor: proposal {args.id} is not pending", file=sys.stderr)
        return EXIT_GONE
    if not answer.get("ok"):
        print(f"supervisor: {answer.get('error', 'failed')}", file=sys.stderr)
        return 2
    print(json.dumps(answer.get("proposals") if args.command == "list" else answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
