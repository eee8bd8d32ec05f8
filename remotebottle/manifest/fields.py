"""Field types of the manifest: names, host names, environment variables, headers, ports,
one-line values and file paths.

Each is an `Annotated` type whose validator raises `ValueError` with the message the user
sees (after `errors` has put the file and JSON path in front of it).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field, HttpUrl

from remotebottle import hostkeys, hostnames
from remotebottle.errors import is_plain, quoted

# Matched whole (`fullmatch`): `$` would let a trailing newline through.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")

# A one-line value (a user, a region, an instance type) is shown in the preflight and in
# `rbottle hosts`: none of the characters a terminal acts on or does not show.
MAX_LINE_VALUE = 255
# What Linux takes: a path component, a whole path (bytes).
NAME_MAX, PATH_MAX = 255, 4095

# Set by the bottle itself; a manifest that set them would undo the isolation.
RESERVED_ENV = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "NODE_EXTRA_CA_CERTS",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
    }
)


def is_name(value: str) -> bool:
    """Whether `value` may name a bottle, an agent, a host or a route."""
    return bool(_NAME_RE.fullmatch(value))


def _check_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(
            f"{quoted(value)} is not a valid name: use 1-40 lowercase letters, digits, '-' or '_'"
        )
    return value


def is_one_line(value: str) -> bool:
    """Whether `value` is short, and holds no control, invisible formatting or line
    separator character."""
    return len(value) <= MAX_LINE_VALUE and is_plain(value)


def _check_line(value: str) -> str:
    if not is_one_line(value):
        raise ValueError(
            f"{quoted(value)} is not a one-line value: at most {MAX_LINE_VALUE} characters,"
            " with no control or invisible formatting characters"
        )
    return value


def _check_address(value: str) -> str:
    _check_line(value)
    if any(c.isspace() for c in value):
        raise ValueError(f"{quoted(value)} is not a host name, IP address or ssh alias: a space")
    return value


def _check_path(value: str) -> str:
    if not is_plain(value):
        raise ValueError(
            f"{quoted(value)} is not a usable path: it holds a control or invisible character"
        )
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise ValueError(
            f"{quoted(value)} is not a usable path: over {PATH_MAX} bytes,"
            f" or a part of it over {NAME_MAX}"
        )
    return value


def _check_hostname(value: str) -> str:
    if len(value) > hostnames.MAX_HOST:
        raise ValueError(
            f"{quoted(value)} is not a host name: over {hostnames.MAX_HOST} characters"
        )
    try:
        return hostnames.check_host(value, by_agent=False, addresses=True)
    except hostnames.Refused as exc:
        raise ValueError(str(exc)) from None


def _check_upstream(value: HttpUrl) -> HttpUrl:
    try:
        hostnames.check_upstream(str(value), by_agent=False)
    except hostnames.Refused as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_host_key(value: str) -> str:
    try:
        hostkeys.parse(value)
    except ValueError as exc:
        raise ValueError(f"not a host key: {exc}") from None
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME_RE.fullmatch(value):
        raise ValueError(f"{quoted(value)} is not a valid environment variable name")
    if value in RESERVED_ENV:
        raise ValueError(f"{value} is set by the bottle itself and cannot be overridden")
    return value


def _check_header(value: str) -> str:
    if not _HEADER_RE.fullmatch(value):
        raise ValueError(f"{quoted(value)} is not a valid HTTP header name")
    return value


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{quoted(value)} is not an IP address") from None


Name = Annotated[str, AfterValidator(_check_name)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
HeaderName = Annotated[str, AfterValidator(_check_header)]
IpAddress = Annotated[str, AfterValidator(_check_ip)]
Upstream = Annotated[HttpUrl, AfterValidator(_check_upstream)]
Port = Annotated[int, Field(ge=1, le=65535)]
HostKey = Annotated[str, AfterValidator(_check_host_key)]
Line = Annotated[str, AfterValidator(_check_line)]
SshAddress = Annotated[str, AfterValidator(_check_address)]
FilePath = Annotated[str, AfterValidator(_check_path)]
