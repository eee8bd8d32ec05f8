"""A cloud VM's first boot: the user-data rbottle gives it (`cloud-init/user-data.yaml`:
Docker, the login user, the dead-man timer) and the SSH host key cloud-init prints to its
console, which the provider's authenticated API hands back before the first connection.
"""

from __future__ import annotations

import base64
import re
from importlib import resources
from pathlib import Path

from remotebottle.errors import ProvisionError

USER_DATA = "cloud-init/user-data.yaml"
HOST_KEYS_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
HOST_KEYS_END = "-----END SSH HOST KEY KEYS-----"


def host_key_from_console(text: str) -> str | None:
    """The ed25519 host key cloud-init printed to the console, as `ssh-ed25519 AAAA...`.

    The last complete `BEGIN/END SSH HOST KEY KEYS` block wins (the latest boot).
    """
    blocks = re.findall(
        re.escape(HOST_KEYS_BEGIN) + r"(.*?)" + re.escape(HOST_KEYS_END), text, re.DOTALL
    )
    for block in reversed(blocks):
        for line in block.splitlines():
            # Console lines may carry a kernel/serial prefix such as "[   42.1] ci-info: ".
            m = re.search(r"ssh-ed25519 (AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+={0,2})", line)
            if m and _is_ed25519_blob(m.group(1)):
                return f"ssh-ed25519 {m.group(1)}"
    return None


def _is_ed25519_blob(text: str) -> bool:
    """string "ssh-ed25519" + string of a 32-byte key: 4 + 11 + 4 + 32 bytes."""
    try:
        blob = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return len(blob) == 51 and blob[:15] == b"\x00\x00\x00\x0bssh-ed25519"


def render_user_data(ttl_minutes: int, login_user: str) -> str:
    """`cloud-init/user-data.yaml` with its placeholders filled in."""
    text = _user_data_template()
    text = text.replace("{{ttl_minutes}}", str(int(ttl_minutes)))
    text = text.replace("{{login_user}}", login_user)
    if "{{" in text:
        raise ProvisionError(f"{USER_DATA} has a placeholder rbottle does not fill")
    return text


def _user_data_template() -> str:
    # Packaged as `remotebottle/resources/cloud-init/` (a link, like provisioning/); the
    # repository copy serves an editable checkout where that link is missing.
    try:
        return (
            resources.files("remotebottle").joinpath("resources", *USER_DATA.split("/")).read_text()
        )
    except OSError:
        pass
    try:
        return (Path(__file__).resolve().parents[2] / USER_DATA).read_text()
    except OSError:
        raise ProvisionError(
            f"rbottle is installed without its {USER_DATA}",
            hint="reinstall rbottle (pip install --force-reinstall remotebottle)",
        ) from None
