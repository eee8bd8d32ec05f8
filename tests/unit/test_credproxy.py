"""The credential proxy's route table and what it tells the agent."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from remotebottle.backend.docker import credproxy
from remotebottle.backend.spec import ANTHROPIC_ROLE, RouteSpec, Secretish
from remotebottle.errors import BottleError

pytestmark = pytest.mark.unit


def route(name: str, role: str | None = None, value: str | None = "s3cret") -> RouteSpec:
    secret = SecretStr(value) if value is not None else None
    return RouteSpec(
        name=name,
        upstream="https://api.example.com/",
        role=role,
        inject={"x-api-key": Secretish("${KEY}", secret)},
    )


def test_the_route_table_holds_the_resolved_values() -> None:
    table = json.loads(credproxy.route_table([route("a"), route("b")]))
    upstream = "https://api.example.com/"
    assert table == {
        "routes": [
            {"name": name, "upstream": upstream, "inject": {"x-api-key": "s3cret"}}
            for name in ("a", "b")
        ]
    }


@pytest.mark.parametrize(
    ("header", "api_key"), [("x-api-key", True), ("Authorization", False), ("X-Api-Key", True)]
)
def test_the_claude_route_tells_the_policy_which_login_it_injects(
    header: str, api_key: bool
) -> None:
    claude = RouteSpec(
        name="claude",
        upstream="https://api.anthropic.com/",
        role=ANTHROPIC_ROLE,
        inject={header: Secretish("from $V", SecretStr("v"))},
    )
    [entry] = json.loads(credproxy.route_table([claude]))["routes"]
    assert entry["policy"] == {"grants": [], "apiKey": api_key}


def test_an_unresolved_value_is_refused_rather_than_sent_empty() -> None:
    with pytest.raises(BottleError, match="x-api-key was not resolved"):
        credproxy.route_table([route("a", value=None)])


def test_claude_code_gets_the_route_url_and_a_placeholder_only() -> None:
    env = credproxy.agent_env([route("plain"), route("claude", role=ANTHROPIC_ROLE)])
    assert env == {
        "ANTHROPIC_BASE_URL": "http://cred-proxy:8080/claude",
        "CLAUDE_CODE_OAUTH_TOKEN": credproxy.PLACEHOLDER_TOKEN,
    }
    assert "s3cret" not in json.dumps(env)


def test_without_an_anthropic_route_the_agent_gets_no_anthropic_setting() -> None:
    assert credproxy.agent_env([route("plain")]) == {}
