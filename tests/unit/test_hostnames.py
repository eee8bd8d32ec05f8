"""Host names and upstreams: one canonical form, and what an agent may not name."""

from __future__ import annotations

import pytest

from remotebottle import hostnames

pytestmark = pytest.mark.unit

LOOK_ALIKE = "api.\u0430nthropic.com"  # a Cyrillic a


@pytest.mark.parametrize(
    ("value", "canonical", "reads_as"),
    [
        ("PyPI.org.", "pypi.org", "pypi.org"),
        ("*.Example.COM", "*.example.com", "*.example.com"),
        ("m\u00fcnchen.de", "xn--mnchen-3ya.de", "m\u00fcnchen.de"),
        (LOOK_ALIKE, "api.xn--nthropic-06g.com", LOOK_ALIKE),
        ("api.xn--nthropic-06g.com", "api.xn--nthropic-06g.com", LOOK_ALIKE),
    ],
)  # fmt: skip
def test_one_canonical_form(value: str, canonical: str, reads_as: str) -> None:
    assert hostnames.canonical(value) == canonical
    assert hostnames.readable(canonical) == reads_as


@pytest.mark.parametrize(
    "value", ["", "a..b", "-a.com", "a.com:443", "https://a.com", "a b.com", "a.com\nb", "*.*.a"]
)
def test_not_host_names(value: str) -> None:
    with pytest.raises(hostnames.Refused, match="is not a host name"):
        hostnames.canonical(value)


@pytest.mark.parametrize(
    ("host", "scripts"),
    [
        ("pypi.org", ["LATIN"]),
        ("xn--mnchen-3ya.de", ["LATIN"]),
        ("api.xn--nthropic-06g.com", ["CYRILLIC", "LATIN"]),
        (hostnames.canonical("\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444"), ["CYRILLIC"]),
        (hostnames.canonical("\u3072\u3089\u304c\u306a\u6f22\u5b57.\u65e5\u672c"), ["CJK"]),
        (hostnames.canonical("\u03b1\u03b2\u03b3.com"), ["GREEK", "LATIN"]),
    ],
)
def test_scripts_and_mixing(host: str, scripts: list[str]) -> None:
    assert hostnames.scripts(host) == scripts
    assert hostnames.mixed_script(host) == (len(scripts) > 1)


def test_wildcards_over_public_suffixes_are_refused_for_everyone() -> None:
    for wide in ("*.com", "*.co.uk", "*.ngrok-free.app", "*.github.io", "*.internal"):
        for by_agent in (True, False):
            with pytest.raises(hostnames.Refused, match="too wide"):
                hostnames.check_host(wide, by_agent=by_agent)
    assert hostnames.check_host("*.example.co.uk", by_agent=True) == "*.example.co.uk"
    assert hostnames.check_host("*.corp.internal", by_agent=True) == "*.corp.internal"


def test_addresses_only_where_asked_for() -> None:
    assert hostnames.check_host("10.1.2.3", by_agent=False, addresses=True) == "10.1.2.3"
    for value in ("10.1.2.3", "0x7f000001", "127.1"):
        with pytest.raises(hostnames.Refused, match="is an IP address"):
            hostnames.check_host(value, by_agent=False)


def test_public_names() -> None:
    assert hostnames.public_name("api.github.com")
    assert hostnames.public_name("user.github.io")
    for internal in ("localhost", "fake-api", "x.internal", "x.home.arpa", "printer.local"):
        assert not hostnames.public_name(internal), internal


def test_upstreams_keep_path_and_port_and_lose_nothing_else() -> None:
    assert (
        hostnames.check_upstream("https://API.example.com:8443/v1/", by_agent=True)
        == "https://api.example.com:8443/v1/"
    )
    assert hostnames.check_upstream("https://api.example.com", by_agent=True) == (
        "https://api.example.com"
    )


def test_the_test_suites_plain_http_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hostnames.TEST_PLAIN_HTTP_ENV, raising=False)
    assert hostnames.plain_http_for_tests() == frozenset()
    monkeypatch.setenv(hostnames.TEST_PLAIN_HTTP_ENV, "fake-api:8080, other:9")
    assert hostnames.plain_http_for_tests() == {"fake-api:8080", "other:9"}
    for bad in ("api.example.com:80", "fake-api", "fake-api:http"):
        monkeypatch.setenv(hostnames.TEST_PLAIN_HTTP_ENV, bad)
        with pytest.raises(hostnames.Refused, match="not name:port of a container"):
            hostnames.plain_http_for_tests()
