"""The egress proxy sidecar: pipelock, configured per bottle.

Strict mode with the bottle's allowlist, DLP on request bodies and headers
(blocking), SSRF protection on (private, link-local and metadata ranges
refused), and TLS interception with an ECDSA P-256 CA made fresh for each
launch: the agent trusts its certificate, the key stays in the sidecar's vault.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.vault import Vault
from remotebottle.errors import BottleError, EngineError

PROXY_ALIAS = "egress-proxy"
PROXY_PORT = 8888
PROXY_URL = f"http://{PROXY_ALIAS}:{PROXY_PORT}"
CONFIG_DIR = "/etc/rbottle-egress"
CONFIG_PATH = f"{CONFIG_DIR}/egress/pipelock.yaml"
CA_CERT_PATH = f"{CONFIG_DIR}/egress/ca.pem"
CA_KEY_PATH = f"{CONFIG_DIR}/egress/ca-key.pem"

# Long agent sessions keep one CONNECT tunnel open for a long time (pipelock's default: 300 s).
MAX_TUNNEL_SECONDS = 24 * 3600
IDLE_TUNNEL_SECONDS = 900
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Bodies are scanned whole and refused above this (pipelock's default, 5 MB, is below a long
# Claude Code conversation with images); the Messages API itself accepts up to 32 MB.
MAX_REQUEST_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class EgressCA:
    cert_pem: bytes
    key_pem: bytes


def make_ca(identity: str, days: int = 7) -> EgressCA:
    """A fresh ECDSA P-256 CA for one bottle (pipelock rejects RSA and Ed25519 CAs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "remotebottle"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"remotebottle egress CA {identity}"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return EgressCA(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        # SEC1 ("EC PRIVATE KEY"): pipelock reads the CA key with Go's ParseECPrivateKey,
        # which refuses PKCS#8.
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def pipelock_config(allowlist: list[str], trusted: list[str] | tuple[str, ...] = ()) -> str:
    """pipelock's YAML config for one bottle.

    Args:
        allowlist: the effective allowlist (defaults plus the bottle's hosts).
        trusted: hosts that may resolve to private addresses once they are allowed (strict
            mode refuses a host off the allowlist whatever this says); empty in production,
            set by the demo and the tests for upstreams they start.
    """
    config = {
        "version": 1,
        "mode": "strict",
        "api_allowlist": list(allowlist),
        "trusted_domains": list(trusted),
        "fetch_proxy": {"listen": f"0.0.0.0:{PROXY_PORT}", "timeout_seconds": 60},
        "forward_proxy": {
            "enabled": True,
            "max_tunnel_seconds": MAX_TUNNEL_SECONDS,
            "idle_timeout_seconds": IDLE_TUNNEL_SECONDS,
        },
        "request_body_scanning": {
            "enabled": True,
            "action": "block",
            "max_body_bytes": MAX_REQUEST_BODY_BYTES,
            "scan_headers": True,
            "header_mode": "sensitive",
        },
        "dlp": {"include_defaults": True},
        # Runs of 12+ common English words pass for BIP-39 seed phrases: Claude Code's own
        # request bodies trip it, which would refuse every turn of the agent.
        "seed_phrase_detection": {"enabled": False},
        "response_scanning": {
            "enabled": True,
            "action": "warn",
            "sse_streaming": {"enabled": True, "action": "warn"},
        },
        "tls_interception": {
            "enabled": True,
            "ca_cert": CA_CERT_PATH,
            "ca_key": CA_KEY_PATH,
            "max_response_bytes": MAX_RESPONSE_BYTES,
        },
        "logging": {"format": "json", "output": "stdout"},
    }
    # JSON is valid YAML, and needs no YAML library.
    return json.dumps(config, indent=2) + "\n"


def pipelock_command() -> list[str]:
    return ["run", "--config", CONFIG_PATH, "--listen", f"0.0.0.0:{PROXY_PORT}"]


def healthcheck_command() -> list[str]:
    return ["/pipelock", "healthcheck", "--addr", f"127.0.0.1:{PROXY_PORT}"]


def current_allowlist(client: docker.DockerClient, identity: str) -> list[str]:
    """The allowlist bottle `identity`'s egress proxy runs with."""
    _running_proxy(client, identity)
    raw = Vault.attach(client, identity).read("egress", "pipelock.yaml")
    return list(json.loads(raw)["api_allowlist"])


def reload_allowlist(client: docker.DockerClient, identity: str, allowlist: list[str]) -> None:
    """Give bottle `identity`'s running egress proxy a new allowlist, without a restart: the
    config in the vault is replaced and the proxy signalled to reload it."""
    proxy = _running_proxy(client, identity)
    vault = Vault.attach(client, identity)
    config = json.loads(vault.read("egress", "pipelock.yaml"))
    config["api_allowlist"] = sorted(set(allowlist))
    vault.put("egress", {"pipelock.yaml": (json.dumps(config, indent=2) + "\n").encode()})
    try:
        proxy.kill(signal="SIGHUP")
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not signal the egress proxy: {exc}") from None


def _running_proxy(client: docker.DockerClient, identity: str) -> Any:
    found = client.containers.list(
        filters={"label": [f"{L.IDENTITY}={identity}", f"{L.ROLE}={L.ROLE_EGRESS}"]}
    )
    if not found:
        raise BottleError(
            f"bottle {identity} has no egress proxy (its egress is disabled): no allowlist to"
            " add to",
            hint="enable egress for the bottle in the manifest, then resume it",
        )
    return found[0]
