"""Bench: the Docker tunnel (one paramiko transport, direct-streamlocal channels) vs the rest.

All figures come from one run against one fake VM (sshd + its own dockerd in a container
on the local engine, reached over 127.0.0.1), so the network costs nothing and what is
measured is the per-request overhead of each path:

- API ping round trip, median of N: the local engine's socket; our tunnel; docker-py
  `ssh://` (paramiko, and `use_ssh_client=True`, which starts `ssh` per connection); and the
  docker CLI against the local socket, our tunnel's socket, and `-H ssh://`.
- Bulk: `get_archive` of a 50 MB file from a container on the VM through our tunnel, vs
  plain OpenSSH `ssh host cat` of the same file, vs `cat` over our own paramiko transport.

A temporary HOME holds the ssh config for docker-py, and a wrapper `ssh` on PATH adds
`-F <config>` for the OpenSSH client (which reads the passwd home, not $HOME); the real
~/.ssh is never read or written.

    python bench/tunnel.py [--n 50] [--cli-n 10] [--size-mb 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from remotebottle.transport.docker_tunnel import DockerTunnel
from tests.integration.fakevm import BASE_IMAGE, FakeVm, start_fakevm

ALIAS = "rbt-bench-vm"


def median_ms(fn: Callable[[], object], n: int) -> float:
    fn()  # warm: connections, pools, sessions
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def median_mbps(fn: Callable[[], int], rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        size = fn()
        rates.append(size / (time.perf_counter() - start) / 1e6)
    return statistics.median(rates)


def ssh_setup(vm: FakeVm, workdir: Path) -> dict[str, str]:
    """A HOME with ~/.ssh/config for docker-py and a PATH whose `ssh` uses that config."""
    home = workdir / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    config = home / ".ssh" / "config"
    config.write_text(
        f"Host {ALIAS}\n  HostName {vm.host}\n  Port {vm.port}\n  User {vm.user}\n"
        f"  IdentityFile {vm.key_path}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {vm.known_hosts}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  LogLevel ERROR\n"
    )
    (home / ".ssh" / "known_hosts").write_text(vm.known_hosts.read_text())
    wrapper_dir = workdir / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return {"HOME": str(home), "PATH": f"{wrapper_dir}:{os.environ['PATH']}"}


def cli(env: dict[str, str], host: str) -> Callable[[], object]:
    args = ["docker", "-H", host, "version", "--format", "{{.Server.Version}}"]
    return lambda: subprocess.run(args, env=env, check=True, capture_output=True, timeout=120)


def drain_archive(client: docker.DockerClient, container_id: str, path: str) -> int:
    stream, _ = client.api.get_archive(container_id, path, chunk_size=1024 * 1024)
    return sum(len(chunk) for chunk in stream)


def drain_process(args: list[str], env: dict[str, str]) -> int:
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        total = 0
        while chunk := proc.stdout.read(1024 * 1024):
            total += len(chunk)
    if proc.returncode:
        raise RuntimeError(f"{args} exited {proc.returncode}")
    return total


def drain_exec(transport: paramiko.Transport, command: str) -> int:
    chan = transport.open_session()
    try:
        chan.exec_command(command)
        total = 0
        while chunk := chan.recv(1024 * 1024):
            total += len(chunk)
        return total
    finally:
        chan.close()


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs, {model}; Python {platform.python_version()},"
        f" paramiko {paramiko.__version__}, docker-py {docker.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="pings per in-process path")
    parser.add_argument("--cli-n", type=int, default=10, help="runs per docker CLI path")
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="bulk transfers per path")
    args = parser.parse_args()

    local = docker.from_env(timeout=120)
    with tempfile.TemporaryDirectory(prefix="rbt-bench-") as tmp:
        work = Path(tmp)
        print("starting a fake VM (sshd + dockerd) ...", file=sys.stderr)
        with (
            start_fakevm(local, work / "vm", load_images=(BASE_IMAGE,)) as vm,
            vm.connect() as conn,
            DockerTunnel(conn, name="bench") as tunnel,
        ):
            run(args, local, vm, conn.transport, tunnel, work)


def fresh_ping(client: docker.DockerClient) -> None:
    """A ping on a new connection (the server closes it after answering)."""
    api = client.api
    response = api._get(api._url("/_ping"), headers={"Connection": "close"})
    response.raise_for_status()
    response.close()


def exec_true(client: docker.DockerClient, container_id: str) -> None:
    """exec create + start (a hijacked, never pooled connection) + inspect."""
    exec_id = client.api.exec_create(container_id, ["true"])["Id"]
    client.api.exec_start(exec_id)
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 0


def table(title: str, unit: str, rows: list[tuple[str, float]], versus: str) -> None:
    base = rows[0][1]
    print(f"\n{title:<38} {unit:>8} {versus:>10}")
    for label, value in rows:
        print(f"{label:<38} {value:8.2f} {value / base:10.2f}")


def run(
    args: argparse.Namespace,
    local: docker.DockerClient,
    vm: FakeVm,
    transport: paramiko.Transport,
    tunnel: DockerTunnel,
    work: Path,
) -> None:
    env = os.environ | ssh_setup(vm, work)
    engine = local.version()["Version"]
    # docker-py's ssh:// reads ~/.ssh/config from $HOME, runs `ssh` from $PATH (at each new
    # connection), and puts port 22 into a URL that has none (ignoring the config's Port).
    saved = {k: os.environ[k] for k in ("HOME", "PATH")}
    os.environ.update({k: env[k] for k in saved})
    try:
        measure(args, local, vm, transport, tunnel, env, engine)
    finally:
        os.environ.update(saved)


def measure(
    args: argparse.Namespace,
    local: docker.DockerClient,
    vm: FakeVm,
    transport: paramiko.Transport,
    tunnel: DockerTunnel,
    env: dict[str, str],
    engine: str,
) -> None:
    remote = tunnel.client(timeout=120)
    via_paramiko = docker.DockerClient(base_url=f"ssh://{ALIAS}:{vm.port}", timeout=120)
    via_ssh = docker.DockerClient(
        base_url=f"ssh://{ALIAS}:{vm.port}", use_ssh_client=True, timeout=120
    )
    size = args.size_mb * 1024 * 1024
    blob = "/home/admin/rbt-bench-blob"
    code, _ = vm.sh(f"head -c {size} /dev/urandom > {blob}")
    assert code == 0, "could not write the bench file on the VM"
    label = {"io.remotebottle.test": "1"}
    on_vm = remote.containers.run(
        BASE_IMAGE,
        ["sleep", "3600"],
        detach=True,
        volumes={blob: {"bind": "/data/blob", "mode": "ro"}},
        labels=label,
    )
    on_local = local.containers.run(
        BASE_IMAGE, ["sleep", "3600"], detach=True, network_mode="none", labels=label
    )
    try:
        n, cli_n, rounds = args.n, args.cli_n, args.rounds
        print(f"pings and execs, median of {n} ...", file=sys.stderr)
        kept = [
            ("local socket", median_ms(local.api.ping, n)),
            ("rbottle tunnel", median_ms(remote.api.ping, n)),
            ("docker-py ssh:// (paramiko)", median_ms(via_paramiko.api.ping, n)),
            ("docker-py ssh:// (ssh client)", median_ms(via_ssh.api.ping, n)),
        ]
        fresh = [
            ("local socket", median_ms(lambda: fresh_ping(local), n)),
            ("rbottle tunnel", median_ms(lambda: fresh_ping(remote), n)),
            ("docker-py ssh:// (paramiko)", median_ms(lambda: fresh_ping(via_paramiko), n)),
        ]
        execs = [
            ("local socket", median_ms(lambda: exec_true(local, on_local.id), n)),
            ("rbottle tunnel", median_ms(lambda: exec_true(remote, on_vm.id), n)),
            (
                "docker-py ssh:// (paramiko)",
                median_ms(lambda: exec_true(via_paramiko, on_vm.id), n),
            ),
        ]
        print(f"docker CLI, median of {cli_n} ...", file=sys.stderr)
        local_url = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        clis = [
            ("docker version, local socket", median_ms(cli(env, local_url), cli_n)),
            ("docker version, rbottle tunnel", median_ms(cli(env, tunnel.url), cli_n)),
            ("docker version, -H ssh://", median_ms(cli(env, f"ssh://{ALIAS}"), cli_n)),
        ]
        print(f"bulk: {args.size_mb} MB x {rounds} per path ...", file=sys.stderr)
        path = "/data/blob"
        bulk = [
            (
                "OpenSSH: ssh host cat",
                median_mbps(lambda: drain_process(["ssh", ALIAS, "cat", blob], env), rounds),
            ),
            (
                "paramiko exec cat (our transport)",
                median_mbps(lambda: drain_exec(transport, f"cat {blob}"), rounds),
            ),
            (
                "rbottle tunnel: get_archive",
                median_mbps(lambda: drain_archive(remote, on_vm.id, path), rounds),
            ),
            (
                "docker-py ssh://: get_archive",
                median_mbps(lambda: drain_archive(via_paramiko, on_vm.id, path), rounds),
            ),
        ]
    finally:
        on_vm.remove(force=True)
        on_local.remove(force=True)
        via_paramiko.close()
        via_ssh.close()
        remote.close()

    print(f"\nmachine: {machine()}; engine {engine}; fake VM on loopback")
    table("API ping, kept-alive connection", "ms", kept, "x local")
    table("API ping, fresh connection", "ms", fresh, "x local")
    table("exec `true` (create, start, inspect)", "ms", execs, "x local")
    table("docker CLI (one process per call)", "ms", clis, "x local")
    table(f"bulk read of {args.size_mb} MB", "MB/s", bulk, "x OpenSSH")
    print(
        "\ndocker-py ssh:// (paramiko) takes, of the tunnel's time:"
        f" {fresh[2][1] / fresh[1][1]:.1f}x on a fresh connection,"
        f" {execs[2][1] / execs[1][1]:.1f}x per exec,"
        f" {kept[2][1] / kept[1][1]:.2f}x per kept-alive ping;"
        f" its ssh-client mode {kept[3][1] / kept[1][1]:.0f}x."
        f" docker CLI -H ssh:// takes {clis[2][1] / clis[1][1]:.1f}x the CLI over the tunnel."
    )


if __name__ == "__main__":
    main()
