"""The credential proxy's policy for the Claude Code route (resources/credproxy/
anthropic_policy.js), run with the real Node against requests recorded from Claude Code.

Claude Code's own requests pass whole; what would make the Messages API reach out on the
agent's behalf is refused or stripped. The same attacks, from inside a real bottle, are in
tests/e2e/test_cred_policy.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from remotebottle.backend.docker import credproxy

pytestmark = pytest.mark.unit

POLICY = Path(credproxy.__file__).parents[2] / "resources" / "credproxy" / "anthropic_policy.js"
RECORDED = Path(__file__).parents[1] / "fixtures" / "claude-code" / "requests.json"
RUNNER = """
const policy = require(process.argv[1]);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = cases.map(({ method, path, headers, body, grants, apiKey }) => {
  const p = { grants: grants || [], apiKey: apiKey === true };
  const [rest, ...q] = path.replace(/^\\//, '').split('?');
  const search = q.length ? `?${q.join('?')}` : '';
  const endpoint = policy.endpoint(method, rest, search);
  const filtered = policy.filterHeaders(headers || {}, p);
  const checked = endpoint && endpoint.body && body !== undefined;
  const problem = checked ? policy.checkBody(body, p) : null;
  return { endpoint: !!endpoint, problem, headers: filtered.headers, stripped: filtered.stripped,
           dropped: filtered.dropped };
});
process.stdout.write(JSON.stringify(out));
"""


def decide(*cases: dict[str, Any]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node.js is needed (tests/harness/setup.sh installs it)"
    result = subprocess.run(
        [node, "-e", RUNNER, str(POLICY)],
        input=json.dumps(list(cases)),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return list(json.loads(result.stdout))


def recorded() -> list[dict[str, Any]]:
    return list(json.loads(RECORDED.read_text())["requests"])


def message(**extra: Any) -> dict[str, Any]:
    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}
    return {"method": "POST", "path": "/v1/messages", "body": body | extra}


def test_claude_codes_own_requests_pass_unchanged() -> None:
    requests = recorded()
    assert any(r["path"].startswith("/v1/messages") for r in requests)
    for request, decision in zip(requests, decide(*requests), strict=True):
        assert decision["endpoint"], request["path"]
        assert decision["problem"] is None, decision
        assert decision["stripped"] == []  # every beta Claude Code sends is kept
        assert set(decision["dropped"]) <= {"connection", "host"}, decision["dropped"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (message(mcp_servers=[{"type": "url", "url": "https://x.test"}]), "mcp_servers"),
        (message(container="c1"), "container"),
        (message(tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}]), "web_fetch"),
        (message(tools=[{"type": "web_search_20250305", "name": "s"}]), "web_search"),
        (message(tools=[{"type": "code_execution_20250825", "name": "c"}]), "code_execution"),
        (message(tools=[{"type": "mcp_toolset", "mcp_server_name": "x"}]), "mcp_toolset"),
        (message(stealth="data"), "stealth"),
        (
            message(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://x.test/i.png"},
                            }
                        ],
                    }
                ]
            ),
            "url source",
        ),
        (
            message(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "content": [
                                    {
                                        "type": "document",
                                        "source": {"type": "file", "file_id": "f1"},
                                    }
                                ],
                            }
                        ],
                    }
                ]
            ),
            "file source",
        ),
        (message(system=[{"type": "text", "text": "x"}, {"type": "mcp_tool_use"}]), "mcp_tool_use"),
        (
            message(messages=[{"role": "assistant", "content": [{"type": "server_tool_use"}]}]),
            "server tool use",
        ),
        (
            message(messages=[{"role": "user", "content": [{"type": "web_fetch_tool_result"}]}]),
            "web_fetch_tool_result",
        ),
    ],
)
def test_ways_to_make_the_api_reach_out_are_refused(case: dict[str, Any], reason: str) -> None:
    [decision] = decide(case)
    assert decision["problem"], case
    assert reason.split()[0] in decision["problem"] or reason in decision["problem"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/files"),
        ("POST", "/v1/files"),
        ("POST", "/v1/messages/batches"),
        ("DELETE", "/v1/messages"),
        ("POST", "/v1/messages?beta=true&x=1"),
        ("POST", "/v1/messages/../files"),
        ("GET", "/v1/organizations/me"),
    ],
)
def test_other_endpoints_are_refused(method: str, path: str) -> None:
    [decision] = decide({"method": method, "path": path})
    assert decision["endpoint"] is False


def test_betas_that_enable_reaching_out_are_stripped_unless_granted() -> None:
    beta = "claude-code-20250219,web-fetch-2025-09-10,mcp-client-2025-04-04,made-up-2030-01-01"
    plain, granted = decide(
        {"method": "GET", "path": "/v1/models", "headers": {"anthropic-beta": beta}},
        {
            "method": "GET",
            "path": "/v1/models",
            "headers": {"anthropic-beta": beta, "x-smuggle": "data"},
            "grants": ["web_fetch"],
        },
    )
    assert plain["headers"]["anthropic-beta"] == "claude-code-20250219"
    assert plain["stripped"] == [
        "web-fetch-2025-09-10",
        "mcp-client-2025-04-04",
        "made-up-2030-01-01",
    ]
    assert granted["headers"]["anthropic-beta"] == "claude-code-20250219,web-fetch-2025-09-10"
    assert "x-smuggle" in granted["dropped"] and "x-smuggle" not in granted["headers"]


def test_on_an_api_key_route_the_oauth_beta_is_stripped() -> None:
    """The agent holds an OAuth-shaped placeholder whatever the route injects: upstream, an API
    key must not arrive announcing a subscription login."""
    beta = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14"
    oauth, api_key = decide(
        {"method": "GET", "path": "/v1/models", "headers": {"anthropic-beta": beta}},
        {
            "method": "GET",
            "path": "/v1/models",
            "headers": {"anthropic-beta": beta},
            "apiKey": True,
        },
    )
    assert oauth["headers"]["anthropic-beta"] == beta
    assert api_key["headers"]["anthropic-beta"] == (
        "claude-code-20250219,interleaved-thinking-2025-05-14"
    )
    assert api_key["stripped"] == ["oauth-2025-04-20"]


def test_a_grant_lets_its_tool_through_and_nothing_else() -> None:
    web_fetch = message(tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}])
    code = message(tools=[{"type": "code_execution_20250825", "name": "c"}])
    allowed, other = decide(web_fetch | {"grants": ["web_fetch"]}, code | {"grants": ["web_fetch"]})
    assert allowed["problem"] is None
    assert other["problem"] and "code_execution" in other["problem"]
