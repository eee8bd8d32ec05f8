"""Probes from inside a bottle on a VM: what the agent must not reach.

Two bottles run on one fake VM (Debian 13, Docker 26.1.5, the agent and its sidecars
under gVisor's runsc), each with its egress proxy. From bottle A's agent:

- DNS: names under a domain off the allowlist, looked up every way the agent has (its
  resolver, a raw query, a query sent straight to an upstream, through the proxy), never
  reach the VM's upstream resolver. The upstream is ours: every nameserver address in the
  VM's /etc/resolv.conf is made the VM's own address, where a logger answers and records
  each query. That is the path CVE-2024-29018 leaked through (Docker's embedded DNS
  forwarding an internal network's queries to the host's resolver). A container on an
  ordinary network's lookup must reach the logger: the path exists, and is watched.
- The VM's sshd and Docker socket, and 169.254.169.254 (a fake metadata service on the
  VM, answering containers on the VM's default bridge), are out of reach.
- Bottle B's agent (serving HTTP), proxy and supervisor are out of reach.

Each probe has a control that reaches the same target from where it should be reached,
so a probe cannot pass because the target is not there. The engine each test ran on is
printed and recorded (`record_property("vm_engine")`).

A last test registers runsc the way gVisor cannot run here (its own network stack, on
this kernel) on a VM of its own: the bottle falls back to runc, saying why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from remotebottle.backend.base import Bottle
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.credproxy import PORT as CRED_PORT
from remotebottle.backend.docker.engine import version_tuple
from remotebottle.backend.spec import BottlePlan, BottleSpec, Command, RouteSpec
from remotebottle.hosts.engine import Engine, open_engine
from remotebottle.ops.images import place_images
from tests.e2e.conftest import finish, rbottle
from tests.e2e.vmparts import target, vm_owned
from tests.integration.fakevm import TEST_LABEL, FakeVm, fakevm, start_fakevm

__all__ = ["fakevm"]

pytestmark = pytest.mark.e2e

log = logging.getLogger("tests.vm_probes")

EXFIL_DOMAIN = "exfil.rbottle-probe.example"
IMDS = "169.254.169.254"
IMDS_BODY = "rbottle-fake-imds"
PEER_PORT = 8000
# The agent's view of gVisor: its kernel version is gVisor's, not the VM's.
GVISOR_KERNEL = "4.4.0"

# Runs on the VM (host network, as root): answers every DNS query NXDOMAIN and prints
# it; serves the fake metadata service on 169.254.169.254:80.
UPSTREAMS = r"""
import http.server, socket, socketserver, sys, threading

def question(data):
    i, labels = 12, []
    while i < len(data) and data[i]:
        n = data[i]
        labels.append(data[i + 1 : i + 1 + n].decode(errors="replace"))
        i += 1 + n
    return ".".join(labels), i + 5

def answer(data, how):
    name, end = question(data)
    print(f"query {how} {name}", flush=True)
    return data[:2] + bytes([0x80 | (data[2] & 1), 0x83]) + data[4:6] + bytes(6) + data[12:end]

def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    while True:
        data, peer = sock.recvfrom(4096)
        if len(data) > 12:
            sock.sendto(answer(data, "udp"), peer)

class Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        size = int.from_bytes(self.request.recv(2), "big")
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return
            data += chunk
        reply = answer(data, "tcp")
        self.request.sendall(len(reply).to_bytes(2, "big") + reply)

class Imds(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(f"imds {self.client_address[0]} {self.path}", flush=True)
        body = sys.argv[1].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

socketserver.ThreadingTCPServer.allow_reuse_address = True
tcp = socketserver.ThreadingTCPServer(("0.0.0.0", 53), Tcp)
imds = http.server.ThreadingHTTPServer((sys.argv[2], 80), Imds)
for serve in (udp, tcp.serve_forever, imds.serve_forever):
    threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Runs in the agent: one JSON object saying how each probe went.
PROBE = r"""
import json, os, socket, sys

def tcp(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect((host, port))
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return f"error {exc.errno}"
    try:
        return "open " + sock.recv(32).decode(errors="replace").strip()
    except OSError:
        return "open"
    finally:
        sock.close()

def dns(server, name):
    query = os.urandom(2) + b"\x01\x00\x00\x01" + bytes(6)
    for label in name.split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\x00\x00\x01\x00\x01"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    try:
        sock.sendto(query, (server, 53))
        reply = sock.recv(512)
        return f"answered rcode {reply[3] & 0x0F}, {int.from_bytes(reply[6:8], 'big')} answers"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return f"error {exc.errno}"

probes = json.loads(sys.argv[1])
out = {}
for key, (kind, *args) in probes.items():
    out[key] = tcp(args[0], int(args[1])) if kind == "tcp" else dns(*args)
print(json.dumps(out))
"""


@dataclass
class Launched:
    plan: BottlePlan
    bottle: Bottle

    @property
    def identity(self) -> str:
        return self.plan.spec.identity


@dataclass
class Site:
    vm: FakeVm
    engine: Engine
    a: Launched
    b: Launched
    upstreams: Any  # the logger / metadata container on the VM
    nameservers: list[str]
    engine_line: str
    progress: list[str]

    @property
    def client(self) -> docker.DockerClient:
        return self.engine.client


def _spec(name: str, command: tuple[str, ...], routes: tuple[RouteSpec, ...] = ()) -> BottleSpec:
    return BottleSpec(
        identity=f"{name}-{secrets.token_hex(3)[:5]}",
        agent=name,
        bottle="probed",
        command=Command(mode="exec", argv=command),
        egress_allowlist=("allowed.rbottle-probe.example",),
        routes=routes,
        host="vm",
    )


def _trust(vm: FakeVm, home: Path) -> None:
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "known_hosts").write_text(vm.known_hosts.read_text())


def vm_root(vm: FakeVm, command: str) -> str:
    code, out = vm.sh(command, user="root")
    assert code == 0, f"{command}: {out}"
    return out


@contextlib.contextmanager
def _our_upstreams(
    vm: FakeVm, client: docker.DockerClient, image: str
) -> Iterator[tuple[Any, list[str]]]:
    """The VM's upstream resolvers and the metadata address, made the VM's own and served
    by a logger (yielded with the resolvers' addresses); all of it undone afterwards."""
    resolv = vm_root(vm, "cat /etc/resolv.conf")
    nameservers = [
        line.split()[1]
        for line in resolv.splitlines()
        if line.startswith("nameserver")
        and ":" not in line
        and not line.split()[1].startswith("127.")
    ]
    added = [*nameservers, IMDS]
    for address in added:
        vm_root(vm, f"ip addr add {address}/32 dev lo")
    container = None
    try:
        container = client.containers.run(
            image,
            ["-c", UPSTREAMS, IMDS_BODY, IMDS],
            entrypoint=["python3"],
            user="0",
            network_mode="host",
            detach=True,
            name=f"rbt-upstreams-{secrets.token_hex(3)}",
            labels={TEST_LABEL: "1"},
        )
        deadline = time.monotonic() + 30
        while "ready" not in container.logs().decode():
            container.reload()
            assert container.status == "running", container.logs().decode()
            assert time.monotonic() < deadline, "the logger did not start"
            time.sleep(0.2)
        yield container, nameservers
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        for address in added:
            vm.sh(f"ip addr del {address}/32 dev lo", user="root")


@contextlib.contextmanager
def _helper(
    client: docker.DockerClient, image: str, network: str, command: list[str]
) -> Iterator[Any]:
    """A throwaway container (runc) on `network` of the VM's engine, running `command`."""
    container = client.containers.create(
        image,
        command,
        entrypoint=[],
        user="1000",
        network=network,
        name=f"rbt-control-{secrets.token_hex(3)}",
        labels={TEST_LABEL: "1"},
    )
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)


def control(client: docker.DockerClient, image: str, network: str, *command: str) -> str:
    """Run `command` in a helper on `network` to its end: its output."""
    with _helper(client, image, network, list(command)) as helper:
        helper.start()
        helper.wait(timeout=60)
        return str(helper.logs().decode(errors="replace"))


@pytest.fixture(scope="module")
def site(
    fakevm: FakeVm,
    docker_client: docker.DockerClient,
    agent_image: str,
    pipelock_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """Bottles A (idle) and B (serving HTTP on PEER_PORT) on the shared fake VM, with our
    upstream resolver and metadata service in place before either starts."""
    home = tmp_path_factory.mktemp("probes-home")
    _trust(fakevm, home)
    progress: list[str] = []
    with pytest.MonkeyPatch.context() as patch, contextlib.ExitStack() as stack:
        patch.setenv("HOME", str(home))
        patch.setenv("REMOTEBOTTLE_HOME", str(home / "rbhome"))
        engine = stack.enter_context(
            open_engine(target(fakevm), progress=progress.append, consent=lambda _q: False)
        )
        backend = DockerBottleBackend(engine.client, progress.append)
        spec_a = _spec("probe-a", ("sleep", "infinity"))
        spec_b = _spec(
            "probe-b",
            ("python3", "-m", "http.server", str(PEER_PORT), "--bind", "0.0.0.0"),  # noqa: S104
            # A credential proxy too: a sidecar of B's that A must not reach.
            (RouteSpec(name="probe", upstream="https://api.rbottle-probe.example/"),),
        )
        plan_a = backend.prepare(spec_a)
        place_images(engine, plan_a, progress=progress.append)
        upstreams, nameservers = stack.enter_context(
            _our_upstreams(fakevm, engine.client, agent_image)
        )
        plan_b = backend.prepare(spec_b)
        launched = []
        for plan in (plan_a, plan_b):
            bottle = stack.enter_context(backend.launch(plan, LaunchOptions(tty=False)))
            backend.release(bottle)
            launched.append(Launched(bottle.plan, bottle))
        runtimes = fakevm.engine_runtimes()
        engine_line = (
            f"fake VM {fakevm.name}: Docker {fakevm.engine_version()}, runtimes "
            + ", ".join(" ".join((n, *a)) for n, a in sorted(runtimes.items()))
        )
        log.info("%s", engine_line)
        yield Site(
            fakevm,
            engine,
            launched[0],
            launched[1],
            upstreams,
            nameservers,
            engine_line,
            progress,
        )
    deadline = time.monotonic() + 10
    while (left := vm_owned(fakevm)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left on the VM: {left}"


@pytest.fixture(autouse=True)
def record_engine(
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine each probe ran on, in the junit properties and on the terminal."""
    if "site" not in request.fixturenames:
        return
    line = request.getfixturevalue("site").engine_line
    record_property("vm_engine", line)
    with capsys.disabled():
        print(f"\n[{request.node.name}] {line}")


def agent_exec(site: Site, launched: Launched, *command: str, user: str = "1000") -> str:
    container = site.client.containers.get(launched.bottle.agent_container)
    code, out = container.exec_run(list(command), user=user)
    text = out.decode(errors="replace")
    assert code == 0, f"{command}: exit {code}: {text}"
    return text


def probe(site: Site, launched: Launched, probes: dict[str, list[object]]) -> dict[str, str]:
    out = agent_exec(site, launched, "python3", "-c", PROBE, json.dumps(probes))
    result: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return result


def curl(site: Site, launched: Launched, url: str, *args: str) -> str:
    """The HTTP status curl got from the agent (000: no connection); for an https URL
    through the proxy, the proxy's answer to CONNECT."""
    status = "%{http_connect}" if url.startswith("https:") else "%{http_code}"
    script = f'curl -s -m 10 -o /dev/null -w {status} "$@" || true'
    return agent_exec(site, launched, "sh", "-c", script, "curl", *args, url).strip()


def containers_of(site: Site, launched: Launched) -> dict[str, Any]:
    found = site.client.containers.list(
        all=True, filters={"label": [f"{L.IDENTITY}={launched.identity}"]}
    )
    return {c.labels[L.ROLE]: c for c in found}


def address_on(container: Any, network_part: str) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return str(next(v["IPAddress"] for k, v in networks.items() if k.endswith(network_part)))


def vm_addresses(vm: FakeVm) -> list[str]:
    """Every IPv4 address of the VM (loopback, its uplink, each bridge's gateway)."""
    out = vm_root(vm, "ip -4 -o addr show")
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()})


def assert_under_gvisor(site: Site, launched: Launched) -> None:
    agent = site.client.containers.get(launched.bottle.agent_container)
    assert agent.attrs["HostConfig"]["Runtime"] == "runsc", site.engine_line
    assert agent_exec(site, launched, "uname", "-r").strip() == GVISOR_KERNEL


def opened(results: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in results.items() if v.startswith("open")}


# -- the engine and the runtime ------------------------------------------------------


def test_the_agent_and_its_sidecars_run_under_gvisor_on_docker_26(site: Site) -> None:
    version = site.vm.engine_version()
    assert version_tuple(version) >= (25, 0, 5), site.engine_line
    for launched in (site.a, site.b):
        plan = launched.plan
        assert plan.runtime == "runsc" and plan.runtime_args == ("--network=host",)
        assert plan.engine is not None and plan.engine.gvisor == "works"
        assert not plan.engine.leaks_internal_dns
        assert not any("CVE-2024-29018" in w for w in plan.warnings), plan.warnings
        runtimes = {
            role: c.attrs["HostConfig"]["Runtime"]
            for role, c in containers_of(site, launched).items()
        }
        expected = {
            L.ROLE_AGENT: "runsc",
            L.ROLE_EGRESS: "runsc",
            L.ROLE_SUPERVISOR: "runsc",
            L.ROLE_SECRETS: "runc",
        }
        if launched.plan.spec.routes:
            expected[L.ROLE_CRED_PROXY] = "runsc"
        assert runtimes == expected
        assert_under_gvisor(site, launched)
    vm_kernel = vm_root(site.vm, "uname -r").strip()
    assert vm_kernel != GVISOR_KERNEL
    said = [line for line in site.progress if line.startswith("engine: ")]
    assert said and all(
        f"Docker {version} (CVE-2024-29018 fixed)" in line
        and "runsc --network=host (gVisor) for the agent and its sidecars" in line
        for line in said
    ), said


# -- DNS --------------------------------------------------------------------------


def queries(site: Site) -> list[str]:
    logs = site.upstreams.logs().decode(errors="replace")
    return [line.split()[2] for line in logs.splitlines() if line.startswith("query ")]


def test_dns_lookups_off_the_allowlist_reach_no_resolver_outside(site: Site) -> None:
    assert_under_gvisor(site, site.a)
    token = secrets.token_hex(4)
    name = f"{{}}-{token}.{EXFIL_DOMAIN}"
    uplink = vm_root(site.vm, "ip -4 -o addr show dev eth0").split()[3].split("/")[0]
    outside = sorted({*site.nameservers, uplink, "127.0.0.11"})
    agent_results = probe(
        site,
        site.a,
        {
            f"raw via {server}": ["dns", server, name.format(f"raw{i}")]
            for i, server in enumerate(outside)
        },
    )
    lookup = agent_exec(
        site, site.a, "sh", "-c", f"getent hosts {name.format('getent')} || echo no-answer"
    )
    through_proxy = {
        "https": curl(site, site.a, f"https://{name.format('connect')}/"),
        "http": curl(site, site.a, f"http://{name.format('plain')}/"),
    }
    # The control: a container on an ordinary network of the VM's engine, whose lookup
    # Docker forwards to the VM's upstream, which is our logger.
    control_name = f"control-{secrets.token_hex(4)}.{EXFIL_DOMAIN}"
    network = site.client.networks.create(
        f"rbt-dns-control-{secrets.token_hex(3)}", driver="bridge", labels={TEST_LABEL: "1"}
    )
    try:
        seen = control(
            site.client,
            site.a.plan.images.agent,
            network.id,
            "sh",
            "-c",
            f"getent hosts {control_name} || echo no-answer",
        )
    finally:
        network.remove()
    deadline = time.monotonic() + 15
    while control_name not in queries(site) and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = queries(site)
    assert control_name in logged, f"the control's lookup never reached the logger: {seen}"
    leaked = [q for q in logged if token in q]
    assert leaked == [], f"reached the VM's upstream resolver: {leaked} ({site.engine_line})"
    assert "no-answer" in lookup
    resolved = {
        k: v for k, v in agent_results.items() if v.startswith("answered") and ", 0 " not in v
    }
    assert resolved == {}, agent_results
    assert through_proxy == {"https": "403", "http": "403"}, through_proxy


# -- the VM itself ------------------------------------------------------------------


def test_the_vms_sshd_and_docker_socket_are_out_of_reach(site: Site) -> None:
    assert_under_gvisor(site, site.a)
    addresses = vm_addresses(site.vm)
    assert "127.0.0.1" in addresses and len(addresses) >= 4, addresses
    listening = vm_root(site.vm, "ss -ltnH")
    assert any(line.split()[3] in ("0.0.0.0:22", "*:22") for line in listening.splitlines())
    results = probe(
        site,
        site.a,
        {
            f"{address}:{port}": ["tcp", address, port]
            for address in addresses
            for port in (22, 2375, 2376)
        },
    )
    assert opened(results) == {}, (results, site.engine_line)
    gateway = vm_root(
        site.vm, "docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}'"
    ).strip()
    assert curl(site, site.a, f"http://{gateway}:22/") == "403"
    # The control: a container on the VM's default bridge reaches that sshd.
    banner = control(
        site.client,
        site.a.plan.images.agent,
        "bridge",
        "python3",
        "-c",
        f"import socket; s = socket.create_connection(('{gateway}', 22), 5); print(s.recv(8))",
    )
    assert "SSH-" in banner, banner
    agent = site.client.containers.get(site.a.bottle.agent_container)
    mounts = [m.get("Source", "") + " " + m.get("Destination", "") for m in agent.attrs["Mounts"]]
    assert not any("docker.sock" in m for m in mounts), mounts
    inside = agent_exec(
        site,
        site.a,
        "sh",
        "-c",
        "ls -d /var/run/docker.sock /run/docker.sock 2>/dev/null; grep -c docker.sock"
        " /proc/self/mountinfo; printenv DOCKER_HOST; true",
    )
    assert inside.split() == ["0"], inside


def test_the_metadata_address_is_out_of_reach(site: Site) -> None:
    assert_under_gvisor(site, site.a)
    url = f"http://{IMDS}/latest/meta-data/"
    seen = control(site.client, site.a.plan.images.agent, "bridge", "curl", "-s", "-m", "10", url)
    assert seen == IMDS_BODY, f"the fake metadata service did not answer the control: {seen!r}"
    assert curl(site, site.a, url, "--noproxy", "*") == "000"
    assert curl(site, site.a, url) == "403"
    results = probe(site, site.a, {"direct": ["tcp", IMDS, 80]})
    assert opened(results) == {}, results
    served = [
        line for line in site.upstreams.logs().decode().splitlines() if line.startswith("imds ")
    ]
    assert len(served) == 1, served  # the control's request only


# -- the other bottle -------------------------------------------------------------------


def test_a_second_bottle_on_the_vm_is_out_of_reach(site: Site) -> None:
    assert_under_gvisor(site, site.a)
    assert_under_gvisor(site, site.b)
    theirs = containers_of(site, site.b)
    peer = address_on(theirs[L.ROLE_AGENT], "-internal")
    targets = {
        "agent": (peer, PEER_PORT),
        "proxy (internal)": (address_on(theirs[L.ROLE_EGRESS], "-internal"), 8888),
        "proxy (egress)": (address_on(theirs[L.ROLE_EGRESS], "-egress"), 8888),
        "supervisor": (address_on(theirs[L.ROLE_SUPERVISOR], "-internal"), 8090),
        "credential proxy": (address_on(theirs[L.ROLE_CRED_PROXY], "-egress"), CRED_PORT),
    }
    internal = next(
        n
        for n in theirs[L.ROLE_AGENT].attrs["NetworkSettings"]["Networks"]
        if n.endswith("-internal")
    )
    # The control: a container on B's own network reaches B's agent.
    seen = control(
        site.client,
        site.a.plan.images.agent,
        internal,
        "curl",
        "-s",
        "-m",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"http://{peer}:{PEER_PORT}/",
    )
    assert seen == "200", f"bottle B's agent does not serve: {seen!r}"
    results = probe(
        site, site.a, {name: ["tcp", address, port] for name, (address, port) in targets.items()}
    )
    assert opened(results) == {}, (results, site.engine_line)
    assert curl(site, site.a, f"http://{peer}:{PEER_PORT}/") == "403"


# -- the CLI on the VM ------------------------------------------------------------------


def test_start_and_doctor_on_the_vm_say_the_engine_and_the_runtime(
    site: Site, isolated_home: Path, write_manifest: Callable[..., Path]
) -> None:
    _trust(site.vm, isolated_home)
    project = write_manifest(
        {
            "bottles": {"sealed": {"egress": {"enabled": False}}},
            "agents": {"worker": {"bottle": "sealed"}},
            "hosts": {"vm": site.vm.hosts_entry()},
        }
    ).parent
    argv = ("start", "worker", "--host", "vm", "--yes", "--", "uname", "-r")
    code, out, err = finish(rbottle(project, *argv), timeout=600)
    assert code == 0, err
    assert out.strip() == GVISOR_KERNEL, out
    version = site.vm.engine_version()
    assert f"engine: Docker {version} (CVE-2024-29018 fixed)" in err, err
    assert "runsc --network=host (gVisor)" in err
    assert not [line for line in err.splitlines() if "warning" in line and "CVE" in line]

    code, out, err = finish(rbottle(project, "doctor", "--host", "vm", "--format=json"))
    report = json.loads(out)
    assert report["engine"] == {
        "version": version,
        "cve_2024_29018": "fixed",
        "runtimes": {"runc": [], "runsc": ["--network=host"]},
        "gvisor": "works",
        "gvisor_reason": None,
    }, report
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["CVE-2024-29018"]["status"] == "ok"
    assert checks["gvisor"]["status"] == "ok"
    assert checks["runtimes"]["detail"] == "runc, runsc --network=host"
    code, table, err = finish(rbottle(project, "doctor", "--host", "vm"))
    assert f"Docker {version}" in table and "runsc --network=host" in table, table + err


# -- a runsc that cannot run -------------------------------------------------------------


def test_a_runsc_that_cannot_run_here_falls_back_to_runc_saying_why(
    docker_client: docker.DockerClient,
    agent_image: str,
    isolated_home: Path,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """runsc registered without --network=host: Debian 13's runsc refuses its own network
    stack on this kernel (google/gvisor#10704). The VM has no image yet, so planning cannot
    run the check: the launch runs it on the shipped agent image and falls back."""
    with start_fakevm(docker_client, tmp_path / "vm") as vm:
        line = f"fake VM {vm.name}: Docker {vm.engine_version()}, runsc registered bare"
        record_property("vm_engine", line)
        with capsys.disabled():
            print(f"\n[{line}]")
        vm_root(
            vm,
            'printf \'%s\' \'{"runtimes": {"runsc": {"path": "/usr/bin/runsc"}}}\''
            " >/etc/docker/daemon.json && kill -HUP $(cat /var/run/docker.pid)",
        )
        deadline = time.monotonic() + 20
        while vm.engine_runtimes().get("runsc") != [] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert vm.engine_runtimes().get("runsc") == [], vm.engine_runtimes()
        _trust(vm, isolated_home)
        progress: list[str] = []
        with open_engine(target(vm), progress=progress.append, consent=lambda _q: False) as engine:
            backend = DockerBottleBackend(engine.client, progress.append)
            spec = replace(_spec("fallback", ("uname", "-r")), egress_enabled=False)
            plan = backend.prepare(spec)
            assert plan.runtime == "runsc" and plan.engine is not None
            assert plan.engine.gvisor == "unchecked"
            place_images(engine, plan, progress=progress.append)
            with backend.launch(plan, LaunchOptions(tty=False)) as bottle:
                agent = engine.client.containers.get(bottle.agent_container)
                assert agent.attrs["HostConfig"]["Runtime"] == "runc"
                backend.release(bottle)
                agent.wait(timeout=60)
                kernel = agent.logs().decode().strip()
            fell_back = bottle.plan
            again = backend.prepare(spec)  # the check is remembered for this engine
        assert kernel == vm_root(vm, "uname -r").strip()
        assert fell_back.runtime == "runc" and again.runtime == "runc"
        assert fell_back.engine is not None and fell_back.engine.gvisor == "fails"
        for warning in (fell_back.warnings[-1], again.warnings[-1]):
            assert "gVisor (runsc) is registered on the engine but a container did not run" in (
                warning
            )
            assert "cannot run with network enabled in root network namespace" in warning
            assert "google/gvisor#10704" in warning and "--network=host" in warning
        assert any(line.startswith("warning: gVisor (runsc)") for line in progress), progress
        assert not vm_owned(vm)
