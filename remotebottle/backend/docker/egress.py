"""The egress proxy sidecar: pipelock, configured per bottle.

Strict mode with the bottle's allowlist, DLP on request bodies and headers
(blocking), SSRF protection on (private, link-local and metadata ranges
refused), and TLS interception with an ECDSA P-256 CA made fresh for each
launch: the agent trusts its certificate, the key stays in the sidecar's vault.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from remotebottle import pins
from remotebottle.backend.docker import lab
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.sidecar import (
    AgentGrant,
    SidecarSite,
    address_on,
    answers,
    later_ready,
    start_container,
)
from remotebottle.backend.docker.vault import Vault
from remotebottle.errors import BottleError, EngineError

PROXY_ALIAS = "egress-proxy"
PROXY_PORT = 8888
PROXY_URL = f"http://{PROXY_ALIAS}:{PROXY_PORT}"
METRICS_PORT = 9901
CONFIG_DIR = "/etc/rbottle-egress"
CONFIG_PATH = f"{CONFIG_DIR}/egress/pipelock.yaml"
CA_CERT_PATH = f"{CONFIG_DIR}/egress/ca.pem"
CA_KEY_PATH = f"{CONFIG_DIR}/egress/ca-key.pem"
# The bottle's own secret values, one per line: DLP refuses any request carrying one.
SECRETS_PATH = f"{CONFIG_DIR}/egress/secrets.txt"
# Extra CAs pipelock trusts for upstream TLS (a TLS-inspecting corporate gateway, the tests'
# own upstreams): Go adds every certificate in $SSL_CERT_DIR to its system bundle.
TRUST_SECTION = "egress-trust"

# Long agent sessions keep one CONNECT tunnel open for a long time (pipelock's default: 300 s).
MAX_TUNNEL_SECONDS = 24 * 3600
IDLE_TUNNEL_SECONDS = 900
FORWARD_TIMEOUT_SECONDS = 3600
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Bodies are scanned whole and refused above this (pipelock's default, 5 MB, is below a long
# Claude Code conversation with images); the Messages API itself accepts up to 32 MB.
MAX_REQUEST_BODY_BYTES = 32 * 1024 * 1024
# Per host and minute (pipelock's default, 60, refuses a `pip install` or `npm ci` midway).
MAX_REQUESTS_PER_MINUTE = 3000
# pipelock ignores explicit secrets shorter than this (false positives on short values).
MIN_SECRET_LENGTH = 16


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


def pipelock_config(
    allowlist: list[str],
    trusted: list[str] | tuple[str, ...] = (),
    *,
    with_secrets: bool = False,
) -> str:
    """pipelock's YAML config for one bottle.

    Args:
        allowlist: the effective allowlist (defaults plus the bottle's hosts).
        trusted: hosts that may resolve to private addresses once they are allowed (strict
            mode refuses a host off the allowlist whatever this says): the bottle's own
            sidecars, and the demo's and the tests' upstreams (`lab`).
        with_secrets: the vault holds the bottle's secret values at SECRETS_PATH.
    """
    dlp: dict[str, Any] = {"include_defaults": True}
    if with_secrets:
        dlp |= {"secrets_file": SECRETS_PATH, "min_env_secret_length": MIN_SECRET_LENGTH}
    config = {
        "version": 1,
        "mode": "strict",
        "api_allowlist": list(allowlist),
        "trusted_domains": list(trusted),
        # /metrics and /stats on loopback only: the agent's network sees the proxy alone.
        "metrics_listen": f"127.0.0.1:{METRICS_PORT}",
        "fetch_proxy": {
            "listen": f"0.0.0.0:{PROXY_PORT}",
            # For plain-HTTP requests this bounds the whole response, and a streamed model
            # answer through the credential proxy may last many minutes.
            "timeout_seconds": FORWARD_TIMEOUT_SECONDS,
            "monitoring": {"max_requests_per_minute": MAX_REQUESTS_PER_MINUTE},
        },
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
            # Every header, names included: a custom header carries data as well as a body.
            "header_mode": "all",
        },
        "dlp": dlp,
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
        # Container logs are on the engine's disk (a VM's too): refusals only, no allowed URLs.
        "logging": {
            "format": "json",
            "output": "stdout",
            "include_allowed": False,
            "include_blocked": True,
        },
    }
    # JSON is valid YAML, and needs no YAML library.
    return json.dumps(config, indent=2) + "\n"


def secret_values(values: Iterable[str]) -> bytes | None:
    """The secrets file: each distinct value pipelock can match exactly, one per line, or
    None when there is none (pipelock skips values under MIN_SECRET_LENGTH)."""
    kept = sorted(
        {v.strip() for v in values if len(v.strip()) >= MIN_SECRET_LENGTH and "\n" not in v}
    )
    return ("\n".join(kept) + "\n").encode() if kept else None


def trust_env() -> dict[str, str]:
    """The proxy's environment when it has extra upstream CAs in the vault."""
    return {"SSL_CERT_DIR": f"{CONFIG_DIR}/{TRUST_SECTION}"}


def pipelock_command() -> list[str]:
    return ["run", "--config", CONFIG_PATH, "--listen", f"0.0.0.0:{PROXY_PORT}"]


def healthcheck_command() -> list[str]:
    return ["/pipelock", "healthcheck", "--addr", f"127.0.0.1:{PROXY_PORT}"]


def start(
    site: SidecarSite,
    upstream_cas: Sequence[bytes],
    sidecars: Sequence[str] = (),
) -> tuple[AgentGrant, str]:
    """Start pipelock on the internal and the outside network; the agent goes through it.

    Args:
        site: the bottle being launched.
        upstream_cas: PEM CA certificates trusted for upstream TLS beyond the image's bundle.
        sidecars: the bottle's sidecars the agent reaches through the proxy, by name on
            the outside network (allowed, at their private addresses).

    Returns:
        What the agent is granted, and the proxy's address on the outside network.
    """
    plan = site.plan
    assert plan.images.egress
    site.progress("starting the egress proxy")
    ca = make_ca(plan.spec.identity)
    secrets = secret_values(
        v.value.get_secret_value()
        for v in plan.spec.env.values()
        if v.value is not None and v.source != "literal"
    )
    config = pipelock_config(
        [*plan.allowlist, *sidecars],
        (*lab.private_upstreams(plan), *sidecars),
        with_secrets=bool(secrets),
    )
    files = {"pipelock.yaml": config.encode(), "ca.pem": ca.cert_pem, "ca-key.pem": ca.key_pem}
    site.vault.put("egress", files | ({"secrets.txt": secrets} if secrets else {}))
    trust = b"".join(upstream_cas)
    if trust:
        site.vault.put(TRUST_SECTION, {"extra-cas.pem": trust})
    proxy = start_container(
        site,
        plan.images.egress,
        pipelock_command(),
        role=L.ROLE_EGRESS,
        alias=PROXY_ALIAS,
        volumes={site.vault.volume: {"bind": CONFIG_DIR, "mode": "ro"}},
        environment=trust_env() if trust else {},
        mem_limit="256m",
    )
    hint = f"pinned image {pins.pipelock_image()}"
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    grant = AgentGrant(
        env={name: PROXY_URL for name in proxies},
        ca_certs=(ca.cert_pem,),
        containers=(str(proxy.id),),
        ready=(later_ready(proxy, "the egress proxy", answers(healthcheck_command()), hint),),
    )
    assert site.outside is not None
    return grant, address_on(proxy, site.outside)


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
    found = L.find(client, role=L.ROLE_EGRESS, identity=identity, running_only=True)
    if not found:
        raise BottleError(
            f"bottle {identity} has no egress proxy (its egress is disabled): no allowlist to"
            " add to",
            hint="enable egress for the bottle in the manifest, then resume it",
        )
    return found[0]
