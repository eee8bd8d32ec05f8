"""Docker Engine on an SSH host: check that the login user can use it, install it if not.

The scripts are `provisioning/check-docker.sh` (runs as the login user, changes nothing)
and `provisioning/install-docker.sh` (runs as root through `sudo -n`, idempotent),
packaged as `remotebottle/resources/provisioning/`. Both reach the host on stdin, never
as files; the install script's `rbottle-provision:` lines are relayed as they arrive.
"""

from __future__ import annotations

import collections
import shlex
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING

from remotebottle.errors import ConnectError, HostError, ProvisionError

if TYPE_CHECKING:  # paramiko is imported by the SSH modules only when a host is remote
    from remotebottle.transport.ssh import SshConnection

SCRIPTS_DIR = "resources/provisioning"  # a link to the repository's provisioning/
CHECK_PREFIX = "rbottle-check: "
PROGRESS_PREFIX = "rbottle-provision: "
ERROR_PREFIX = PROGRESS_PREFIX + "error: "
CHECK_TIMEOUT = 60.0
INSTALL_TIMEOUT = 1200.0
PROVISION_LOG = "/var/log/rbottle-provision.log"
# The exit status the install command uses when neither root nor `sudo -n` is available.
_NO_SUDO = 97
_TAIL_LINES = 20


def provisioning_script(name: str) -> str:
    """The text of a script from `provisioning/`, as shipped with the package.

    Raises:
        ProvisionError: the installation lacks it.
    """
    try:
        return resources.files("remotebottle").joinpath(SCRIPTS_DIR, name).read_text()
    except OSError:
        raise ProvisionError(
            f"rbottle is installed without its provisioning script {name}",
            hint="reinstall rbottle (pip install --force-reinstall remotebottle)",
        ) from None


def engine_state(conn: SshConnection, docker_socket: str) -> tuple[str, str]:
    """Whether the login user can use the engine on `docker_socket`: one command on the host.

    Returns:
        (state, detail): "ready" (detail: the engine's version), "no-access" (the socket
        is there, the user may not open it), "not-running" or "missing" (no dockerd).

    Raises:
        ProvisionError: the check printed no state.
        HostError: it did not finish in time.
        ConnectError: the connection is gone.
    """
    status, out, err = conn.run(
        f"sh -s -- {shlex.quote(docker_socket)}",
        input=provisioning_script("check-docker.sh").encode(),
        timeout=CHECK_TIMEOUT,
    )
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith(CHECK_PREFIX):
            state, _, detail = line.removeprefix(CHECK_PREFIX).strip().partition(" ")
            return state, detail
    said = (err or out).decode(errors="replace").strip().splitlines()
    raise ProvisionError(
        f"cannot check Docker Engine on {conn.target.name}:"
        f" {said[-1] if said else f'the check exited with status {status}'}",
        hint="rbottle needs a POSIX `sh` on the host",
    )


def ensure_docker(
    conn: SshConnection,
    *,
    docker_socket: str,
    consent: Callable[[str], bool],
    progress: Callable[[str], None],
) -> bool:
    """Make sure the login user can use Docker Engine on `docker_socket`.

    When it cannot, ask `consent`, then run `install-docker.sh` as root (`sudo -n`): it
    installs Debian's docker.io if needed, starts the engine and adds the user to the
    docker group. Its progress goes to `progress`.

    Returns:
        False if the engine was usable already; True if something changed on the host.
        Group membership is fixed at login: after True, connect again before using it.

    Raises:
        ProvisionError: consent refused, no passwordless sudo, or the script failed.
        HostError: a step did not finish in time.
        ConnectError: the connection is gone.
    """
    host, user = conn.target.name, conn.target.user
    state, _ = engine_state(conn, docker_socket)
    if state == "ready":
        return False
    if state == "no-access":
        question = f"{user} may not use Docker Engine on {host}: add {user} to the docker group?"
    elif state == "not-running":
        question = f"Docker Engine is installed on {host} but not running: start it?"
    else:
        question = (
            f"Docker Engine is not running on {host}:"
            " install and start it (apt-get install docker.io)?"
        )
    if not consent(question):
        raise ProvisionError(
            f"Docker Engine on {host} is not usable by {user}, and rbottle was not allowed"
            " to set it up",
            hint="answer yes (or pass --yes), or install Docker Engine on the host yourself",
        )
    progress(f"setting up Docker Engine on {host} (sudo -n)")
    _run_install(conn, docker_socket, progress)
    return True


def _run_install(conn: SshConnection, docker_socket: str, progress: Callable[[str], None]) -> None:
    host, user = conn.target.name, conn.target.user
    args = f"{shlex.quote(user)} {shlex.quote(docker_socket)}"
    # `sh -c` so that the login shell's syntax does not matter; `sudo -n true` first so
    # that "no passwordless sudo" is told apart from a failing script.
    command = "sh -c " + shlex.quote(
        f'if [ "$(id -u)" = 0 ]; then exec sh -s -- {args}; fi; '
        f"sudo -n true 2>/dev/null || exit {_NO_SUDO}; "
        f"exec sudo -n sh -s -- {args}"
    )

    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)

    def relay(line: str) -> None:
        tail.append(line)
        if line.startswith(PROGRESS_PREFIX) and not line.startswith(ERROR_PREFIX):
            progress(f"{host}: {line.removeprefix(PROGRESS_PREFIX)}")

    script = provisioning_script("install-docker.sh").encode()
    try:
        status = conn.stream(command, input=script, on_line=relay, timeout=INSTALL_TIMEOUT)
    except ConnectError:
        raise
    except HostError:  # what is left of it: the script ran past INSTALL_TIMEOUT
        raise ProvisionError(
            f"setting up Docker Engine on {host} did not finish within {INSTALL_TIMEOUT:g}s",
            hint=f"see {PROVISION_LOG} on the host",
        ) from None
    if status == 0:
        return
    no_sudo_hint = (
        f"rbottle installs Docker with `sudo -n`: give {user} passwordless sudo,"
        f" or install Docker Engine yourself and add {user} to the docker group"
    )
    if status == _NO_SUDO:
        raise ProvisionError(
            f"cannot set up Docker Engine on {host}: {user} has no passwordless sudo",
            hint=no_sudo_hint,
        )
    errors = [line.removeprefix(ERROR_PREFIX) for line in tail if line.startswith(ERROR_PREFIX)]
    reason = errors[-1] if errors else (tail[-1] if tail else f"exit status {status}")
    sudo_refused = any(
        line.startswith("sudo:") or "not allowed to execute" in line for line in tail
    )
    raise ProvisionError(
        f"setting up Docker Engine on {host} failed: {reason}",
        hint=no_sudo_hint if sudo_refused and not errors else f"see {PROVISION_LOG} on {host}",
    )
