"""The log filter that keeps credentials out of `--debug` output."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from remotebottle.logfilter import REDACTED, RedactSecrets, redact, secret_values

pytestmark = pytest.mark.unit

KEY_ID = "ASIAZ7EXAMPLE4KEYID2"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9EXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCWV1LXdlc3QtMSJHMEUCIQD+abc/def=="
SIGNATURE = "17d4f179a60132105f527898a5708b25498127ec9f151818556942b22a4f7625"
AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20261203/eu-west-1/ec2/aws4_request, "
    f"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature={SIGNATURE}"
)

# What botocore, an SDK response body or an HTTP client may put in one log line.
LEAKY = {
    "botocore request headers": (
        "Sending http request: <AWSPreparedRequest method=POST, headers={'X-Amz-Date': "
        f"b'20261203T140545Z', 'X-Amz-Security-Token': b'{TOKEN}', 'Authorization': "
        f"b'{AUTHORIZATION}', 'Content-Length': '270'}}>"
    ),
    "canonical request": (
        "CanonicalRequest:\nPOST\n/\n\nhost:127.0.0.1:1\nx-amz-date:20261203T140545Z\n"
        f"x-amz-security-token:{TOKEN}\n\ncontent-type;host;x-amz-date;x-amz-security-token\n"
    ),
    "signature line": f"Signature:\n{SIGNATURE}",
    "header line": f"Authorization: {AUTHORIZATION}",
    "presigned url": (
        f"GET https://b.s3.amazonaws.com/k?X-Amz-Credential={KEY_ID}%2F20261203&"
        f"X-Amz-Security-Token={TOKEN}&X-Amz-Signature={SIGNATURE}"
    ),
    "sts xml": (
        f"<Credentials><AccessKeyId>{KEY_ID}</AccessKeyId><SecretAccessKey>{SECRET_KEY}"
        f"</SecretAccessKey><SessionToken>{TOKEN}</SessionToken></Credentials>"
    ),
    "sso json": (
        f'{{"roleCredentials": {{"accessKeyId": "{KEY_ID}", "secretAccessKey": "{SECRET_KEY}",'
        f' "sessionToken": "{TOKEN}", "expiration": 1}}}}'
    ),
    "credentials repr": f"{{'aws_secret_access_key': '{SECRET_KEY}', 'token': '{TOKEN}'}}",
}
SECRETS = (KEY_ID, SECRET_KEY, TOKEN, SIGNATURE)


@pytest.mark.parametrize("text", LEAKY.values(), ids=LEAKY.keys())
def test_credentials_are_redacted(text: str) -> None:
    clean = redact(text)
    for secret in SECRETS:
        assert secret not in clean
    assert REDACTED in clean
    assert redact(clean) == clean  # redacting again changes nothing


def test_the_rest_of_the_line_stays() -> None:
    clean = redact(LEAKY["botocore request headers"])
    assert "'X-Amz-Date': b'20261203T140545Z'" in clean
    assert f"'Authorization': b'{REDACTED}'" in clean
    assert "'Content-Length': '270'" in clean
    canonical = redact(LEAKY["canonical request"])
    assert "host:127.0.0.1:1" in canonical
    assert f"x-amz-security-token:{REDACTED}\n" in canonical
    assert "content-type;host;x-amz-date;x-amz-security-token" in canonical


@pytest.mark.parametrize(
    "token",
    ["FlyV1 fm2_lJPECAAAAAAAAbc123,fm2_lJPETQAAAAAAAdef456", "fo1_abcdefghijklmnopqrstu"],
)
def test_fly_tokens_are_redacted(token: str) -> None:
    for text in (f"Authorization: {token}", f"headers={{'Authorization': 'Bearer {token}'}}"):
        assert token.split()[-1] not in redact(text)
    assert "fm2_lJPE" not in redact("token fm2_lJPECAAAAAAAAbc123 in a message")


@pytest.mark.parametrize(
    "text",
    [
        "Calculating signature using v4 auth.",
        "Found credentials in environment variables.",
        "StringToSign:\nAWS4-HMAC-SHA256\n20261203T140545Z\n20261203/eu-west-1/ec2/aws4_request",
        "Making request for OperationModel(name=DescribeInstances) with params: {'max_tokens': 9}",
        'http://127.0.0.1:1 "POST /v1.41/containers/create HTTP/1.1" 201 88',
        "Authentication (publickey) successful!",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_secret_values_come_from_credential_named_variables() -> None:
    environ = {
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": TOKEN,
        "FLY_API_TOKEN": "short",
        "HOME": "/home/someone-with-a-long-name",
    }
    assert secret_values(environ) == [TOKEN, SECRET_KEY]
    assert redact(f"odd place: {SECRET_KEY}", secret_values(environ)) == f"odd place: {REDACTED}"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([SECRET_KEY]))
    logger = logging.getLogger("botocore.test-redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_the_filter_redacts_arguments_exceptions_and_stacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.debug("Sending http request: %s", {"Authorization": AUTHORIZATION})
    logger.debug("Signature:\n%s", SIGNATURE)
    try:
        raise RuntimeError(f"refused with X-Amz-Security-Token={TOKEN}")
    except RuntimeError:
        logger.exception("call failed for %s", SECRET_KEY)
    logger.debug("where: %s", KEY_ID, stack_info=True)
    logger.debug("bad %s %s", "format")  # a malformed record is still written, redacted
    logger.debug("ordinary line %d", 7)
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    assert "Traceback" in text and "RuntimeError: refused with" in text
    assert "Stack (most recent call last)" in text
    assert "ordinary line 7" in text


def test_the_cli_installs_it() -> None:
    """`configure_logging` (what `main` calls) puts the filter on its stderr handler."""
    headers = {"Authorization": AUTHORIZATION}
    script = (
        "import logging\n"
        "from remotebottle.cli import configure_logging\n"
        "configure_logging(True)\n"
        f"logging.getLogger('botocore.endpoint').debug('headers %s', {headers!r})\n"
        f"logging.getLogger('urllib3').warning('X-Amz-Security-Token: {TOKEN}')\n"
        "logging.getLogger('botocore.endpoint').debug('an ordinary debug line')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "botocore.endpoint DEBUG: an ordinary debug line" in proc.stderr
    assert f"'Authorization': '{REDACTED}'" in proc.stderr
    for secret in SECRETS:
        assert secret not in proc.stderr
