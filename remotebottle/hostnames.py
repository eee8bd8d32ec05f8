"""Host names and upstream URLs: one set of rules for manifests, dashboard edits and proposals.

Every host name is kept in one canonical form: lowercase ASCII without a trailing dot,
internationalised labels in punycode (`xn--...`), so what is shown is what is installed.
Nobody gets a wildcard over a public suffix (`*.co.uk`, `*.ngrok-free.app`: hosts of
unrelated owners) or an IP literal where a name is wanted, and a credential route's
upstream is https. An agent's proposal is held to more than the operator's own words:
its host names must read in one script (not `api.xn--nthropic-06g.com`, which reads as
`anthropic` with a Cyrillic `a`), and its upstream must be a public name, not localhost,
a container or an internal name.

This module also runs in the supervisor sidecar, which has only the standard library and
`publicsuffixlist` (both shipped next to its script): import nothing else here.
"""

from __future__ import annotations

import encodings.idna
import functools
import ipaddress
import os
import re
import unicodedata
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from publicsuffixlist import PublicSuffixList

MAX_HOST = 253
MAX_URL = 2000
# Test-only: `name:port` of the test suite's own upstreams, which speak plain http.
TEST_PLAIN_HTTP_ENV = "REMOTEBOTTLE_TEST_PLAIN_HTTP_UPSTREAMS"

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# The last label of anything the C resolver would read as an IPv4 address (`0x7f000001`).
_NUMERIC = re.compile(r"0x[0-9a-f]*|[0-9]+")
_ACE = "xn--"
# Scripts that legitimately mix within one name (Japanese, Korean, Chinese).
_CJK = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "BOPOMOFO"})


class Refused(ValueError):
    """A host name or URL the rules refuse; the message is one line for the user."""


@functools.cache
def _suffixes() -> PublicSuffixList:
    """The Public Suffix List shipped with `publicsuffixlist` (never fetched)."""
    return PublicSuffixList()


def canonical(value: Any) -> str:
    """`value` as a canonical host name (a leading `*.` kept), or `Refused`."""
    if not isinstance(value, str):
        raise Refused(f"{value!r} is not a host name")
    host = value.strip().lower().rstrip(".")
    wildcard = host.startswith("*.")
    labels = [_ascii_label(label, value) for label in host.removeprefix("*.").split(".")]
    host = ("*." if wildcard else "") + ".".join(labels)
    if len(host) > MAX_HOST:
        raise Refused(f"{value!r} is not a host name: longer than {MAX_HOST} characters")
    return host


def _ascii_label(label: str, value: str) -> str:
    refused = Refused(
        f"{value!r} is not a host name: expected e.g. 'pypi.org' or '*.example.com'"
        " (no scheme, port or path)"
    )
    if not label.isascii():
        try:
            label = encodings.idna.ToASCII(label).decode("ascii")
        except UnicodeError:
            raise refused from None
    if not _LABEL.fullmatch(label):
        raise refused
    if label.startswith(_ACE):
        try:
            encodings.idna.ToUnicode(label)
        except UnicodeError:
            raise Refused(f"{value!r}: {label!r} is not a valid internationalised label") from None
    return label


def readable(host: str) -> str:
    """A canonical host name as it reads: punycode labels decoded."""
    return ".".join(_decoded(label) for label in host.split("."))


def _decoded(label: str) -> str:
    if not label.startswith(_ACE):
        return label
    try:
        return str(encodings.idna.ToUnicode(label))
    except UnicodeError:
        return label


def scripts(host: str) -> list[str]:
    """The scripts of the letters `host` reads as, sorted (Chinese, Japanese and Korean
    scripts count as one, CJK)."""
    found = set()
    for char in readable(host):
        if unicodedata.category(char).startswith("L"):
            script = unicodedata.name(char, "UNKNOWN").split(" ")[0]
            found.add("CJK" if script in _CJK else script)
    return sorted(found)


def mixed_script(host: str) -> bool:
    """Whether `host` reads in more than one script: the mark of a look-alike name."""
    return len(scripts(host)) > 1


def check_host(value: Any, *, by_agent: bool, addresses: bool = False) -> str:
    """A host name to allow or reach, canonical, or `Refused`.

    `addresses`: an IPv4 address is accepted too (the manifest's own lists).
    `by_agent`: the name must read in one script.
    """
    host = canonical(value)
    if not addresses and _NUMERIC.fullmatch(host.rsplit(".", 1)[-1]):
        raise Refused(f"{value!r} is an IP address, not a host name")
    if host.startswith("*."):
        domain = host[2:]
        if _suffixes().is_public(domain):
            raise Refused(
                f"{value!r} is too wide: {domain!r} is a public suffix, shared by unrelated"
                f" owners; name a domain under it (*.example.{domain})"
            )
    if by_agent and mixed_script(host):
        raise Refused(
            f"{value!r} mixes scripts ({', '.join(scripts(host))}) and may imitate another"
            " host: only the operator can allow it"
        )
    return host


def check_upstream(value: Any, *, by_agent: bool, plain_http: Collection[str] = ()) -> str:
    """A credential route's upstream base URL, canonical (host in punycode), or `Refused`.

    https only (plain http would carry the injected credential in clear), a host name (no
    IP literal), no credentials, query or fragment. An agent's upstream must also be a
    public host name in one script. `plain_http` holds `name:port` origins reached over
    http: the test suite's own upstreams (`plain_http_for_tests`), never in normal use.
    """
    if not isinstance(value, str) or len(value) > MAX_URL or not value.isprintable():
        raise Refused("upstream must be an https:// URL")
    if any(c.isspace() for c in value):
        raise Refused("upstream must be an https:// URL (no spaces)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise Refused(f"upstream {value!r} is not a URL") from None
    if "@" in parts.netloc or "?" in value or "#" in value:
        raise Refused("upstream must not carry credentials, a query or a fragment")
    if not parts.hostname:
        raise Refused(f"upstream {value!r} must be an https:// URL with a host")
    if parts.scheme == "http" and f"{parts.hostname}:{port}" in plain_http:
        return urlunsplit(("http", f"{parts.hostname}:{port}", parts.path, "", ""))
    if parts.scheme != "https":
        raise Refused(
            f"upstream {value!r} must be https:// (the credential must not travel in clear)"
        )
    if _is_address(parts.hostname):
        raise Refused(f"upstream {value!r} names an IP address: use a host name")
    host = check_host(parts.hostname, by_agent=by_agent)
    if host.startswith("*."):
        raise Refused(f"upstream {value!r} must name one host, not a wildcard")
    if by_agent and not public_name(host):
        raise Refused(
            f"upstream host {host!r} is not a public host name (localhost, a container or an"
            " internal name): only the operator can add it"
        )
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit(("https", netloc, parts.path, "", ""))


def public_name(host: str) -> bool:
    """Whether `host` is a name under a known public suffix (so not `localhost`, a container
    alias, `*.internal` or `*.home.arpa`)."""
    if host == "arpa" or host.endswith(".arpa"):
        return False
    return _suffixes().privatesuffix(host, accept_unknown=False) is not None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def plain_http_for_tests() -> frozenset[str]:
    """The test suite's plain-http upstreams (`name:port`, single-label container names) from
    `REMOTEBOTTLE_TEST_PLAIN_HTTP_UPSTREAMS`; empty in normal use."""
    raw = os.environ.get(TEST_PLAIN_HTTP_ENV, "")
    origins = frozenset(item.strip() for item in raw.split(",") if item.strip())
    for origin in origins:
        name, _, port = origin.partition(":")
        if not _LABEL.fullmatch(name) or not port.isdigit():
            raise Refused(f"{TEST_PLAIN_HTTP_ENV}: {origin!r} is not name:port of a container")
    return origins
