"""Bad input never gives a traceback (issue #16): hostile manifests, `--host` values,
identities, session records and proposal payloads through the real entry points.

Every outcome is success, or `error:` lines (one per problem) and at most one `hint:` with
exit status 1 (2 for a usage error); nothing from the input reaches the terminal raw
(control, bidi and other invisible characters come out escaped) or as a wall of text; and
nothing under HOME, the state directory or the project is written. The hostile values and
the mutations are in `fuzzing.py`.

`RBOTTLE_FUZZ_SCALE=N` multiplies every test's examples (at 1 the file takes a few
seconds); the inputs tried are counted and printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from remotebottle import state
from remotebottle.backend.docker import labels
from remotebottle.errors import HostError, RemoteBottleError
from remotebottle.hosts.resolve import resolve_host
from remotebottle.manifest import Manifest, load
from remotebottle.supervise import capability, queue, rules
from tests.conftest import FULL_MANIFEST, SECRET
from tests.unit.fuzzing import (
    TRIED,
    assert_clean_message,
    assert_terminal_safe,
    document_bytes,
    hostile_text,
    identities,
    mostly,
    mutated,
    run_and_judge,
    unsafe,
)

pytestmark = [
    pytest.mark.unit,
    # Hypothesis describes each drawn megabyte string, and says so.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

SCALE = int(os.environ.get("RBOTTLE_FUZZ_SCALE", "1"))
STARTED = time.monotonic()


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        # Shrinking a megabyte string takes minutes: a failure is reported as drawn.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", autouse=True)
def report_count(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter is None or capture is None:
        return
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(TRIED.items()))
    verdict = "some failed" if request.session.testsfailed else "no traceback"
    with capture.global_and_fixture_disabled():
        reporter.write_line(
            f"\nfuzz: {sum(TRIED.values())} inputs tried in {time.monotonic() - STARTED:.1f}s,"
            f" {verdict} ({by_kind})"
        )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project directory is the current one; no engine answers."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "claude-bottle.json").write_text(json.dumps(FULL_MANIFEST))
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("RB_TEST_TOKEN", SECRET)
    monkeypatch.setenv("CLAUDE_BOTTLE_OAUTH_TOKEN", "sk-ant-oat01-fuzz-not-real")
    return tmp_path


def manifest_names(doc: Any, section: str) -> list[str]:
    entries = doc.get(section) if isinstance(doc, dict) else None
    return [k for k in entries if isinstance(k, str)] if isinstance(entries, dict) else []


# -- the command line --------------------------------------------------------------------------


@fuzz(40)
@given(data=st.data())
def test_start_dry_run_with_hostile_manifests_hosts_and_agents(
    world: Path, data: st.DataObject
) -> None:
    doc = mutated(FULL_MANIFEST, data) if data.draw(st.booleans()) else FULL_MANIFEST
    text = json.dumps(doc).encode() if data.draw(st.booleans()) else document_bytes(doc, data)
    (world / "project" / "claude-bottle.json").write_bytes(text)
    agents = ["implementer", "plain", *manifest_names(doc, "agents")]
    hosts = ["local", "vm1", "cloud", "ec2", *manifest_names(doc, "hosts")]
    argv = ["start", "--dry-run", data.draw(mostly(st.sampled_from(agents)))]
    if data.draw(st.booleans()):
        argv.append("--host=" + data.draw(mostly(st.sampled_from(hosts))))
    argv.append("--format=" + data.draw(mostly(st.sampled_from(["json", "text"]))))
    if data.draw(st.booleans()):
        argv.append("-p=" + data.draw(hostile_text))
    elif data.draw(st.booleans()):
        argv += ["--", *data.draw(st.lists(hostile_text, max_size=3))]
    run_and_judge("start --dry-run", argv, world)


@fuzz(30)
@given(value=hostile_text, data=st.data())
def test_options_and_arguments_of_every_kind(world: Path, value: str, data: st.DataObject) -> None:
    argv = data.draw(
        st.sampled_from(
            [
                ["start", "--dry-run", "plain", "--manifest=" + value],
                ["start", "--dry-run", "plain", "--cwd=" + value],
                ["start", "--dry-run", "plain", "--reconnect-limit=" + value],
                ["start", "--dry-run", value],
                ["hosts", "list", value],
                ["hosts", value],
                ["list", "--format=" + value],
                ["schema", value],
                [value],
                ["--debug", "start", "--dry-run", value],
            ]
        )
    )
    run_and_judge("options", argv, world)


@fuzz(30)
@given(data=st.data())
def test_hosts_with_hostile_manifests(world: Path, data: st.DataObject) -> None:
    (world / "project" / "claude-bottle.json").write_bytes(document_bytes(FULL_MANIFEST, data))
    fmt = data.draw(st.sampled_from(["--format=json", "--format=text"]))
    run_and_judge("hosts", ["hosts", fmt], world)


@fuzz(30)
@given(host=hostile_text)
def test_host_arguments_that_do_not_resolve_are_refused_cleanly(world: Path, host: str) -> None:
    """`hosts trust` and `env` go on to reach a host that resolves (not in a unit run): the
    ones `resolve_host` refuses must be refused cleanly by the commands too."""
    TRIED["resolve_host"] += 1
    try:
        resolved = resolve_host(host, load())
    except HostError as exc:
        assert_clean_message(exc)
    else:
        if not resolved.is_local:
            return
    run_and_judge("hosts trust / env", ["hosts", "trust", host, "--yes"], world)
    run_and_judge("hosts trust / env", ["env", host], world)


@fuzz(30)
@given(identity=identities, command=st.sampled_from(["attach", "resume"]))
def test_attach_and_resume_with_hostile_identities(
    world: Path, identity: str, command: str
) -> None:
    run_and_judge(f"{command} IDENTITY", [command, identity], world)


VALID_RECORD = {
    "identity": "implementer-ab12c",
    "agent": "implementer",
    "host": "local",
    "started_at": "2025-01-01T00:00:00+00:00",
    "cwd": None,
    "copy_cwd": False,
    "ended_at": "2025-01-01T01:00:00+00:00",
    "manifest": None,
    "images": None,
    "host_entry": {"provider": "local", "images": "ship"},
    "phase": "ended",
}


@fuzz(40)
@given(data=st.data())
def test_resume_with_hostile_session_records(world: Path, data: st.DataObject) -> None:
    """Resume reads the record, plans, and stops at the y/N it has no terminal for."""
    record = {**VALID_RECORD, "manifest": str(world / "project" / "claude-bottle.json")}
    directory = state.state_dir("implementer-ab12c")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metadata.json").write_bytes(document_bytes(record, data))
    run_and_judge("resume RECORD", ["resume", "implementer-ab12c"], world)


@fuzz(40)
@given(data=st.data())
def test_the_manifest_loader_reads_or_refuses_any_file(world: Path, data: st.DataObject) -> None:
    home_file = world / "home" / "claude-bottle.json"
    project_file = world / "project" / "claude-bottle.json"
    home_file.write_bytes(document_bytes({"hosts": FULL_MANIFEST["hosts"]}, data))
    project_file.write_bytes(document_bytes(FULL_MANIFEST, data))
    TRIED["manifest load"] += 1
    try:
        loaded = load([home_file, project_file])
    except RemoteBottleError as exc:
        for line in exc.message.split("\n"):
            assert_terminal_safe(line)
        return
    assert isinstance(loaded, Manifest)


def test_a_manifest_wrong_everywhere_says_ten_problems_and_how_many_more(world: Path) -> None:
    bottles = {f"Bottle {i}": {} for i in range(1000)}
    (world / "project" / "claude-bottle.json").write_text(json.dumps({"bottles": bottles}))
    outcome = run_and_judge(None, ["start", "--dry-run", "plain"], world)
    assert outcome.err.count("error: ") == 11
    assert "and 990 more problems" in outcome.err


# -- proposals ---------------------------------------------------------------------------------

PROPOSALS: dict[str, dict[str, Any]] = {
    "egress": {"hosts": ["pypi.org", "*.example.com"]},
    "cred-route": {
        "name": "gh",
        "upstream": "https://api.github.com",
        "headers": ["Authorization"],
        "role": None,
    },
    "capability": {"packages": ["postgresql-client"], "dockerfile": "RUN true\n"},
}


@fuzz(60)
@given(data=st.data(), operator=st.booleans())
def test_proposal_payloads_are_checked_or_refused_in_one_line(
    data: st.DataObject, operator: bool
) -> None:
    """What the operator's machine holds a payload to before applying it (the dashboard
    shows the refusal)."""
    kind = data.draw(mostly(st.sampled_from(sorted(PROPOSALS))))
    payload = mutated(PROPOSALS.get(kind, PROPOSALS["egress"]), data)
    TRIED["proposal payload"] += 1
    try:
        checked = rules.check(kind, payload, operator=operator)
    except RemoteBottleError as exc:
        assert_clean_message(exc)
        return
    if kind == "capability":
        assert not unsafe(capability.render(checked).replace("\t", " "))


@fuzz(60)
@given(data=st.data())
def test_the_supervisor_files_or_refuses_any_request_body(data: st.DataObject) -> None:
    """The sidecar's own reading of an agent's POST /proposals: filed, or `Invalid`."""
    script = rules._script()
    kind = data.draw(st.sampled_from(sorted(PROPOSALS)))
    body = {"kind": kind, "payload": PROPOSALS[kind], "reason": "needed", "timeout": 60}
    TRIED["proposal filing"] += 1
    with contextlib.suppress(script.Invalid):
        script.filing(mutated(body, data))


@fuzz(50)
@given(data=st.data())
def test_a_listed_proposal_is_read_or_refused_in_one_line(data: st.DataObject) -> None:
    """What the operator's machine makes of an entry of a supervisor's listing."""
    item = {
        "id": "p-1",
        "kind": "egress",
        "payload": PROPOSALS["egress"],
        "reason": "needed",
        "created_at": "2025-01-01T00:00:00+00:00",
    }
    found = mutated({labels.IDENTITY: "implementer-ab12c", labels.HOST: "vm1"}, data)
    TRIED["listed proposal"] += 1
    try:
        queue._proposal(mutated(item, data), found if isinstance(found, dict) else {})
    except RemoteBottleError as exc:
        assert_clean_message(exc)


# -- what the fuzz found, kept as examples -----------------------------------------------------

DEEP_NUMBER = '{"hosts": {"vm1": {"provider": "ssh", "address": "h", "port": ' + "1" * 5000 + "}}}"
ESC_ADDRESS = {"hosts": {"vm1": {"provider": "ssh", "address": "vm1\x1b[2J"}}}
LONG_SKILL = {"bottles": {"b": {}}, "agents": {"a": {"bottle": "b", "skills": ["s" * 300]}}}


@pytest.mark.parametrize(
    ("manifest", "argv", "expected"),
    [
        (DEEP_NUMBER, ["hosts"], "invalid JSON: a number with too many digits"),
        (ESC_ADDRESS, ["hosts"], "'vm1\\x1b[2J' is not a one-line value"),
        (LONG_SKILL, ["start", "--dry-run", "a"], "is not a usable path: over 4095 bytes"),
        (None, ["start", "--dry-run", "plain", "--host=ssh://a b"], "not a valid ssh:// URL"),
        (None, ["start", "--dry-run", "plain", "--host=ssh://h\x01"], "not a valid ssh:// URL"),
        (None, ["start", "--dry-run", "x" * 10**6], "characters]"),
        (None, ["start", "--dry-run", "a\x1b]0;t\x07"], "no agent named 'a\\x1b]0;t\\x07'"),
        (None, ["schema", "x\nerror: forged \x1b[31m"], "unrecognized arguments: x\\nerror:"),
        (None, ["start", "--dry-run", "plain", "--manifest=\x1b[2J"], "\\x1b[2J: no such"),
        (None, ["start", "--dry-run", "plain", "--host=--"], "`--` cannot be an option's value"),
        (None, ["start", "--dry-run", "plain", "--cwd=" + "a" * 300], "not a directory"),
        (None, ["start", "--dry-run", "plain", "--manifest=" + "a" * 300], "no such manifest"),
    ],
)
def test_what_the_fuzz_found_is_refused_in_one_clean_line(
    world: Path, manifest: Any, argv: list[str], expected: str
) -> None:
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (world / "project" / "claude-bottle.json").write_text(text)
    outcome = run_and_judge(None, argv, world)
    assert outcome.code in (1, 2) and expected in outcome.err, outcome.err[:2000]


def test_a_session_record_of_the_wrong_shape_is_unreadable_state(world: Path) -> None:
    directory = state.state_dir("implementer-ab12c")
    directory.mkdir(parents=True)
    (directory / "metadata.json").write_text(json.dumps({**VALID_RECORD, "manifest": [{}]}))
    outcome = run_and_judge(None, ["resume", "implementer-ab12c"], world)
    assert "unreadable state: `manifest` is not a path" in outcome.err


def test_the_supervisor_refuses_an_object_as_kind() -> None:
    script = rules._script()
    with pytest.raises(script.Invalid, match="unknown kind"):
        script.filing({"kind": {}, "payload": {}})


def test_a_malformed_listed_proposal_is_one_line() -> None:
    with pytest.raises(RemoteBottleError, match=r"\(4 problems, the first: id: Field required\)"):
        queue._proposal({"reason": "x\n\x1b[2J"}, {})


@pytest.mark.parametrize("words", [["-p", "hi\x1b]0;owned\x07"], ["--", "echo", "\u202eevil"]])
def test_the_preflight_shows_the_command_escaped(world: Path, words: list[str]) -> None:
    outcome = run_and_judge(None, ["start", "--dry-run", "plain", *words], world)
    assert outcome.code == 0 and ("\\x1b]0;owned\\x07" in outcome.err or "\\u202e" in outcome.err)
