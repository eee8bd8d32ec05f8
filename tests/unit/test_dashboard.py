"""The dashboard: pilot-driven flows against an in-memory proposal source, and --once."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import shlex
import sys
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log, Static

from remotebottle.cli import console, main
from remotebottle.dashboard import edit, render
from remotebottle.dashboard.app import DashboardApp
from remotebottle.dashboard.screens import ConfirmScreen
from remotebottle.errors import BottleError
from remotebottle.supervise import audit
from remotebottle.supervise.model import Decision, Proposal, is_operator_initiated

pytestmark = pytest.mark.unit

SECRET_VALUE = "hunter2xyzzy"


def proposal(
    pid: str, kind: str = "egress", created: str = "2026-01-01T10:00:00Z", **kw: Any
) -> Proposal:
    payloads: dict[str, dict[str, Any]] = {
        "egress": {"hosts": ["pypi.org", "files.pythonhosted.org"]},
        "cred-route": {
            "name": "github",
            "upstream": "https://api.github.com",
            "headers": ["Authorization"],
            "role": None,
        },
        "capability": {"packages": ["postgresql-client"], "dockerfile": "RUN apt-get install -y x"},
    }
    fields: dict[str, Any] = {
        "id": pid,
        "identity": "dev-ab12c",
        "host": "vm1",
        "kind": kind,
        "payload": payloads[kind],
        "reason": "needs packages",
        "created_at": created,
        **kw,
    }
    return Proposal(**fields)


class MemorySource:
    """A `ProposalSource` in memory: a list of proposals and a record of decisions."""

    def __init__(self, proposals: list[Proposal], fail: Exception | None = None) -> None:
        self.proposals = list(proposals)
        self.decisions: list[tuple[Proposal, Decision]] = []
        self.fail = fail

    def pending(self) -> list[Proposal]:
        return list(self.proposals)

    def decide(self, proposal: Proposal, decision: Decision) -> None:
        if self.fail is not None:
            raise self.fail
        self.decisions.append((proposal, decision))
        self.proposals = [p for p in self.proposals if p.id != proposal.id]


class FullSource(MemorySource):
    """Also offers the optional bottles() and allowlist() the dashboard uses when present."""

    def __init__(self, proposals: list[Proposal]) -> None:
        super().__init__(proposals)
        self.unreachable = {"vm9": "ssh: connection refused"}

    def bottles(self) -> list[tuple[str, str]]:
        return [("idle-zz999", "local")]

    def allowlist(self, identity: str, host: str) -> list[str] | None:
        return ["pypi.org"]


def drive(app: DashboardApp, steps: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    async def go() -> None:
        async with app.run_test(size=(180, 50)) as pilot:
            await settle(pilot)
            await steps(pilot)
            await settle(pilot)

    asyncio.run(go())


async def settle(pilot: Pilot[None]) -> None:
    """Let workers (source calls) finish and their results reach the screen."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def type_text(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))


async def approve(pilot: Pilot[None]) -> None:
    """`a`, then `y` in the dialog that names the proposal."""
    await pilot.press("a")
    await pilot.pause()
    assert isinstance(pilot.app.screen, ConfirmScreen), "no confirmation asked"
    await pilot.press("y")
    await pilot.pause()


def screen_text(app: DashboardApp) -> str:
    """Everything the operator could see: the rendered screen, the log, the status line."""
    shot = html.unescape(app.export_screenshot()).replace("\xa0", " ")
    log = "\n".join(app.query_one("#log", Log).lines)
    return "\n".join([shot, log, app.status_message])


def detail_text(app: DashboardApp) -> str:
    return str(app.query_one("#detail", Static).content)


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Point $EDITOR at a script that replaces the file with `content`; return where
    the script records the path it edited."""

    def use(content: str) -> Path:
        seen = tmp_path / "edited-path.txt"
        script = tmp_path / "fake_editor.py"
        script.write_text(
            "import sys, pathlib\n"
            f"pathlib.Path({str(seen)!r}).write_text(sys.argv[1])\n"
            "before = pathlib.Path(sys.argv[1]).read_text()\n"
            f"pathlib.Path({str(seen)!r} + '.before').write_text(before)\n"
            f"pathlib.Path(sys.argv[1]).write_text({content!r})\n"
        )
        monkeypatch.delenv("VISUAL", raising=False)
        monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
        return seen

    return use


def test_lists_pending_oldest_first_with_the_diff() -> None:
    source = FullSource(
        [
            proposal("p-new", created="2026-01-02T10:00:00Z"),
            proposal("p-old", "capability", created="2026-01-01T09:00:00Z"),
        ]
    )
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        assert [p.id for p in app.proposals] == ["p-old", "p-new"]
        assert app.query_one("#proposals", DataTable).row_count == 2
        assert "+ RUN apt-get install -y x" in detail_text(app)
        await pilot.press("down")
        text = detail_text(app)
        assert "+ files.pythonhosted.org" in text
        assert "pypi.org  (already allowed)" in text
        assert [(i, h) for i, h in app.bottles] == [("dev-ab12c", "vm1"), ("idle-zz999", "local")]
        assert "vm9: ssh: connection refused" in app.status_message

    drive(app, steps)


def test_approve_decides_and_removes_the_row() -> None:
    source = MemorySource([proposal("p1"), proposal("p2", created="2026-01-03T00:00:00Z")])
    app = DashboardApp(source, operator="alice", refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await approve(pilot)
        await settle(pilot)
        assert [p.id for p in app.proposals] == ["p2"]
        assert "approved egress p1" in app.status_message

    drive(app, steps)
    [(decided, decision)] = source.decisions
    assert decided.id == "p1"
    assert decision == Decision(approve=True, operator="alice")


def test_edit_then_approve_uses_the_edited_payload_and_removes_the_temp_file(
    editor: Callable[[str], Path],
) -> None:
    seen = editor('{"hosts": ["edited.example"]}')
    source = MemorySource([proposal("p1")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("e")
        await settle(pilot)

    drive(app, steps)
    [(_, decision)] = source.decisions
    assert decision.approve and decision.payload == {"hosts": ["edited.example"]}
    assert json.loads(Path(f"{seen}.before").read_text()) == proposal("p1").payload
    assert not Path(seen.read_text()).exists()


def test_edit_to_invalid_json_keeps_it_pending(editor: Callable[[str], Path]) -> None:
    seen = editor("{not json")
    source = MemorySource([proposal("p1")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("e")
        await settle(pilot)
        assert "not valid JSON" in app.status_message
        assert "stays pending" in app.status_message
        assert [p.id for p in app.proposals] == ["p1"]

    drive(app, steps)
    assert source.decisions == []
    assert not Path(seen.read_text()).exists()


def test_edit_of_the_wrong_shape_keeps_it_pending(editor: Callable[[str], Path]) -> None:
    editor('{"hosts": "pypi.org"}')
    source = MemorySource([proposal("p1")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("e")
        await settle(pilot)
        assert '"hosts" must be a list' in app.status_message

    drive(app, steps)
    assert source.decisions == []


def test_reject_asks_for_a_reason() -> None:
    source = MemorySource([proposal("p1")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("enter")  # an empty reason is not accepted
        await pilot.pause()
        assert source.decisions == []
        await type_text(pilot, "too broad")
        await pilot.press("enter")
        await settle(pilot)
        assert "rejected egress p1" in app.status_message
        assert app.proposals == []

    drive(app, steps)
    [(_, decision)] = source.decisions
    assert decision == Decision(approve=False, reason="too broad")


def test_cancelled_reject_keeps_it_pending() -> None:
    source = MemorySource([proposal("p1")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("escape")
        await settle(pilot)
        assert "stays pending" in app.status_message

    drive(app, steps)
    assert source.decisions == []


def test_a_failed_decision_is_shown_and_the_proposal_stays_pending() -> None:
    source = MemorySource(
        [proposal("p1")], fail=BottleError("engine on vm1 said no", hint="check vm1")
    )
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await approve(pilot)
        await settle(pilot)
        assert "engine on vm1 said no (check vm1)" in app.status_message
        assert "stays pending" in app.status_message
        assert app.query_one("#status", Static).has_class("error")
        assert [p.id for p in app.proposals] == ["p1"]
        assert app.query_one("#proposals", DataTable).row_count == 1
        source.fail = None
        await approve(pilot)
        await settle(pilot)
        assert app.proposals == []

    drive(app, steps)
    assert len(source.decisions) == 1


def test_cred_route_approval_asks_for_the_secret_and_never_shows_it() -> None:
    source = MemorySource([proposal("p1", "cred-route")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        assert "headers   Authorization" in detail_text(app)
        await approve(pilot)
        assert isinstance(app.focused, Input) and app.focused.password
        await type_text(pilot, SECRET_VALUE)
        await pilot.pause()
        assert SECRET_VALUE not in screen_text(app)
        await pilot.press("enter")
        await settle(pilot)
        assert "approved cred-route p1" in app.status_message
        assert SECRET_VALUE not in screen_text(app)

    drive(app, steps)
    [(_, decision)] = source.decisions
    assert decision.secrets == {"Authorization": SECRET_VALUE}
    assert SECRET_VALUE not in repr(decision)


def test_a_failure_message_never_echoes_the_secret() -> None:
    source = MemorySource(
        [proposal("p1", "cred-route")], fail=BottleError(f"bad header value {SECRET_VALUE}")
    )
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await approve(pilot)
        await type_text(pilot, SECRET_VALUE)
        await pilot.press("enter")
        await settle(pilot)
        assert "bad header value ***" in app.status_message
        assert SECRET_VALUE not in screen_text(app)
        assert [p.id for p in app.proposals] == ["p1"]

    drive(app, steps)


def test_operator_allowlist_edit_on_a_running_bottle(editor: Callable[[str], Path]) -> None:
    editor('{"hosts": ["extra.example"]}')
    source = FullSource([])
    app = DashboardApp(source, operator="alice", refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        app.query_one("#bottles", DataTable).focus()
        await pilot.press("p")
        await settle(pilot)

    drive(app, steps)
    [(synthetic, decision)] = source.decisions
    assert is_operator_initiated(synthetic)
    assert (synthetic.identity, synthetic.host, synthetic.kind) == ("idle-zz999", "local", "egress")
    assert synthetic.payload == decision.payload == {"hosts": ["extra.example"]}
    assert decision.approve and decision.operator == "alice"


def test_operator_route_edit_asks_for_the_secret(editor: Callable[[str], Path]) -> None:
    route = {"name": "api", "upstream": "https://api.example", "headers": ["X-Key"], "role": None}
    editor(json.dumps(route))
    source = FullSource([])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        app.query_one("#bottles", DataTable).focus()
        await pilot.press("e")
        await settle(pilot)
        await type_text(pilot, SECRET_VALUE)
        await pilot.press("enter")
        await settle(pilot)
        assert SECRET_VALUE not in screen_text(app)

    drive(app, steps)
    [(synthetic, decision)] = source.decisions
    assert is_operator_initiated(synthetic) and synthetic.kind == "cred-route"
    assert decision.payload == route and decision.secrets == {"X-Key": SECRET_VALUE}


def test_refresh_picks_up_new_proposals_periodically() -> None:
    source = MemorySource([])
    app = DashboardApp(source, refresh_seconds=0.05)

    async def steps(pilot: Pilot[None]) -> None:
        assert app.proposals == []
        source.proposals.append(proposal("late"))
        await pilot.pause(0.3)
        await settle(pilot)
        assert [p.id for p in app.proposals] == ["late"]

    drive(app, steps)


@pytest.mark.parametrize("key", ["R", "f5"])
def test_refresh_on_demand(key: str) -> None:
    source = MemorySource([])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        source.proposals.append(proposal("late"))
        await pilot.press(key)
        await settle(pilot)
        assert [p.id for p in app.proposals] == ["late"]

    drive(app, steps)


def test_answer_keys_need_a_proposal_not_a_bottle() -> None:
    source = FullSource([proposal("p1")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        app.query_one("#bottles", DataTable).focus()
        await pilot.press("a")
        await settle(pilot)
        assert "select a proposal" in app.status_message

    drive(app, steps)
    assert source.decisions == []


def test_a_failing_read_is_shown() -> None:
    class Broken(MemorySource):
        def pending(self) -> list[Proposal]:
            raise BottleError("tunnel to vm1 closed")

    app = DashboardApp(Broken([]), refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        assert "tunnel to vm1 closed" in app.status_message

    drive(app, steps)


def test_agent_text_is_neither_markup_nor_terminal_escapes() -> None:
    hostile = proposal("p1", reason="[red]hi[/red] \x1b[2J", identity="dev-[b]x")
    text = render.detail(hostile).plain
    assert "[red]hi[/red] \\x1b[2J" in text
    assert "\x1b" not in "".join(render.row(hostile))


@pytest.mark.parametrize(
    ("kind", "payload", "problem"),
    [
        ("egress", {"hosts": []}, "at least one"),
        ("cred-route", {"name": "x", "upstream": "http://x", "headers": []}, "must be an https"),
        ("capability", {"packages": []}, "needs"),
    ],
)
def test_edited_payloads_are_checked(kind: Any, payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(edit.EditError, match=problem):
        edit.check_payload(kind, payload)


def inject(monkeypatch: pytest.MonkeyPatch, source: MemorySource) -> MemorySource:
    """Make the CLI's `open_sources` yield `source`."""

    @contextlib.contextmanager
    def open_sources(manifest: Any, *, progress: Any, registry: Any) -> Iterator[MemorySource]:
        yield source

    module = types.ModuleType("remotebottle.supervise.source")
    module.open_sources = open_sources  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "remotebottle.supervise.source", module)
    return source


@pytest.fixture
def injected(monkeypatch: pytest.MonkeyPatch) -> MemorySource:
    proposals = [proposal("p2", created="2026-01-02T00:00:00Z"), proposal("p1", "cred-route")]
    return inject(monkeypatch, MemorySource(proposals))


def test_once_json_prints_pending_proposals(
    injected: MemorySource, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--once", "--format=json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in printed] == ["p1", "p2"]
    assert printed[0] == proposal("p1", "cred-route").model_dump()
    assert injected.decisions == []


def test_once_prints_a_table(
    injected: MemorySource, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console.out, "width", 200)
    assert main(["dashboard", "--once"]) == 0
    out = capsys.readouterr().out
    assert "route github -> https://api.github.com" in out
    assert out.index("p1") < out.index("p2")


def test_once_warns_of_unreachable_hosts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    inject(monkeypatch, FullSource([proposal("p1")]))
    assert main(["dashboard", "--once", "--format=json"]) == 0
    out, err = capsys.readouterr()
    assert [p["id"] for p in json.loads(out)] == ["p1"]
    assert "vm9: not reachable" in err


def test_json_without_once_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--format=json"]) == 2
    assert "--once" in capsys.readouterr().err


def test_a_proposal_withdrawn_under_the_cursor_is_not_replaced_by_its_neighbour() -> None:
    """The agent withdraws the proposal the operator is reading; the cursor lands on the
    next one. One key must not approve that one: nothing is approved until the operator
    moves to a proposal, and the confirmation names the one it answers."""
    source = MemorySource([proposal("p1"), proposal("p2", "cred-route", created="2026-01-02")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        assert "egress proposal p1" in detail_text(app)
        source.proposals = [p for p in source.proposals if p.id != "p1"]  # withdrawn
        await pilot.press("R")
        await settle(pilot)
        assert "p1 is no longer pending" in detail_text(app)
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert "nothing done: p1 is no longer pending" in app.status_message
        assert "p1 is no longer pending" in detail_text(app)
        assert source.decisions == []

        await pilot.press("down")  # the operator chooses p2, the only one left
        await pilot.pause()
        assert "cred-route proposal p2" in detail_text(app)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.proposal.id == "p2"
        assert "Approve cred-route proposal p2 from dev-ab12c on vm1?" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        assert "p2: not approved (cancelled)" in app.status_message

    drive(app, steps)
    assert source.decisions == []


def test_a_proposal_withdrawn_while_its_confirmation_is_open_is_not_approved() -> None:
    source = MemorySource([proposal("p1"), proposal("p2", created="2026-01-02T00:00:00Z")])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.screen.proposal.id == "p1"
        source.proposals = [p for p in source.proposals if p.id != "p1"]
        app.action_refresh()  # the periodic refresh, under the dialog
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert "nothing approved: p1 is no longer pending" in app.status_message
        assert [p.id for p in app.proposals] == ["p2"]

    drive(app, steps)
    assert source.decisions == []


LOOK_ALIKE = "https://api.\u0430nthropic.com/v1"  # a Cyrillic a


def test_a_look_alike_upstream_is_shown_in_punycode_with_a_warning() -> None:
    route = {"name": "claude", "upstream": LOOK_ALIKE, "headers": ["x-api-key"], "role": None}
    source = MemorySource([proposal("p1", "cred-route", payload=route)])
    app = DashboardApp(source, refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        text = detail_text(app)
        assert "upstream  https://api.xn--nthropic-06g.com/v1" in text
        assert "! MIXED SCRIPTS (CYRILLIC, LATIN): this name may imitate another host" in text
        shown = screen_text(app)
        assert "route claude -> https://api.xn--nthropic-06g.com/v1!" in shown
        assert "\u0430nthropic" not in shown, "the look-alike is shown as it reads"
        await pilot.press("a")
        await pilot.pause()
        assert "MIXED SCRIPTS" in screen_text(app), "the confirmation hides the warning"

    drive(app, steps)


def test_hosts_are_shown_as_installed_and_internationalised_ones_say_how_they_read() -> None:
    hosts = {"hosts": ["m\u00fcnchen.de", "xn--pple-43d.com", "pypi.org"]}  # Cyrillic a
    text = render.detail(proposal("p1", payload=hosts)).plain
    assert "+ xn--mnchen-3ya.de\n      internationalised: reads as m\u00fcnchen.de" in text
    assert "+ xn--pple-43d.com\n      ! MIXED SCRIPTS (CYRILLIC, LATIN)" in text
    assert render.summary(proposal("p1", payload=hosts)) == (
        "egress: xn--mnchen-3ya.de, xn--pple-43d.com!, pypi.org"
    )


def test_a_plain_http_upstream_is_flagged() -> None:
    route = {"name": "x", "upstream": "http://api.example.com", "headers": ["A"], "role": None}
    text = render.detail(proposal("p1", "cred-route", payload=route)).plain
    assert "! not https: the credential would travel in clear" in text


def test_the_reason_is_one_escaped_line() -> None:
    forged = "ok\n\nchange\n  + pypi.org\tfine"
    text = render.detail(proposal("p1", reason=forged)).plain
    assert "reason   ok\\n\\nchange\\n  + pypi.org\\tfine\n" in text
    assert text.count("change\n") == 1


def test_the_capability_detail_says_what_the_build_can_reach() -> None:
    text = render.detail(proposal("p1", "capability")).plain
    assert "apt-get downloads the packages from the image's Debian sources" in text
    assert "the Dockerfile lines run with no network" in text


def broken_audit_log(identity: str) -> Path:
    """A bottle's audit log with its second of three entries removed."""
    audit.record_refusals(identity, [{"by": "egress proxy", "n": str(n)} for n in range(3)])
    path = audit.log_path(identity)
    lines = path.read_text().splitlines()
    path.write_text(f"{lines[0]}\n{lines[2]}\n")
    return path


def test_a_broken_audit_log_is_reported_naming_the_first_bad_entry() -> None:
    path = broken_audit_log("dev-ab12c")
    audit.record_refusals("idle-zz999", [{"by": "egress proxy"}])  # intact: not reported
    app = DashboardApp(FullSource([proposal("p1")]), refresh_seconds=3600)

    async def steps(pilot: Pilot[None]) -> None:
        assert app.status_message == (
            f"audit log {path}: BROKEN at entry 2 (line 2): does not chain from entry 1"
            " (an entry was removed, inserted or moved)"
        )
        assert app.query_one("#status", Static).has_class("error")
        said = [line for line in app.query_one("#log", Log).lines if "audit log" in line]
        assert said == [f"error: {app.status_message}"]

    drive(app, steps)


def test_once_warns_of_a_broken_audit_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = broken_audit_log("idle-zz999")  # a running bottle with no proposal
    inject(monkeypatch, FullSource([proposal("p1")]))
    assert main(["dashboard", "--once", "--format=json"]) == 0
    out, err = capsys.readouterr()
    assert [p["id"] for p in json.loads(out)] == ["p1"]
    assert f"warning: audit log {path}: BROKEN at entry 2 (line 2)" in " ".join(err.split())
