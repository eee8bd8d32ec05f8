"""Pure parts of the Docker backend: pipelock config, the egress CA, provisioning, images."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import SecretStr

from remotebottle.backend.docker import egress, provision
from remotebottle.backend.docker.images import EXTRA_CA_ENV, agent_image, extra_ca_certs
from remotebottle.backend.spec import BottleSpec, Command, Secretish
from remotebottle.demo import fake_aws_key, probes
from remotebottle.errors import BottleError

pytestmark = pytest.mark.unit


def spec(**kwargs: object) -> BottleSpec:
    fields: dict[str, object] = {"identity": "t-abcde", "agent": "t", "bottle": "b"}
    fields.update(kwargs)
    return BottleSpec(**fields)  # type: ignore[arg-type]


def test_pipelock_config_is_strict_and_blocks() -> None:
    config = json.loads(egress.pipelock_config(["a.test", "b.test"], trusted=["b.test", "evil"]))
    assert config["mode"] == "strict"
    assert config["api_allowlist"] == ["a.test", "b.test"]
    # Trusted past SSRF, but reachable only once allowed (the live-apply e2e test shows it).
    assert config["trusted_domains"] == ["b.test", "evil"]
    assert config["forward_proxy"]["enabled"] is True
    assert config["forward_proxy"]["max_tunnel_seconds"] >= 3600
    body = config["request_body_scanning"]
    assert (body["enabled"], body["action"], body["scan_headers"]) == (True, "block", True)
    assert body["header_mode"] == "all"  # any header can carry data, not only auth headers
    assert config["dlp"] == {"include_defaults": True}  # no secrets file unless there are any
    # Allowed URLs stay out of container logs, which the engine keeps on disk.
    assert config["logging"]["include_allowed"] is False
    assert config["logging"]["include_blocked"] is True
    assert config["fetch_proxy"]["monitoring"]["max_requests_per_minute"] >= 1000
    # Claude Code's own prompts pass for BIP-39 seed phrases (seen against pipelock built
    # from source): on, the detector refuses every turn of the agent.
    assert config["seed_phrase_detection"] == {"enabled": False}
    assert body["max_body_bytes"] >= 32 * 1024 * 1024  # the Messages API's own limit
    assert config["tls_interception"]["enabled"] is True
    assert config["tls_interception"]["ca_key"] == egress.CA_KEY_PATH
    assert "internal" not in config  # pipelock's default SSRF ranges stay in force
    assert config["fetch_proxy"]["listen"].endswith(f":{egress.PROXY_PORT}")


def test_pipelock_gets_the_bottles_own_secrets_to_match() -> None:
    config = json.loads(egress.pipelock_config(["a.test"], with_secrets=True))
    assert config["dlp"]["secrets_file"] == egress.SECRETS_PATH
    assert config["dlp"]["min_env_secret_length"] == egress.MIN_SECRET_LENGTH
    long_one, short = "s3cr3t-value-that-is-long-enough", "short"
    text = egress.secret_values([long_one, short, long_one, " ", "two\nlines-of-secret-text"])
    assert text == (long_one + "\n").encode()  # distinct, long enough, one line each
    assert egress.secret_values([short]) is None


def test_egress_ca_is_a_fresh_ecdsa_p256_ca() -> None:
    first, second = egress.make_ca("t-abcde"), egress.make_ca("t-abcde")
    assert first.key_pem != second.key_pem
    cert = x509.load_pem_x509_certificate(first.cert_pem)
    key = load_pem_private_key(first.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    # pipelock reads the key with Go's x509.ParseECPrivateKey: SEC1 only, PKCS#8 refused.
    assert first.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert "t-abcde" in cert.subject.rfc4514_string()


def test_env_file_quotes_every_value_for_the_shell(tmp_path: Path) -> None:
    nasty = 'it\'s $(rm -rf /) `x` "q" \\ \n newline'
    data = provision.env_file(spec(env={"A": Secretish("literal", SecretStr(nasty))}))
    script = tmp_path / "env"
    script.write_bytes(data)
    out = subprocess.run(
        ["sh", "-c", f'. {shlex.quote(str(script))}; printf %s "$A"'],
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert out == nasty


def test_env_file_refuses_unresolved_values() -> None:
    with pytest.raises(ValueError, match="not resolved"):
        provision.env_file(spec(env={"A": Secretish("asked at start")}))


@pytest.mark.parametrize(
    ("command", "prompt", "resume", "expected"),
    [
        (Command(), None, False, ["claude"]),
        (Command(mode="print", prompt="go"), None, False, ["claude", "-p", "go"]),
        (
            Command(),
            "be nice",
            True,
            ["claude", "--continue", "--append-system-prompt-file", provision.PROMPT_PATH],
        ),
        (Command(mode="exec", argv=("sh", "-c", "x")), "ignored", True, ["sh", "-c", "x"]),
    ],
)
def test_agent_command(
    command: Command, prompt: str | None, resume: bool, expected: list[str]
) -> None:
    assert provision.agent_command(spec(command=command, prompt=prompt), resume=resume) == expected


def read_tar(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_home_archive_holds_skills_prompt_and_onboarding(tmp_path: Path) -> None:
    skill = tmp_path / "greet"
    skill.mkdir()
    (skill / "SKILL.md").write_text("hi")
    members = read_tar(provision.home_archive(spec(skills=(skill,), prompt="p")))
    assert {".claude.json", ".claude/skills/greet/SKILL.md", ".claude/rbottle-prompt.md"} <= set(
        members
    )
    assert all(m.uid == provision.AGENT_UID for m in members.values())


@pytest.mark.parametrize("is_repo", [True, False], ids=["git-repo", "plain-dir"])
def test_workdir_copy_respects_gitignore(tmp_path: Path, is_repo: bool) -> None:
    (tmp_path / "keep.py").write_text("x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "big.bin").write_text("x")
    (tmp_path / ".gitignore").write_text("out/\n")
    if is_repo:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    names = set(read_tar(provision.workdir_archive(tmp_path)))
    assert "./keep.py" in names and "./.gitignore" in names
    assert not any("big.bin" in n or n.startswith("./.git/") for n in names)


def test_trust_bundle_appends_the_egress_ca() -> None:
    members = read_tar(provision.trust_bundle_archive(b"EXISTING\n", [b"EGRESS"]))
    assert set(members) == {"ca-certificates.crt"}


def test_agent_image_tag_follows_its_inputs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(EXTRA_CA_ENV, raising=False)
    plain = agent_image()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv(EXTRA_CA_ENV, str(ca))
    assert agent_image() != plain
    assert agent_image().startswith("remotebottle/agent:cc-")


def test_extra_ca_errors_are_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(EXTRA_CA_ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(BottleError, match="cannot read"):
        extra_ca_certs()
    (tmp_path / "junk.pem").write_text("not a cert")
    monkeypatch.setenv(EXTRA_CA_ENV, str(tmp_path / "junk.pem"))
    with pytest.raises(BottleError, match="no PEM certificate"):
        extra_ca_certs()


def test_demo_probes_use_a_fresh_aws_shaped_key() -> None:
    keys = {fake_aws_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(re.fullmatch(r"AKIA[A-Z2-7]{16}", k) for k in keys)
    names = [p.name for p in probes()]
    assert len(names) == 9 and len(set(names)) == 9
    assert {p.expected for p in probes()} == {"200", "403", "000", "refused"}


def test_refusals_keep_where_and_why_never_a_query_or_body() -> None:
    from remotebottle.backend.docker.refusals import _record

    blocked = (
        '{"level":"warn","event":"blocked","method":"GET","url":"https://x.test/a/b?k=SECRET",'
        '"scanner":"dlp","reason":"DLP match: AWS Access ID","time":"2026-12-03T10:00:00Z"}'
    )
    assert _record(blocked, "egress proxy") == {
        "time": "2026-12-03T10:00:00Z",
        "by": "egress proxy",
        "method": "GET",
        "where": "https://x.test/a/b",
        "reason": "dlp: DLP match: AWS Access ID",
    }
    refused = (
        '{"time":"t","event":"refused","route":"anthropic","method":"POST",'
        '"path":"v1/messages","reason":"field mcp_servers needs the mcp_servers grant"}'
    )
    record = _record(refused, "credential proxy")
    assert record and record["where"] == "/anthropic/v1/messages"
    assert "mcp_servers" in record["reason"]
    for line in ("Pipelock v2.3.0 starting", '{"event":"startup"}', "{not json", ""):
        assert _record(line, "egress proxy") is None
