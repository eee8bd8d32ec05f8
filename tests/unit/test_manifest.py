"""The manifest loader: valid files, merging, and one clean line for every kind of mistake."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remotebottle import manifest
from remotebottle.errors import ManifestError
from tests.conftest import FULL_MANIFEST

pytestmark = pytest.mark.unit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


def error_for(data: Any, source: str = "m.json") -> ManifestError:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ManifestError) as info:
        manifest.parse(text, source)
    return info.value


def test_full_manifest_parses() -> None:
    parsed = manifest.parse(json.dumps(FULL_MANIFEST))
    dev = parsed.bottles["dev"]
    assert dev.egress.allowlist == ["pypi.org", "api.anthropic.com", "pypi.org"]
    assert dev.git[0].port == 2222
    assert dev.git[0].extra_hosts == {"git.example.test": "10.1.2.3"}
    assert dev.cred_proxy.routes[0].role == "anthropic-base-url"
    assert parsed.hosts["vm1"].provider == "ssh"
    assert parsed.hosts["cloud"].provider == "ec2"
    assert parsed.agents["implementer"].bottle == "dev"


def test_empty_object_is_a_valid_manifest() -> None:
    parsed = manifest.parse("{}")
    assert parsed.bottles == {} and parsed.agents == {} and parsed.hosts == {}


def test_schema_key_is_accepted_for_editors() -> None:
    assert manifest.parse('{"$schema": "./s.json"}').schema_ref == "./s.json"


def test_git_defaults() -> None:
    parsed = manifest.parse(
        json.dumps({"bottles": {"b": {"git": [{"Host": "h.test", "KnownHostKey": KEY}]}}})
    )
    remote = parsed.bottles["b"].git[0]
    assert (remote.user, remote.port, remote.identity_file) == ("git", 22, None)
    assert (remote.allow_force_push, remote.allow_deletes, remote.allow_ci_changes) == (
        False,
        False,
        False,
    )


def test_git_entries_read_like_ssh_config() -> None:
    entries = [
        {
            "Host": "gitea",
            "Hostname": "gitea.example.test",
            "KnownHostKey": f"gitea.example.test {KEY}",
        },
        {
            "Host": "gh",
            "HostName": "github.com",
            "Port": 2222,
            "KnownHostKey": f"[github.com]:2222 {KEY}",
        },
        {"Host": "h.test", "KnownHostKey": f"h.test,10.0.0.1 {KEY} comment"},
    ]
    gitea, github, plain = (
        manifest.parse(json.dumps({"bottles": {"b": {"git": entries}}})).bottles["b"].git
    )
    assert (gitea.host, gitea.target, gitea.pinned_key) == ("gitea", "gitea.example.test", KEY)
    assert (github.target, github.port, github.pinned_key) == ("github.com", 2222, KEY)
    assert (plain.hostname, plain.target, plain.pinned_key) == (None, "h.test", KEY)


def test_git_push_policy_is_per_remote() -> None:
    entry = {"Host": "h.test", "KnownHostKey": KEY}
    allowing = entry | {"AllowForcePush": True, "AllowDeletes": True, "AllowCIChanges": True}
    parsed = manifest.parse(json.dumps({"bottles": {"b": {"git": [allowing, entry]}}}))
    first, second = parsed.bottles["b"].git
    assert first.allow_force_push and first.allow_deletes and first.allow_ci_changes
    assert not (second.allow_force_push or second.allow_deletes or second.allow_ci_changes)


def test_host_defaults() -> None:
    parsed = manifest.parse(json.dumps({"hosts": {"e": {"provider": "ec2"}}}))
    ec2 = parsed.hosts["e"]
    assert ec2.provider == "ec2"
    assert ec2.ttl_minutes == 15 and ec2.reuse is False and ec2.images == "ship"


BAD_CASES: list[tuple[Any, str]] = [
    ("{not json", "line 1 column 2: invalid JSON"),
    ("[1, 2]", "(top level): expected a JSON object"),
    ({"bottlez": {}}, "bottlez: unknown field"),
    (
        {"bottles": {"b": {"egress": {"allowlist": "pypi.org"}}}},
        "bottles.b.egress.allowlist: expected a valid list, got a string",
    ),
    (
        {"bottles": {"b": {"egress": {"allowlist": ["https://pypi.org/simple"]}}}},
        "bottles.b.egress.allowlist[0]: 'https://pypi.org/simple' is not a host name",
    ),
    (
        {"bottles": {"b": {"egress": {"allowlist": ["pypi.org:443"]}}}},
        "bottles.b.egress.allowlist[0]: 'pypi.org:443' is not a host name",
    ),
    ({"bottles": {"b": {"egres": {}}}}, "bottles.b.egres: unknown field"),
    ({"bottles": {"b": {"ssh": [{"Host": "x"}]}}}, "bottles.b.ssh: no longer supported: use `git`"),
    (
        {"bottles": {"b": {"runtime": "runsc"}}},
        "bottles.b.runtime: no longer supported: gVisor is auto-detected",
    ),
    ({"runtime": "runsc"}, "runtime: no longer supported: gVisor is auto-detected"),
    ({"bottles": {"Bad Name": {}}}, "bottles.Bad Name: 'Bad Name' is not a valid name"),
    ({"bottles": {"b": {"env": {"1X": "v"}}}}, "bottles.b.env.1X: '1X' is not a valid environment"),
    (
        {"bottles": {"b": {"env": {"HTTPS_PROXY": "http://evil"}}}},
        "bottles.b.env.HTTPS_PROXY: HTTPS_PROXY is set by the bottle itself",
    ),
    (
        {"bottles": {"b": {"env": {"X": 5}}}},
        "bottles.b.env.X: expected a valid string, got a number",
    ),
    (
        {"bottles": {"b": {"git": [{"KnownHostKey": KEY}]}}},
        "bottles.b.git[0].Host: required field is missing",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h.test"}]}}},
        "bottles.b.git[0].KnownHostKey: required field is missing",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h.test", "KnownHostKey": "not a key"}]}}},
        "bottles.b.git[0].KnownHostKey: not a host key: expected 'ssh-ed25519 AAAA...' or a"
        " known_hosts line 'host[,host...] ssh-ed25519 AAAA...'",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h", "KnownHostKey": f"@revoked h {KEY}"}]}}},
        "bottles.b.git[0].KnownHostKey: not a host key: a '@revoked' line is not accepted",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h", "KnownHostKey": "ssh-ed25519 AAAA"}]}}},
        "bottles.b.git[0].KnownHostKey: not a host key: the ssh-ed25519 key is not valid base64",
    ),
    (
        {
            "bottles": {
                "b": {"git": [{"Host": "h", "Hostname": "x.test", "KnownHostKey": f"h {KEY}"}]}
            }
        },
        "bottles.b.git[0]: KnownHostKey: the known_hosts line is for h, not for x.test",
    ),
    (
        {
            "bottles": {
                "b": {"git": [{"Host": "x.test", "Port": 2, "KnownHostKey": f"x.test {KEY}"}]}
            }
        },
        "the known_hosts line is for x.test, not for [x.test]:2 (Hostname, Port)",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h", "Hostname": "a b", "KnownHostKey": KEY}]}}},
        "bottles.b.git[0].Hostname: 'a b' is not a host name",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h.test", "KnownHostKey": KEY, "Port": 70000}]}}},
        "bottles.b.git[0].Port: expected less than or equal to 65535",
    ),
    (
        {
            "bottles": {
                "b": {
                    "git": [
                        {
                            "Host": "h.test",
                            "KnownHostKey": KEY,
                            "ExtraHosts": {"h.test": "not-an-ip"},
                        }
                    ]
                }
            }
        },
        "bottles.b.git[0].ExtraHosts.h.test: 'not-an-ip' is not an IP address",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h.test", "KnownHostKey": KEY, "AllowDeletes": 1}]}}},
        "bottles.b.git[0].AllowDeletes: expected a valid boolean",
    ),
    (
        {"bottles": {"b": {"git": [{"Host": "h", "KnownHostKey": KEY, "AllowForce": True}]}}},
        "bottles.b.git[0].AllowForce: unknown field",
    ),
    (
        {"bottles": {"b": {"cred_proxy": {"routes": [{"name": "a", "upstream": "ftp://x"}]}}}},
        "bottles.b.cred_proxy.routes[0].upstream: URL scheme should be 'http' or 'https'",
    ),
    (
        {
            "bottles": {
                "b": {
                    "cred_proxy": {
                        "routes": [{"name": "a", "upstream": "https://x", "role": "admin"}]
                    }
                }
            }
        },
        "bottles.b.cred_proxy.routes[0].role:",
    ),
    (
        {
            "bottles": {
                "b": {
                    "cred_proxy": {
                        "routes": [
                            {"name": "a", "upstream": "https://x"},
                            {"name": "a", "upstream": "https://y"},
                        ]
                    }
                }
            }
        },
        "bottles.b.cred_proxy: route names must be unique; repeated: a",
    ),
    (
        {
            "bottles": {
                "b": {
                    "cred_proxy": {
                        "routes": [
                            {"name": "a", "upstream": "https://x", "role": "anthropic-base-url"},
                            {"name": "c", "upstream": "https://y", "role": "anthropic-base-url"},
                        ]
                    }
                }
            }
        },
        "bottles.b.cred_proxy: only one route may have role 'anthropic-base-url'",
    ),
    (
        {
            "bottles": {
                "b": {
                    "cred_proxy": {
                        "routes": [
                            {"name": "a", "upstream": "https://x", "inject": {"bad header": "v"}}
                        ]
                    }
                }
            }
        },
        "bottles.b.cred_proxy.routes[0].inject.bad header: 'bad header' is not a valid HTTP header",
    ),
    ({"agents": {"a": {}}}, "agents.a.bottle: required field is missing"),
    (
        {"agents": {"a": {"bottle": "b", "prompt": "x", "prompt_file": "p.md"}}},
        "agents.a: give either `prompt` or `prompt_file`, not both",
    ),
    ({"agents": {"a": {"bottle": "b", "skills": "s"}}}, "agents.a.skills: expected a valid list"),
    ({"hosts": {"h": {}}}, "hosts.h: `provider` is required (one of local, ssh, ec2, fly)"),
    (
        {"hosts": {"h": {"provider": "gcp"}}},
        "hosts.h.provider: unknown provider 'gcp'; expected one of local, ssh, ec2, fly",
    ),
    ({"hosts": {"h": {"provider": "ssh"}}}, "hosts.h.address: required field is missing"),
    (
        {"hosts": {"h": {"provider": "ssh", "address": "a", "port": "22"}}},
        "hosts.h.port: expected a valid integer, got a string",
    ),
    ({"hosts": {"h": {"provider": "fly"}}}, "hosts.h.app: required field is missing"),
    (
        {"hosts": {"h": {"provider": "ec2", "ttl_minutes": 1}}},
        "hosts.h.ttl_minutes: expected greater than or equal to 2",
    ),
    ({"hosts": {"h": {"provider": "ec2", "images": "teleport"}}}, "hosts.h.images:"),
]


@pytest.mark.parametrize(("data", "expected"), BAD_CASES)
def test_bad_manifest_gives_one_clean_line(data: Any, expected: str) -> None:
    exc = error_for(data)
    assert exc.message.startswith("m.json: ")
    assert "\n" not in exc.message, exc.message
    assert expected in exc.message, exc.message
    assert exc.hint


def test_several_problems_give_one_line_each() -> None:
    exc = error_for({"bottles": {"b": {"egress": {"allowlist": 3}, "env": {"X": 1}}}})
    lines = exc.message.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("m.json: bottles.b.") for line in lines)


def test_load_merges_with_project_winning(
    write_manifest: Callable[..., Path], isolated_home: Path
) -> None:
    home_file = write_manifest(
        {
            "bottles": {
                "shared": {"egress": {"allowlist": ["home.test"]}},
                "dev": {"egress": {"allowlist": ["from-home.test"]}},
            },
            "agents": {"helper": {"bottle": "shared"}},
        },
        where=isolated_home,
    )
    project_file = write_manifest(
        {
            "bottles": {"dev": {"egress": {"allowlist": ["from-project.test"]}}},
            "agents": {"implementer": {"bottle": "shared"}},
        }
    )
    merged = manifest.load([home_file, project_file])
    assert merged.bottles["dev"].egress.allowlist == ["from-project.test"]
    assert merged.bottles["shared"].egress.allowlist == ["home.test"]
    assert set(merged.agents) == {"helper", "implementer"}
    assert merged.origin("bottles", "dev") == project_file
    assert merged.origin("bottles", "shared") == home_file
    assert merged.files == (home_file, project_file)


def test_default_paths_read_home_then_project(tmp_path: Path, isolated_home: Path) -> None:
    paths = manifest.default_paths(cwd=tmp_path)
    assert paths == [isolated_home / "claude-bottle.json", tmp_path / "claude-bottle.json"]
    assert manifest.default_paths(cwd=isolated_home) == [isolated_home / "claude-bottle.json"]


def test_missing_files_are_skipped(tmp_path: Path) -> None:
    loaded = manifest.load([tmp_path / "nope.json"])
    assert loaded.files == () and loaded.agents == {}


def test_agent_with_undefined_bottle_fails_at_load(write_manifest: Callable[..., Path]) -> None:
    path = write_manifest({"bottles": {"a": {}}, "agents": {"x": {"bottle": "missing"}}})
    with pytest.raises(ManifestError) as info:
        manifest.load([path])
    message = info.value.message
    assert message.startswith(f"{path}: agents.x.bottle: no bottle named 'missing'")
    assert "known bottles: a" in message
    assert "\n" not in message


def test_errors_name_the_file_they_come_from(write_manifest: Callable[..., Path]) -> None:
    path = write_manifest({"agents": {"x": {"bottle": 7}}})
    with pytest.raises(ManifestError) as info:
        manifest.load([path])
    assert info.value.message.startswith(f"{path}: agents.x.bottle:")


def test_unreadable_file_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "claude-bottle.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ManifestError, match="cannot read"):
        manifest.load([path])


def test_relative_paths_are_anchored_to_their_manifest(
    write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_manifest(
        {
            "bottles": {"b": {}},
            "agents": {
                "a": {"bottle": "b", "skills": ["skills/x", "/abs/y"], "prompt_file": "p.md"}
            },
        }
    )
    agent = manifest.load([path]).agents["a"]
    assert agent.skills == [str(path.parent / "skills/x"), "/abs/y"]
    assert agent.prompt_file == str(path.parent / "p.md")


def test_unknown_agent_lists_known_ones(write_manifest: Callable[..., Path]) -> None:
    loaded = manifest.load([write_manifest(FULL_MANIFEST)])
    with pytest.raises(
        ManifestError, match=r"no agent named 'nobody' \(known agents: implementer, plain\)"
    ):
        loaded.agent("nobody")


def test_schema_describes_every_section() -> None:
    schema = manifest.schema()
    assert set(schema["properties"]) >= {"bottles", "agents", "hosts", "$schema"}
    text = json.dumps(schema)
    for field in ("KnownHostKey", "ExtraHosts", "allowlist", "anthropic-base-url", "ttl_minutes"):
        assert field in text


def test_parse_does_not_mutate_or_share_state() -> None:
    data = copy.deepcopy(FULL_MANIFEST)
    manifest.parse(json.dumps(data))
    assert data == FULL_MANIFEST


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
section_keys = st.sampled_from(["bottles", "agents", "hosts", "runtime", "x"])
manifest_like = st.dictionaries(
    section_keys,
    st.dictionaries(
        st.sampled_from(["dev", "b", "vm1", "Bad!"]),
        st.dictionaries(
            st.sampled_from(
                [
                    "env",
                    "egress",
                    "git",
                    "cred_proxy",
                    "bottle",
                    "skills",
                    "provider",
                    "address",
                    "ssh",
                    "allowlist",
                    "routes",
                    "Host",
                    "KnownHostKey",
                ]
            ),
            json_values,
            max_size=4,
        )
        | json_values,
        max_size=3,
    )
    | json_values,
    max_size=4,
)


def parse_or_error(text: str) -> manifest.ManifestFile | ManifestError:
    try:
        return manifest.parse(text, "fuzz.json")
    except ManifestError as exc:
        return exc


def assert_model_or_clean_error(result: manifest.ManifestFile | ManifestError) -> None:
    if isinstance(result, ManifestError):
        assert result.message.startswith("fuzz.json: ")
        assert result.hint
    else:
        assert isinstance(result, manifest.ManifestFile)


@settings(max_examples=300, deadline=None)
@given(data=manifest_like | json_values)
def test_any_input_gives_a_model_or_a_manifest_error(data: Any) -> None:
    assert_model_or_clean_error(parse_or_error(json.dumps(data)))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_gives_a_model_or_a_manifest_error(text: str) -> None:
    assert_model_or_clean_error(parse_or_error(text))


def route_manifest(upstream: str) -> dict[str, Any]:
    route = {"name": "api", "upstream": upstream, "inject": {"X-Key": "v"}}
    return {"bottles": {"b": {"cred_proxy": {"routes": [route]}}}}


def allowlist_manifest(*hosts: str) -> dict[str, Any]:
    return {"bottles": {"b": {"egress": {"allowlist": list(hosts)}}}}


ROUTE = "bottles.b.cred_proxy.routes[0].upstream"
ALLOW = "bottles.b.egress.allowlist[0]"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (allowlist_manifest("*.co.uk"), f"{ALLOW}: '*.co.uk' is too wide: 'co.uk' is a public"),
        (allowlist_manifest("*.ngrok-free.app"), f"{ALLOW}: '*.ngrok-free.app' is too wide"),
        (allowlist_manifest("*.com"), f"{ALLOW}: '*.com' is too wide"),
        (route_manifest("http://api.example.com"), f"{ROUTE}: upstream 'http://api.example"),
        (route_manifest("https://10.0.0.1/v1"), f"{ROUTE}: upstream 'https://10.0.0.1/v1' names"),
        (route_manifest("https://169.254.169.254"), "names an IP address"),
        (route_manifest("https://[fd00::1]:8443"), "names an IP address"),
        (route_manifest("https://u:p@api.example.com"), f"{ROUTE}: upstream must not carry"),
        (route_manifest("https://api.example.com/?key=1"), "must not carry credentials, a query"),
        ({"bottles": {"b\n": {}}}, "'b\\n' is not a valid name"),
        ({"bottles": {"b": {"env": {"X\n": "v"}}}}, "is not a valid environment variable name"),
        (
            {"bottles": {"b": {"cred_proxy": {"routes": [
                {"name": "api", "upstream": "https://x.example.com", "inject": {"X-Key\n": "v"}}
            ]}}}},
            "is not a valid HTTP header name",
        ),
    ],
)  # fmt: skip
def test_hosts_and_upstreams_are_refused_in_one_line(data: Any, expected: str) -> None:
    exc = error_for(data)
    assert "\n" not in exc.message, exc.message
    assert exc.message.startswith("m.json: ") and expected in exc.message, exc.message


def test_the_operator_may_name_idn_and_internal_hosts() -> None:
    parsed = manifest.parse(
        json.dumps(
            {
                "bottles": {
                    "b": {
                        "egress": {"allowlist": ["M\u00fcnchen.de", "*.example.com", "10.1.2.3"]},
                        "cred_proxy": {
                            "routes": [
                                {"name": "a", "upstream": "https://api.\u0430nthropic.com"},
                                {"name": "c", "upstream": "https://llm.corp.internal:8443/v1"},
                            ]
                        },
                    }
                }
            }
        )
    )
    bottle = parsed.bottles["b"]
    assert bottle.egress.allowlist == ["xn--mnchen-3ya.de", "*.example.com", "10.1.2.3"]
    upstreams = [str(r.upstream) for r in bottle.cred_proxy.routes]
    assert upstreams == ["https://api.xn--nthropic-06g.com/", "https://llm.corp.internal:8443/v1"]
