"""`KnownHostKey` as ssh_config users write it: a bare key or a known_hosts line."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from remotebottle import hostkeys

pytestmark = pytest.mark.unit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


def hashed(name: str, salt: bytes = b"salt-of-twenty-bytes") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_a_bare_key_applies_to_any_host() -> None:
    key = hostkeys.parse(f"{KEY} me@laptop")
    assert key.key == KEY and key.hosts == ()
    assert hostkeys.names(key, "anything.test", 2222)


@pytest.mark.parametrize(
    ("hosts", "hostname", "port", "applies"),
    [
        ("gitea.example.test", "gitea.example.test", 22, True),
        ("GITEA.example.test", "gitea.example.test", 22, True),
        ("other.test,gitea.example.test", "gitea.example.test", 22, True),
        ("gitea.example.test", "gitea.example.test", 2222, False),
        ("[gitea.example.test]:2222", "gitea.example.test", 2222, True),
        ("[gitea.example.test]:2222", "gitea.example.test", 22, False),
        ("*.example.test", "gitea.example.test", 22, True),
        ("*.example.test,!gitea.example.test", "gitea.example.test", 22, False),
        ("gite?.example.test", "gitea.example.test", 22, True),
        (hashed("gitea.example.test"), "gitea.example.test", 22, True),
        (hashed("[gitea.example.test]:2222"), "gitea.example.test", 2222, True),
        (hashed("other.test"), "gitea.example.test", 22, False),
    ],
)
def test_a_known_hosts_line_applies_to_the_hosts_it_names(
    hosts: str, hostname: str, port: int, applies: bool
) -> None:
    key = hostkeys.parse(f"{hosts} {KEY}")
    assert key.key == KEY
    assert hostkeys.names(key, hostname, port) is applies


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("not a key", "expected 'ssh-ed25519 AAAA...' or a known_hosts line"),
        (f"@cert-authority *.example.test {KEY}", "a '@cert-authority' line is not accepted"),
        (f"@revoked host.test {KEY}", "a '@revoked' line is not accepted"),
        ("ssh-ed25519 AAAA", "not valid base64 key data"),
        ("ssh-ed25519 not*base64", "not valid base64 key data"),
        ("ssh-rsa " + KEY.split()[1], "the key says ssh-rsa but its data holds a 'ssh-ed25519'"),
        (f"ssh-ed25519-cert-v01@openssh.com {KEY.split()[1]}", "key types: ecdsa-sha2"),
    ],
)
def test_anything_else_is_refused_naming_the_accepted_forms(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        hostkeys.parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
