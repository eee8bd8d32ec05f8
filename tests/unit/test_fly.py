"""Contract test of the Fly provider against recorded Machines API shapes.

A real HTTP server on 127.0.0.1 answers with the JSON of tests/fixtures/fly/ (see its
README for the API reference each shape comes from) and records every request, so the tests
check what the client sends: method, path, query, Authorization and JSON body. The sshd the
provider waits for is a loopback socket that sends an SSH banner.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from remotebottle.errors import HostError, ProvisionError
from remotebottle.hosts.fly import FlyProvider, pricing
from remotebottle.hosts.fly import config as fly_config
from remotebottle.hosts.fly.api import FlyApiError, FlyAppError, FlyAuthError
from remotebottle.hosts.provider import Machine, OwnedResource
from remotebottle.manifest import FlyHost

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "fly"
TOKEN = "fly-test-token-0123456789"
APP = "rb-test"
IDENTITY = "implementer-k3x9q"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any = None
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class FakeFly:
    """Routes (method, path regex) to queued replies; the last reply of a queue repeats."""

    routes: list[tuple[str, re.Pattern[str], list[Reply]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes.insert(0, (method, re.compile(f"^/v1/apps/{APP}{path}$"), list(replies)))

    def reply(self, method: str, path: str) -> Reply:
        for route_method, pattern, replies in self.routes:
            if route_method == method and pattern.match(path):
                return replies.pop(0) if len(replies) > 1 else replies[0]
        return Reply(404, {"error": f"no route for {method} {path}"})

    def calls(self, method: str | None = None) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen if method in (None, s.method)]


def _handler(fake: FakeFly) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.seen.append(
                Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                )
            )
            reply = fake.reply(self.command, parts.path)
            time.sleep(reply.delay)
            body = json.dumps(reply.body).encode() if reply.body is not None else b""
            body = reply.raw if reply.raw is not None else body
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFly]:
    monkeypatch.setenv("FLY_API_TOKEN", TOKEN)
    monkeypatch.delenv("FLY_API_HOSTNAME", raising=False)
    api = FakeFly()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


class FakeSshd:
    """A loopback listener that greets like sshd (or, with banner=b"", says nothing)."""

    def __init__(self, banner: bytes = b"SSH-2.0-OpenSSH_9.2 fake\r\n") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.sock.listen()
        self.banner = banner
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.banner:
                    conn.sendall(self.banner)
                else:
                    time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()


def entry(**overrides: Any) -> FlyHost:
    values: dict[str, Any] = {"provider": "fly", "app": APP, "region": "ord"}
    values.update(overrides)
    return FlyHost(**values)


def provider(fake: FakeFly, **overrides: Any) -> FlyProvider:
    return FlyProvider(entry(**overrides), api_url=fake.url, ssh_address="127.0.0.1", poll=0.01)


def happy_routes(fake: FakeFly, machines: Any = None) -> None:
    fake.on("GET", "/machines", Reply(200, [] if machines is None else machines))
    fake.on("POST", "/volumes", Reply(200, fixture("volume_create.json")))
    fake.on("POST", "/machines", Reply(200, fixture("machine_create.json")))
    fake.on("GET", r"/machines/[0-9a-f]+/wait", Reply(200, fixture("ok.json")))
    fake.on("GET", r"/machines/[0-9a-f]+", Reply(200, fixture("machine_get.json")))
    fake.on("POST", r"/machines/[0-9a-f]+/stop", Reply(200, fixture("ok.json")))
    fake.on("DELETE", r"/machines/[0-9a-f]+", Reply(200, fixture("ok.json")))
    fake.on("DELETE", r"/volumes/vol_\w+", Reply(200, fixture("volume_deleted.json")))


def listen_as_the_machine(monkeypatch: pytest.MonkeyPatch, banner: bytes | None = None) -> FakeSshd:
    """A fake sshd on a free loopback port, made the only port the provider can pick."""
    server = FakeSshd() if banner is None else FakeSshd(banner)
    monkeypatch.setattr(fly_config, "SSH_PORT_RANGE", (server.port, server.port + 1))
    return server


@pytest.fixture
def sshd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSshd]:
    server = listen_as_the_machine(monkeypatch)
    yield server
    server.close()


def progress(_line: str) -> None:
    pass


def assert_token_only_in_header(fake: FakeFly) -> None:
    for seen in fake.seen:
        assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in seen.path + json.dumps(seen.query) + json.dumps(seen.body)


# -- create -------------------------------------------------------------------------------


def test_create_sends_the_documented_requests(
    fake: FakeFly, sshd: FakeSshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    machines = fixture("machines_list.json")
    # Another session's Machine holds the other port of the range: ours must avoid it.
    machines[0]["config"]["services"][0]["ports"][0]["port"] = sshd.port - 1
    monkeypatch.setattr(fly_config, "SSH_PORT_RANGE", (sshd.port - 1, sshd.port + 1))
    happy_routes(fake, machines)
    machine = provider(fake).create(IDENTITY, progress=progress)

    assert fake.calls() == [
        f"GET /v1/apps/{APP}/machines",
        f"POST /v1/apps/{APP}/volumes",
        f"POST /v1/apps/{APP}/machines",
        f"GET /v1/apps/{APP}/machines/1857156b526dd8/wait",
    ]
    assert_token_only_in_header(fake)
    volume = fake.seen[1].body
    assert volume == {
        "name": "rb_implementer_k3x9q",
        "region": "ord",
        "size_gb": pricing.VOLUME_GB,
        "require_unique_zone": False,
    }
    create = fake.seen[2]
    assert create.headers["Content-Type"] == "application/json"
    assert set(create.body) == {"name", "region", "config"}
    assert (create.body["name"], create.body["region"]) == ("rbottle-implementer-k3x9q", "ord")
    config = create.body["config"]
    assert config["image"] == f"registry.fly.io/{APP}:rbottle"
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048}
    assert config["auto_destroy"] is True
    assert config["restart"] == {"policy": "no"}
    assert config["metadata"]["rbottle_owned"] == "true"
    assert config["metadata"]["rbottle_identity"] == IDENTITY
    assert config["metadata"]["rbottle_volume"] == "vol_340088w293z35lp4"
    assert all(re.fullmatch(r"[a-z_]+", key) for key in config["metadata"])
    assert config["mounts"] == [{"volume": "vol_340088w293z35lp4", "path": "/data"}]
    [service] = config["services"]
    assert service["protocol"] == "tcp" and service["internal_port"] == 2222
    assert service["ports"] == [{"port": sshd.port, "handlers": []}]
    assert machine.port == sshd.port
    wait = fake.seen[3].query
    assert wait["state"] == ["started"] and wait["instance_id"] == ["01HEPA330HZ37A78TK080NAK1M"]
    assert 0 < int(wait["timeout"][0]) <= 60

    files = {f["guest_path"]: base64.b64decode(f["raw_value"]).decode() for f in config["files"]}
    assert files[fly_config.TTL_PATH] == "15\n"
    host_key = serialization.load_ssh_private_key(files[fly_config.HOST_KEY_PATH].encode(), None)
    host_public = host_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert machine.host_key == host_public.decode()
    assert machine.host_key.startswith("ssh-ed25519 ")
    login = serialization.load_ssh_private_key(machine.login_key.encode(), None)
    login_public = login.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert files[fly_config.AUTHORIZED_KEYS_PATH] == login_public.decode() + "\n"
    assert machine.login_key not in json.dumps(create.body)
    assert config["metadata"]["rbottle_host_key"] == machine.host_key
    assert config["metadata"]["rbottle_login_key"] == login_public.decode()

    assert (machine.provider, machine.machine_id, machine.identity) == (
        "fly",
        "1857156b526dd8",
        IDENTITY,
    )
    assert (machine.address, machine.user) == ("127.0.0.1", "rbottle")
    assert machine.details["volume"] == "vol_340088w293z35lp4"
    assert machine.expires_at is not None
    left = machine.expires_at - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=14) < left <= datetime.timedelta(minutes=15)
    assert "login_key" not in repr(machine)


def test_create_twice_returns_the_same_machine(fake: FakeFly, sshd: FakeSshd) -> None:
    happy_routes(fake)
    rb = provider(fake)
    first = rb.create(IDENTITY, progress=progress)
    assert rb.create(IDENTITY, progress=progress) is first
    assert fake.calls("POST").count(f"POST /v1/apps/{APP}/machines") == 1


def test_an_earlier_machine_of_the_identity_is_replaced(fake: FakeFly, sshd: FakeSshd) -> None:
    earlier = fixture("machines_list.json")[0]
    earlier["config"]["metadata"]["rbottle_identity"] = IDENTITY
    happy_routes(fake, [earlier])
    lines: list[str] = []
    provider(fake).create(IDENTITY, progress=lines.append)
    calls = fake.calls()
    assert calls[1:4] == [
        f"POST /v1/apps/{APP}/machines/a5c5de9ce64ca12/stop",
        f"DELETE /v1/apps/{APP}/machines/a5c5de9ce64ca12",
        f"DELETE /v1/apps/{APP}/volumes/vol_9vw681egy1jj5xm4",
    ]
    assert calls[4] == f"POST /v1/apps/{APP}/volumes"
    assert any("replacing" in line for line in lines)


def test_wait_asks_again_after_408(fake: FakeFly, sshd: FakeSshd) -> None:
    happy_routes(fake)
    fake.on(
        "GET",
        r"/machines/\w+/wait",
        Reply(408, fixture("error_408_wait.json")),
        Reply(200, fixture("ok.json")),
    )
    provider(fake).create(IDENTITY, progress=progress)
    assert fake.calls("GET").count(f"GET /v1/apps/{APP}/machines/1857156b526dd8/wait") == 2


def _cleanup_calls(fake: FakeFly) -> list[str]:
    return [c for c in fake.calls() if c.startswith(("DELETE", "POST /v1/apps/rb-test/machines/"))]


def test_a_failed_start_destroys_machine_and_volume(fake: FakeFly) -> None:
    happy_routes(fake)
    fake.on("GET", r"/machines/\w+/wait", Reply(500, fixture("error_500.json")))
    with pytest.raises(FlyApiError, match=r"failed \(500.*internal server error") as err:
        provider(fake).create(IDENTITY, progress=progress)
    assert "status.flyio.net" in err.value.hint
    assert _cleanup_calls(fake) == [
        f"POST /v1/apps/{APP}/machines/1857156b526dd8/stop",
        f"DELETE /v1/apps/{APP}/machines/1857156b526dd8",
        f"DELETE /v1/apps/{APP}/volumes/vol_340088w293z35lp4",
    ]
    assert fake.seen[-2].query == {"force": ["true"]}


def test_a_refused_config_is_one_clear_line_and_the_volume_goes(fake: FakeFly) -> None:
    happy_routes(fake)
    fake.on("POST", "/machines", Reply(422, fixture("error_422.json")))
    with pytest.raises(FlyApiError) as err:
        provider(fake).create(IDENTITY, progress=progress)
    assert str(err.value) == (
        f"Fly refused the request (422, POST /v1/apps/{APP}/machines): "
        "invalid config.guest.memory_mb, 100 is not a multiple of 256"
    )
    assert "vm_size" in err.value.hint
    assert _cleanup_calls(fake) == [f"DELETE /v1/apps/{APP}/volumes/vol_340088w293z35lp4"]


def test_no_sshd_within_ready_timeout_fails_and_cleans_up(
    fake: FakeFly, monkeypatch: pytest.MonkeyPatch
) -> None:
    happy_routes(fake)
    silent = listen_as_the_machine(monkeypatch, banner=b"")
    try:
        with pytest.raises(ProvisionError, match="sshd did not answer") as err:
            provider(fake, ready_timeout=0.5).create(IDENTITY, progress=progress)
    finally:
        silent.close()
    assert "dedicated IPv4" in err.value.hint
    assert f"DELETE /v1/apps/{APP}/machines/1857156b526dd8" in fake.calls()
    assert f"DELETE /v1/apps/{APP}/volumes/vol_340088w293z35lp4" in fake.calls()


# -- errors -------------------------------------------------------------------------------


def test_bad_token(fake: FakeFly) -> None:
    fake.on("GET", "/machines", Reply(401, fixture("error_401.json")))
    with pytest.raises(FlyAuthError) as err:
        provider(fake).create(IDENTITY, progress=progress)
    assert (
        str(err.value) == "Fly rejected the API token (401: Authenticate: token validation error)"
    )
    assert "FLY_API_TOKEN" in err.value.hint
    assert TOKEN not in str(err.value) + err.value.hint
    assert fake.calls() == [f"GET /v1/apps/{APP}/machines"]


def test_unknown_app(fake: FakeFly) -> None:
    fake.on("GET", "/machines", Reply(404, fixture("error_404_app.json")))
    with pytest.raises(FlyAppError, match=f"Fly app '{APP}' not found") as err:
        provider(fake).list_owned()
    assert f"fly apps create {APP}" in err.value.hint


def test_server_error(fake: FakeFly) -> None:
    fake.on("GET", "/machines", Reply(503, {"error": "service unavailable\nretry later"}))
    with pytest.raises(FlyApiError) as err:
        provider(fake).list_owned()
    assert str(err.value) == (
        f"the Fly Machines API failed (503, GET /v1/apps/{APP}/machines): "
        "service unavailable retry later"
    )
    assert err.value.status == 503


def test_a_slow_api_times_out(fake: FakeFly) -> None:
    fake.on("GET", "/machines", Reply(200, [], delay=1.0))
    rb = provider(fake)
    rb.api.request_timeout = 0.2
    with pytest.raises(FlyApiError, match="did not answer in time"):
        rb.list_owned()


def test_an_unreachable_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", TOKEN)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rb = FlyProvider(entry(), api_url=f"http://127.0.0.1:{port}")
    with pytest.raises(FlyApiError, match="cannot reach the Fly Machines API") as err:
        rb.list_owned()
    assert TOKEN not in str(err.value)


def test_missing_token(fake: FakeFly, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLY_API_TOKEN")
    with pytest.raises(HostError, match="FLY_API_TOKEN is not set") as err:
        provider(fake).create(IDENTITY, progress=progress)
    assert "fly tokens create" in err.value.hint
    assert fake.seen == []


def test_macaroon_tokens_keep_their_scheme(fake: FakeFly, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", "FlyV1 fm2_abc,fm2_def\n")
    fake.on("GET", "/machines", Reply(200, []))
    fake.on("GET", "/volumes", Reply(200, []))
    provider(fake).list_owned()
    assert fake.seen[0].headers["Authorization"] == "FlyV1 fm2_abc,fm2_def"


def test_the_token_never_goes_over_plain_http_to_a_remote_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLY_API_HOSTNAME", "http://api.machines.dev")
    with pytest.raises(HostError, match="plain http"):
        FlyProvider(entry())
    monkeypatch.setenv("FLY_API_HOSTNAME", "https://api.machines.dev")
    assert FlyProvider(entry()).api.base == "https://api.machines.dev/v1"
    monkeypatch.delenv("FLY_API_HOSTNAME")
    assert FlyProvider(entry()).api.base == "https://api.machines.dev/v1"


def test_unknown_vm_size_fails_before_any_request(fake: FakeFly) -> None:
    with pytest.raises(HostError, match="unknown Fly vm_size 'huge-9x'") as err:
        provider(fake, vm_size="huge-9x").create(IDENTITY, progress=progress)
    assert "shared-cpu-2x" in err.value.hint
    assert fake.seen == []


# -- destroy, get ---------------------------------------------------------------------------


def made_machine(**details: str) -> Machine:
    return Machine(
        provider="fly",
        machine_id="1857156b526dd8",
        identity=IDENTITY,
        address="127.0.0.1",
        port=20001,
        user="rbottle",
        host_key="ssh-ed25519 AAAA",
        details=dict(details),
    )


def test_destroy_stops_deletes_and_removes_the_volume(fake: FakeFly) -> None:
    happy_routes(fake)
    provider(fake).destroy(made_machine(volume="vol_340088w293z35lp4"), progress=progress)
    assert fake.calls() == [
        f"POST /v1/apps/{APP}/machines/1857156b526dd8/stop",
        f"DELETE /v1/apps/{APP}/machines/1857156b526dd8",
        f"DELETE /v1/apps/{APP}/volumes/vol_340088w293z35lp4",
    ]
    assert fake.seen[1].query == {"force": ["true"]}
    assert_token_only_in_header(fake)


def test_destroy_is_idempotent(fake: FakeFly) -> None:
    fake.on("POST", r"/machines/\w+/stop", Reply(404, {"error": "machine not found"}))
    fake.on("DELETE", r"/machines/\w+", Reply(404, {"error": "machine not found"}))
    fake.on("DELETE", r"/volumes/\w+", Reply(404, {"error": "volume not found"}))
    provider(fake).destroy(made_machine(volume="vol_340088w293z35lp4"), progress=progress)
    assert len(fake.calls()) == 3


def test_destroy_finds_the_volume_from_the_machine(fake: FakeFly) -> None:
    happy_routes(fake)
    provider(fake).destroy(made_machine(), progress=progress)
    assert fake.calls()[0] == f"GET /v1/apps/{APP}/machines/1857156b526dd8"
    assert fake.calls()[-1] == f"DELETE /v1/apps/{APP}/volumes/vol_9vw681egy1jj5xm4"


def test_a_volume_still_attached_is_deleted_once_free(fake: FakeFly) -> None:
    happy_routes(fake)
    fake.on(
        "DELETE",
        r"/volumes/\w+",
        Reply(412, {"error": "volume is attached to a machine"}),
        Reply(200, fixture("volume_deleted.json")),
    )
    provider(fake).destroy(made_machine(volume="vol_340088w293z35lp4"), progress=progress)
    assert fake.calls("DELETE").count(f"DELETE /v1/apps/{APP}/volumes/vol_340088w293z35lp4") == 2


def test_a_failed_stop_still_deletes(fake: FakeFly) -> None:
    happy_routes(fake)
    fake.on("POST", r"/machines/\w+/stop", Reply(500, fixture("error_500.json")))
    provider(fake).destroy(made_machine(volume="vol_340088w293z35lp4"), progress=progress)
    assert f"DELETE /v1/apps/{APP}/machines/1857156b526dd8" in fake.calls()


def test_a_bad_token_on_destroy_is_not_swallowed(fake: FakeFly) -> None:
    fake.on("POST", r"/machines/\w+/stop", Reply(401, fixture("error_401.json")))
    with pytest.raises(FlyAuthError):
        provider(fake).destroy(made_machine(volume="vol_x"), progress=progress)


# -- list, sweep ----------------------------------------------------------------------------


def test_list_owned(fake: FakeFly) -> None:
    fake.on("GET", "/machines", Reply(200, fixture("machines_list.json")))
    fake.on("GET", "/volumes", Reply(200, fixture("volumes_list.json")))
    owned = provider(fake).list_owned()
    assert fake.seen[0].query == {"metadata.rbottle_owned": ["true"]}
    utc = datetime.UTC
    assert owned == [
        OwnedResource(
            provider="fly",
            kind="machine",
            resource_id="a5c5de9ce64ca12",
            identity="reviewer-0abcd",
            created_at=datetime.datetime(2023, 10, 31, 2, 30, 9, tzinfo=utc),
            expires_at=datetime.datetime(2023, 10, 31, 2, 45, 9, tzinfo=utc),
            state="started",
        ),
        OwnedResource(
            provider="fly",
            kind="volume",
            resource_id="vol_9vw681egy1jj5xm4",
            identity="reviewer-0abcd",
            created_at=datetime.datetime(2023, 10, 31, 2, 30, 8, 774000, tzinfo=utc),
            expires_at=None,
            state="created",
        ),
        OwnedResource(
            provider="fly",
            kind="volume",
            resource_id="vol_q4qeekqzxze29dw4",
            identity="planner-x1y2z",
            created_at=datetime.datetime(2024, 1, 2, 21, 16, 38, 996000, tzinfo=utc),
            expires_at=datetime.datetime(2024, 1, 2, 21, 31, 38, 996000, tzinfo=utc),
            state="created",
        ),
    ]
    assert owned[2].is_expired(datetime.datetime.now(utc))


def test_destroy_owned_removes_machines_before_volumes(fake: FakeFly) -> None:
    happy_routes(fake)
    fake.on("GET", "/machines", Reply(200, fixture("machines_list.json")))
    fake.on("GET", "/volumes", Reply(200, fixture("volumes_list.json")))
    rb = provider(fake)
    owned = rb.list_owned()
    fake.seen.clear()
    rb.destroy_owned(list(reversed(owned)), progress=progress)
    assert fake.calls() == [
        f"POST /v1/apps/{APP}/machines/a5c5de9ce64ca12/stop",
        f"DELETE /v1/apps/{APP}/machines/a5c5de9ce64ca12",
        f"DELETE /v1/apps/{APP}/volumes/vol_q4qeekqzxze29dw4",
        f"DELETE /v1/apps/{APP}/volumes/vol_9vw681egy1jj5xm4",
    ]


# -- pure parts -----------------------------------------------------------------------------


def test_preflight_names_what_is_paid_for() -> None:
    shown = FlyProvider(entry(vm_size="performance-1x", ttl_minutes=30)).preflight()
    assert shown["provider"] == "fly" and shown["app"] == APP and shown["region"] == "ord"
    assert shown["vm_size"].startswith("performance-1x (1 performance CPU, 2048 MB)")
    assert "after 30 min without a heartbeat" in shown["ttl"]
    assert re.match(
        r"~\$0\.04\d/h \(approximate, from fly\.io/docs/about/pricing", shown["hourly_price"]
    )
    assert FlyProvider(entry(region=None)).preflight()["region"] == fly_config.DEFAULT_REGION


def test_small_presets_get_enough_memory_and_pay_for_it() -> None:
    small = FlyProvider(entry(vm_size="shared-cpu-1x"))
    assert small.guest() == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 2048}
    assert (
        small.hourly_usd() > pricing.VM_SIZES["shared-cpu-1x"].usd_month / pricing.HOURS_PER_MONTH
    )


def test_ports_are_stable_and_avoid_taken_ones() -> None:
    port = fly_config.pick_port(IDENTITY, ())
    assert port != fly_config.pick_port("reviewer-0abcd", ())
    assert fly_config.SSH_PORT_RANGE[0] <= port < fly_config.SSH_PORT_RANGE[1]
    assert fly_config.pick_port(IDENTITY, ()) == port
    assert fly_config.pick_port(IDENTITY, {port}) != port
    only_free = fly_config.pick_port(IDENTITY, set(range(*fly_config.SSH_PORT_RANGE)) - {20000})
    assert only_free == 20000
    with pytest.raises(ProvisionError, match="no free SSH port"):
        fly_config.pick_port(IDENTITY, set(range(*fly_config.SSH_PORT_RANGE)))


def test_volume_names_fit_fly_rules() -> None:
    name = fly_config.volume_name("a-very-long-agent-name-that-goes-on-and-on-x-abcde")
    assert len(name) <= 30 and re.fullmatch(r"[a-z0-9_]+", name) and name.endswith("_abcde")
    assert fly_config.volume_name("implementer-k3x9q") == "rb_implementer_k3x9q"


def test_private_network_has_no_public_service(
    fake: FakeFly, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeSshd()
    monkeypatch.setattr(fly_config, "SSH_INTERNAL_PORT", server.port)
    happy_routes(fake)
    rb = FlyProvider(
        entry(), api_url=fake.url, network="private", ssh_address="127.0.0.1", poll=0.01
    )
    try:
        machine = rb.create(IDENTITY, progress=progress)
    finally:
        server.close()
    [create] = [s for s in fake.seen if s.method == "POST" and s.path.endswith("/machines")]
    assert create.body["config"]["services"] == []
    assert (machine.port, machine.details["network"]) == (server.port, "private")


def test_where_ssh_is_reached() -> None:
    created = fixture("machine_create.json")
    assert FlyProvider(entry())._address(created) == f"{APP}.fly.dev"
    private = FlyProvider(entry(), network="private")
    assert private._address(created) == "fdaa:ff:ff:a7b:195:e229:8038:2"
    with pytest.raises(ProvisionError, match="private address"):
        private._address({})


def test_the_price_table_in_the_docs_matches() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "fly.md").read_text()
    rows = re.findall(r"^\| ([a-z0-9-]+x) \|.*\| \$([0-9.]+) \|$", doc, re.M)
    assert len(rows) == 6
    for size, row in rows:
        assert f"{FlyProvider(entry(vm_size=size)).hourly_usd():.3f}" == row, size


def test_a_machine_gone_during_the_wait_is_not_a_missing_app(fake: FakeFly) -> None:
    happy_routes(fake)
    fake.on("GET", r"/machines/\w+/wait", Reply(404, {"error": "machine not found"}))
    with pytest.raises(FlyApiError, match="no such Machine or volume") as err:
        provider(fake).create(IDENTITY, progress=progress)
    assert not isinstance(err.value, FlyAppError)
    assert f"DELETE /v1/apps/{APP}/volumes/vol_340088w293z35lp4" in fake.calls()


def test_an_answer_that_is_not_json(fake: FakeFly) -> None:
    fake.on("GET", "/machines", Reply(200, raw=b"<html>a captive portal</html>"))
    with pytest.raises(FlyApiError, match="not JSON"):
        provider(fake).list_owned()


# -- kept machines (`reuse`), expiry --------------------------------------------------------


def kept_machine(port: int) -> tuple[dict[str, Any], str, str]:
    """A listed Machine of `reuse-fly` made earlier, with its host key and login key."""
    keys = fly_config.new_keys()
    machine = fixture("machines_list.json")[0]
    meta = machine["config"]["metadata"]
    meta.update(
        rbottle_identity="reuse-fly",
        rbottle_host_key=keys.host_public,
        rbottle_login_key=keys.login_public,
    )
    machine["config"]["services"][0]["ports"][0]["port"] = port
    return machine, keys.host_public, keys.login_private


def test_a_kept_machine_is_found_again_with_its_key(fake: FakeFly, sshd: FakeSshd) -> None:
    existing, host_key, login_key = kept_machine(sshd.port)
    happy_routes(fake, [existing])
    rb = provider(fake)
    rb.adopt_login_key("reuse-fly", login_key)
    machine = rb.create("reuse-fly", progress=progress)
    assert fake.calls() == [
        f"GET /v1/apps/{APP}/machines",
        f"GET /v1/apps/{APP}/machines/a5c5de9ce64ca12/wait",
    ]
    assert (machine.machine_id, machine.port) == ("a5c5de9ce64ca12", sshd.port)
    assert (machine.host_key, machine.login_key) == (host_key, login_key)
    assert machine.details["volume"] == "vol_9vw681egy1jj5xm4"


def test_a_kept_machine_without_its_key_is_refused_not_destroyed(
    fake: FakeFly, sshd: FakeSshd
) -> None:
    existing, _, _ = kept_machine(sshd.port)
    happy_routes(fake, [existing])
    rb = provider(fake)
    rb.adopt_login_key("reuse-fly", fly_config.new_keys().login_private)  # not its key
    with pytest.raises(ProvisionError, match="its login key is gone") as err:
        rb.create("reuse-fly", progress=progress)
    assert "cleanup --orphans" in err.value.hint
    assert fake.calls() == [f"GET /v1/apps/{APP}/machines"]


def test_renew_expiry_moves_the_metadata_mark(fake: FakeFly) -> None:
    fake.on("POST", r"/machines/\w+/metadata/rbottle_expires_at", Reply(204))
    provider(fake, ttl_minutes=20).renew_expiry(made_machine())
    [seen] = fake.seen
    assert seen.path == f"/v1/apps/{APP}/machines/1857156b526dd8/metadata/rbottle_expires_at"
    expires = datetime.datetime.fromisoformat(seen.body["value"].replace("Z", "+00:00"))
    left = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=19) < left <= datetime.timedelta(minutes=20)
    assert_token_only_in_header(fake)
