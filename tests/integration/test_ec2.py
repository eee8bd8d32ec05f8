"""The EC2 provider against a moto server on loopback (never real AWS).

moto invents instance addresses and console text, so no test ever connects to an
instance: the console reader returns a cloud-init console with a real (freshly made)
host key, and the SSH probe only records what it was asked.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import io
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import paramiko
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from remotebottle import state as rb_state
from remotebottle.errors import HostError, ProvisionError, TeardownError
from remotebottle.hosts.ec2 import Ec2Provider, pricing
from remotebottle.hosts.ec2.bootstrap import host_key_from_console, public_cidr, render_user_data
from remotebottle.hosts.provider import TAG_CREATED, TAG_EXPIRES, TAG_IDENTITY, TAG_OWNER
from remotebottle.hosts.wait import ssh_banner
from remotebottle.manifest import Ec2Host
from tests.integration.conftest import require
from tests.integration.moto_server import AMD64_NEW, ARM64_NEW, MotoServer

CALLER = "203.0.113.7/32"
REGION = "eu-west-1"


def _host_key_line() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def _console(host_key: str, prefix: str = "") -> str:
    """Console text as cloud-init's keys_to_console module writes it."""
    return "\n".join(
        [
            "[    0.000000] Linux version 6.1.0-27-cloud-amd64",
            f"{prefix}#############################################################",
            f"{prefix}-----BEGIN SSH HOST KEY FINGERPRINTS-----",
            f"{prefix}256 SHA256:abc root@ip-10-0-0-1 (ED25519)",
            f"{prefix}-----END SSH HOST KEY FINGERPRINTS-----",
            f"{prefix}-----BEGIN SSH HOST KEY KEYS-----",
            f"{prefix}ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI root@ip-10-0-0-1",
            f"{prefix}{host_key} root@ip-10-0-0-1",
            f"{prefix}-----END SSH HOST KEY KEYS-----",
            "Cloud-init v. 22.4.2 finished",
        ]
    )


# -- unit-level: parsing and rendering ---------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("prefix", ["", "ec2: ", "<14>Dec  2 19:00:00 ec2: "])
def test_host_key_from_console(prefix: str) -> None:
    key = _host_key_line()
    assert host_key_from_console(_console(key, prefix)) == key


@pytest.mark.unit
def test_host_key_from_console_takes_the_last_block_and_refuses_partial_ones() -> None:
    old, new = _host_key_line(), _host_key_line()
    assert host_key_from_console(_console(old) + "\n" + _console(new)) == new
    assert host_key_from_console("booting...\n") is None
    unfinished = _console(new).split("-----END SSH HOST KEY KEYS-----")[0]
    assert host_key_from_console(unfinished) is None
    # A key outside the block (e.g. echoed by some other program) is not taken.
    assert host_key_from_console(f"{new}\n") is None
    # Neither is a truncated one (a console line cut short).
    assert host_key_from_console(_console(new[:-5])) is None


@pytest.mark.unit
def test_user_data_is_filled_in() -> None:
    text = render_user_data(42, "admin")
    assert text.startswith("#cloud-config")
    assert "{{" not in text
    assert "ttl_seconds=$(( 42 * 60 ))" in text
    assert "d /run/rbottle 0755 admin admin -" in text
    config = yaml.safe_load(text)
    assert ["usermod", "-aG", "docker", "admin"] in config["runcmd"]


@pytest.mark.unit
def test_public_cidr_from_a_checkip_service_on_loopback() -> None:
    answers = iter([b"198.51.100.4\n", b"<html>not an address</html>"])

    class CheckIp(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = next(answers)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), CheckIp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert public_cidr(url) == "198.51.100.4/32"
        with pytest.raises(HostError, match="public address"):
            public_cidr(url)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.unit
def test_ssh_banner_probe_on_loopback() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

        threading.Thread(target=serve, daemon=True).start()
        assert ssh_banner("127.0.0.1", port, timeout=5)
    # Nothing listens there any more.
    assert not ssh_banner("127.0.0.1", port, timeout=1)


@pytest.mark.unit
def test_architecture_guess_and_price_table() -> None:
    for arm in ("t4g.small", "m7gd.large", "c6gn.xlarge", "a1.large", "g5g.xlarge"):
        assert pricing.guess_architecture(arm) == "arm64", arm
    for x86 in ("t3.medium", "m6i.large", "g4dn.xlarge", "c6a.large", "mac2-m2.metal"):
        assert pricing.guess_architecture(x86) == "x86_64", x86
    assert pricing.hourly_price("t3.medium") == "~$0.0416/h"
    assert pricing.hourly_price("u-24tb1.metal") == "unknown"


@pytest.mark.unit
def test_preflight_is_local() -> None:
    info = Ec2Provider(Ec2Host(provider="ec2", region=REGION, ttl_minutes=30)).preflight()
    assert info["provider"] == "ec2"
    assert info["instance_type"] == "t3.medium"
    assert info["region"] == REGION
    assert "30 min" in info["ttl"]
    assert info["hourly_price"].startswith("~$0.0416/h (approximate")
    unknown = Ec2Provider(Ec2Host(provider="ec2", instance_type="x9.huge")).preflight()
    assert unknown["hourly_price"] == "unknown"


# -- against moto ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        require(f"moto server cannot start: {exc}")
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A clean moto EC2, and an environment in which boto3 can only reach it."""
    moto_server.reset()
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return boto3.Session(region_name=REGION).client("ec2")


@dataclass
class Fake:
    """The test seams: console text per instance, and a probe that never connects."""

    host_key: str = field(default_factory=_host_key_line)
    probed: list[tuple[str, int]] = field(default_factory=list)
    answers: bool = True
    progress: list[str] = field(default_factory=list)

    def console(self, instance_id: str) -> str:
        return _console(self.host_key, prefix="ec2: ")

    def reachable(self, address: str, port: int) -> bool:
        self.probed.append((address, port))
        return self.answers

    def provider(self, **entry: Any) -> Ec2Provider:
        settings: dict[str, Any] = {"provider": "ec2", "ttl_minutes": 7, "ready_timeout": 3.0}
        settings.update(entry)
        return Ec2Provider(
            Ec2Host(**settings),
            caller_cidr=CALLER,
            console_reader=self.console,
            reachable=self.reachable,
            poll_interval=0.05,
            destroy_timeout=10.0,
        )


@pytest.fixture
def fake() -> Fake:
    return Fake()


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def _live_instances(ec2: Any) -> list[dict[str, Any]]:
    found = ec2.describe_instances()["Reservations"]
    return [i for r in found for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def _ours(ec2: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """Live instances, security groups and key pairs named or tagged as rbottle's."""
    groups = [
        g
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"].startswith("rbottle-") or TAG_OWNER in _tags(g)
    ]
    keys = ec2.describe_key_pairs()["KeyPairs"]
    return _live_instances(ec2), groups, keys


def _assert_nothing_left(ec2: Any) -> None:
    instances, groups, keys = _ours(ec2)
    assert instances == []
    assert groups == []
    assert keys == []


def _assert_tagged(item: dict[str, Any], identity: str) -> None:
    tags = _tags(item)
    assert tags[TAG_OWNER] == "1"
    assert tags[TAG_IDENTITY] == identity
    assert tags["Name"] == f"rbottle-{identity}"
    created = datetime.datetime.fromisoformat(tags[TAG_CREATED])
    expires = datetime.datetime.fromisoformat(tags[TAG_EXPIRES])
    assert expires - created == datetime.timedelta(minutes=7)


@pytest.mark.integration
def test_lifecycle(aws: Any, fake: Fake) -> None:
    provider = fake.provider()
    machine = provider.create("impl-ab12c", progress=fake.progress.append)

    assert machine.provider == "ec2"
    assert machine.identity == "impl-ab12c"
    assert machine.user == "admin"
    assert machine.port == 22
    assert machine.host_key == fake.host_key
    assert fake.probed == [(machine.address, 22)]
    assert machine.expires_at is not None
    assert machine.details["region"] == REGION
    assert (
        machine.details["ami"] == AMD64_NEW
    )  # the newest Debian 13 amd64, not the newer Debian 12
    # The login key is OpenSSH PEM text that paramiko can use.
    login = paramiko.Ed25519Key.from_private_key(io.StringIO(machine.login_key))
    assert login.get_name() == "ssh-ed25519"
    assert "login_key" not in repr(machine)

    instance = aws.describe_instances(InstanceIds=[machine.machine_id])["Reservations"][0][
        "Instances"
    ][0]
    assert instance["PublicIpAddress"] == machine.address
    assert instance["InstanceType"] == "t3.medium"
    assert instance["KeyName"] == "rbottle-impl-ab12c"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    _assert_tagged(instance, "impl-ab12c")
    behaviour = aws.describe_instance_attribute(
        InstanceId=machine.machine_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    user_data = aws.describe_instance_attribute(
        InstanceId=machine.machine_id, Attribute="userData"
    )["UserData"]["Value"]
    text = base64.b64decode(user_data).decode()
    assert text.startswith("#cloud-config")
    assert "ttl_seconds=$(( 7 * 60 ))" in text
    assert 'usermod, -aG, docker, "admin"' in text

    volumes = aws.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [machine.machine_id]}]
    )["Volumes"]
    assert [v["Size"] for v in volumes] == [20]
    for volume in volumes:
        _assert_tagged(volume, "impl-ab12c")

    (key,) = aws.describe_key_pairs(KeyNames=["rbottle-impl-ab12c"])["KeyPairs"]
    assert key["KeyType"] == "ed25519"
    _assert_tagged(key, "impl-ab12c")

    (group,) = aws.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["rbottle-impl-ab12c"]}]
    )["SecurityGroups"]
    _assert_tagged(group, "impl-ab12c")
    nic_groups = [g["GroupId"] for n in instance["NetworkInterfaces"] for g in n["Groups"]]
    assert nic_groups == [group["GroupId"]]
    (rule,) = group["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == [CALLER]
    assert not rule.get("Ipv6Ranges")
    assert not rule.get("UserIdGroupPairs")

    provider.destroy(machine, progress=fake.progress.append)
    state = aws.describe_instances(InstanceIds=[machine.machine_id])["Reservations"][0][
        "Instances"
    ][0]["State"]["Name"]
    assert state == "terminated"
    _assert_nothing_left(aws)
    provider.destroy(machine, progress=fake.progress.append)  # idempotent
    assert any("terminating" in line for line in fake.progress)


@pytest.mark.integration
def test_a_failed_teardown_lists_what_leaked(aws: Any, fake: Fake) -> None:
    provider = fake.provider()
    machine = provider.create("impl-leak1", progress=fake.progress.append)
    aws.modify_instance_attribute(
        InstanceId=machine.machine_id, DisableApiTermination={"Value": True}
    )
    with pytest.raises(TeardownError, match=f"instance {machine.machine_id}") as err:
        provider.destroy(machine, progress=fake.progress.append)
    assert "rbottle cleanup --orphans" in err.value.hint

    aws.modify_instance_attribute(
        InstanceId=machine.machine_id, DisableApiTermination={"Value": False}
    )
    provider.destroy(machine, progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_graviton_type_gets_the_arm64_image_and_spot(aws: Any, fake: Fake) -> None:
    provider = fake.provider(instance_type="t4g.small", spot=True)
    machine = provider.create("impl-arm01", progress=fake.progress.append)
    assert machine.details["ami"] == ARM64_NEW
    assert machine.details["market"] == "spot"
    provider.destroy(machine, progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_explicit_ami_of_the_wrong_architecture_is_refused(aws: Any, fake: Fake) -> None:
    provider = fake.provider(instance_type="t4g.small", ami=AMD64_NEW)
    with pytest.raises(ProvisionError, match="x86_64"):
        provider.create("impl-bad01", progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_create_is_idempotent_per_identity(aws: Any, fake: Fake) -> None:
    provider = fake.provider()
    first = provider.create("impl-idem1", progress=fake.progress.append)
    again = provider.create("impl-idem1", progress=fake.progress.append)
    assert again.machine_id == first.machine_id
    assert again.login_key == first.login_key
    assert len(_live_instances(aws)) == 1

    # Another process has no login key for it: refuse, and leave it alone.
    stranger = fake.provider()
    with pytest.raises(ProvisionError, match="login key"):
        stranger.create("impl-idem1", progress=fake.progress.append)
    assert len(_live_instances(aws)) == 1

    # Unless it is handed the key (a `reuse` VM whose key the caller kept).
    stranger.adopt_login_key("impl-idem1", first.login_key)
    assert stranger.create("impl-idem1", progress=fake.progress.append) == first

    provider.destroy(first, progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_no_host_key_on_the_console_destroys_everything(aws: Any, fake: Fake) -> None:
    # The real GetConsoleOutput path: moto's console text has no host key block.
    provider = Ec2Provider(
        Ec2Host(provider="ec2", ttl_minutes=7, ready_timeout=1.0),
        caller_cidr=CALLER,
        reachable=fake.reachable,
        poll_interval=0.05,
        destroy_timeout=10.0,
    )
    with pytest.raises(ProvisionError, match="printed no SSH host key") as err:
        provider.create("impl-nokey", progress=fake.progress.append)
    assert "ready_timeout" in err.value.hint
    assert fake.probed == []  # never reached for the port probe
    _assert_nothing_left(aws)
    assert any("launch failed" in line for line in fake.progress)


@pytest.mark.integration
def test_ssh_never_answering_destroys_everything(aws: Any, fake: Fake) -> None:
    fake.answers = False
    provider = fake.provider(ready_timeout=0.5)
    with pytest.raises(ProvisionError, match="does not answer"):
        provider.create("impl-nossh", progress=fake.progress.append)
    assert fake.probed
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_an_interrupt_part_way_destroys_everything(aws: Any, fake: Fake) -> None:
    def interrupted(address: str, port: int) -> bool:
        raise KeyboardInterrupt

    provider = fake.provider()
    provider._reachable = interrupted
    with pytest.raises(KeyboardInterrupt):
        provider.create("impl-ctrlc", progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_bad_subnet_fails_before_anything_is_made(aws: Any, fake: Fake) -> None:
    provider = fake.provider(subnet_id="subnet-0000000000bad")
    with pytest.raises(ProvisionError, match="subnet-0000000000bad") as err:
        provider.create("impl-subnt", progress=fake.progress.append)
    assert "subnet_id" in err.value.hint
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_given_subnet_is_used(aws: Any, fake: Fake) -> None:
    subnet = aws.describe_subnets()["Subnets"][0]
    provider = fake.provider(subnet_id=subnet["SubnetId"])
    machine = provider.create("impl-sub01", progress=fake.progress.append)
    instance = aws.describe_instances(InstanceIds=[machine.machine_id])["Reservations"][0][
        "Instances"
    ][0]
    assert instance["SubnetId"] == subnet["SubnetId"]
    provider.destroy(machine, progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_unknown_instance_type_fails_before_anything_is_made(aws: Any, fake: Fake) -> None:
    provider = fake.provider(instance_type="zz9.plural")
    with pytest.raises(ProvisionError, match=r"no instance type 'zz9\.plural'"):
        provider.create("impl-type1", progress=fake.progress.append)
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_orphan_sweep_lists_and_destroys(aws: Any, fake: Fake) -> None:
    provider = fake.provider()
    a = provider.create("impl-orph1", progress=fake.progress.append)
    b = provider.create("impl-orph2", progress=fake.progress.append)

    sweeper = fake.provider()  # a later `rbottle cleanup --orphans`, another process
    owned = sweeper.list_owned()
    kinds = sorted((r.identity, r.kind) for r in owned)
    assert kinds == sorted(
        (identity, kind)
        for identity in ("impl-orph1", "impl-orph2")
        for kind in ("instance", "key-pair", "security-group")
    )
    by_kind = {(r.identity, r.kind): r for r in owned}
    instance = by_kind[("impl-orph1", "instance")]
    assert instance.resource_id == a.machine_id
    assert instance.state in ("pending", "running")
    assert instance.created_at is not None and instance.expires_at is not None
    assert instance.expires_at - instance.created_at == datetime.timedelta(minutes=7)
    later = instance.created_at + datetime.timedelta(minutes=8)
    assert instance.is_expired(later)
    assert by_kind[("impl-orph2", "instance")].resource_id == b.machine_id

    sweeper.destroy_owned(owned, progress=fake.progress.append)
    assert sweeper.list_owned() == []
    _assert_nothing_left(aws)


@pytest.mark.integration
def test_renew_expiry_moves_the_tag(aws: Any, fake: Fake) -> None:
    provider = fake.provider()
    machine = provider.create("impl-renew", progress=fake.progress.append)
    before = datetime.datetime.now(datetime.UTC)
    provider.renew_expiry(machine)
    (instance,) = [r for r in provider.list_owned() if r.kind == "instance"]
    assert instance.expires_at is not None
    ttl = datetime.timedelta(minutes=7)
    assert before + ttl - datetime.timedelta(seconds=1) <= instance.expires_at
    provider.destroy(machine, progress=fake.progress.append)


@pytest.mark.integration
def test_missing_credentials_region_and_profile(
    aws: Any, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(HostError, match="no AWS credentials") as err:
        fake.provider().list_owned()
    assert "AWS_ACCESS_KEY_ID" in err.value.hint
    assert "AWS_PROFILE" in err.value.hint

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(HostError, match="no AWS region") as err:
        fake.provider().list_owned()
    assert "AWS_REGION" in err.value.hint

    with pytest.raises(HostError, match="'nosuch' is not configured"):
        fake.provider(profile="nosuch", region=REGION).list_owned()


def _session_credentials() -> dict[str, str]:
    """Temporary credentials shaped as STS hands them out (moto checks no signature)."""
    return {
        "AWS_ACCESS_KEY_ID": "ASIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2Vj" + secrets.token_urlsafe(180),
    }


@pytest.mark.integration
@pytest.mark.parametrize("source", ["environment", "credentials-file"])
def test_debug_logging_of_ec2_calls_shows_no_credential(
    aws: Any, fake: Fake, write_manifest: Any, tmp_path: Path, source: str
) -> None:
    """`rbottle --debug cleanup --orphans` sweeps a VM through moto with session
    credentials: botocore logs every request's headers, canonical request and signature,
    and none of the key id, secret key, session token or signature reaches stderr.

    From a credentials file the values are in no environment variable, so the patterns
    alone must catch them (from the environment they are also redacted as literals)."""
    machine = fake.provider().create("gone-ab12c", progress=fake.progress.append)
    rb_state.write_metadata(
        rb_state.Metadata(
            identity="gone-ab12c",
            agent="gone",
            host="aws",
            started_at=rb_state.now(),
            ended_at=rb_state.now(),
        )
    )
    project = write_manifest({"hosts": {"aws": {"provider": "ec2", "region": REGION}}}).parent
    creds = _session_credentials()
    env = {k: v for k, v in os.environ.items() if k not in creds}
    if source == "environment":
        env.update(creds)
    else:
        file = tmp_path / "aws-credentials"
        file.write_text(
            "[default]\n"
            f"aws_access_key_id = {creds['AWS_ACCESS_KEY_ID']}\n"
            f"aws_secret_access_key = {creds['AWS_SECRET_ACCESS_KEY']}\n"
            f"aws_session_token = {creds['AWS_SESSION_TOKEN']}\n"
        )
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(file)
    proc = subprocess.run(
        [sys.executable, "-m", "remotebottle", "--debug", "cleanup", "--orphans", "--yes"],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    err = proc.stderr
    assert proc.returncode == 0, err[-3000:]
    assert f"instance {machine.machine_id}" in err and "destroyed 3 cloud resources" in err
    _assert_nothing_left(aws)

    for name, value in creds.items():
        assert value not in err, f"{name} is in the --debug output"
    assert not re.search(r"Signature[=:]\s*(b')?[0-9a-f]{16}", err), "a signature is shown"
    # Still a useful debug log: the requests, with only the credentials taken out.
    assert "DEBUG: Making request for OperationModel(name=TerminateInstances)" in err
    assert "'X-Amz-Security-Token': b'[redacted]', 'Authorization': b'[redacted]'" in err
    assert "x-amz-security-token:[redacted]\n" in err
    assert "urllib3.connectionpool DEBUG:" in err
