"""`DashboardApp`: pending proposals, oldest first, and the operator's answers.

The app talks only to a `ProposalSource`. Calls to it (which may cross SSH) run
in worker threads so the screen stays live; every failure lands in the status
line and the log, and a proposal whose answer failed stays pending.

An answer goes to the proposal the operator chose (`ProposalTable.chosen`), never to
whichever row a refresh left under the cursor, and an approval is confirmed in a
dialog that names the proposal.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import QueryType
from textual.widgets import DataTable, Footer, Header, Label, Log, Static

from remotebottle.dashboard import edit, render
from remotebottle.dashboard.picker import ProposalTable
from remotebottle.dashboard.screens import ConfirmScreen, ReasonScreen, SecretsScreen
from remotebottle.dashboard.sources import BottleRef, Snapshot, take_snapshot
from remotebottle.errors import RemoteBottleError
from remotebottle.supervise.model import (
    Decision,
    Kind,
    Proposal,
    ProposalSource,
    is_operator_initiated,
)


def describe(exc: Exception, secrets: Iterable[str] = ()) -> str:
    """An exception as one line for the status line, with any secret value masked."""
    if isinstance(exc, RemoteBottleError):
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
    else:
        message = f"{type(exc).__name__}: {exc}"
    for value in secrets:
        if value:
            message = message.replace(value, "***")
    return message


class DashboardApp(App[None]):
    TITLE = "rbottle dashboard"
    CSS = """
    #lists { width: 3fr; }
    #detail-pane { width: 2fr; border-left: solid $primary; padding: 0 1; }
    #proposals { height: 2fr; }
    #bottles { height: 1fr; }
    .heading { text-style: bold; padding: 0 1; }
    #log { height: 6; border-top: solid $primary; }
    #status { height: 1; padding: 0 1; background: $panel; }
    #status.error { background: $error; }
    .dialog { width: 80; height: auto; border: thick $primary; padding: 1 2;
              background: $surface; }
    .dialog Label { width: 100%; }
    .confirm-detail { height: auto; max-height: 24; border: solid $primary; }
    ReasonScreen, SecretsScreen, ConfirmScreen { align: center middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "approve"),
        Binding("e", "edit", "edit+approve / routes"),
        Binding("r", "reject", "reject"),
        Binding("p", "edit_allowlist", "bottle allowlist"),
        Binding("R", "refresh", "refresh"),
        Binding("f5", "refresh", "refresh", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        source: ProposalSource,
        *,
        operator: str = "operator",
        refresh_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self.source = source
        self.operator = operator
        self.refresh_seconds = refresh_seconds
        self.proposals: list[Proposal] = []
        self.bottles: list[BottleRef] = []
        self.allowlists: dict[BottleRef, list[str] | None] = {}
        self.status_message = ""
        self._deciding: set[str] = set()
        self._answered_here: set[str] = set()
        self._unreachable: dict[str, str] = {}
        self._broken_audit: dict[str, str] = {}
        self._refreshing = False
        self._refresh_again = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="lists"):
                yield Label("pending proposals (oldest first)", classes="heading")
                yield ProposalTable(id="proposals", cursor_type="row", zebra_stripes=True)
                yield Label("bottles", classes="heading")
                yield DataTable(id="bottles", cursor_type="row")
            with VerticalScroll(id="detail-pane"):
                yield Static("no proposal selected", id="detail")
        yield Log(id="log", max_lines=500)
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._table().add_columns("identity", "host", "kind", "summary", "age", "id")
        self._bottle_table().add_columns("identity", "host")
        self._table().focus()
        self.action_refresh()
        self.set_interval(self.refresh_seconds, self.action_refresh)

    # -- widgets and selection

    def _main(self, selector: str, kind: type[QueryType]) -> QueryType:
        """A widget of the main screen, also while a dialog is on top of it."""
        return self.screen_stack[0].query_one(selector, kind)

    def _table(self) -> ProposalTable:
        return self._main("#proposals", ProposalTable)

    def _bottle_table(self) -> DataTable[Text]:
        return self._main("#bottles", DataTable)

    def selected(self) -> Proposal | None:
        """The proposal the operator chose, while it is pending."""
        chosen = self._table().chosen
        return next((p for p in self.proposals if p.id == chosen), None)

    def _lost(self) -> str | None:
        """Why nothing is selected although the operator had chosen a proposal."""
        chosen = self._table().chosen
        if chosen is None or self.selected() is not None:
            return None
        if chosen in self._answered_here:
            return f"{render.clean(chosen)} was answered; move the cursor to choose the next"
        return (
            f"{render.clean(chosen)} is no longer pending (withdrawn by the agent, timed out"
            " or answered elsewhere): move the cursor to choose a proposal"
        )

    def selected_bottle(self) -> BottleRef | None:
        """The bottle under the cursor: in the bottles table, or the selected proposal's."""
        table = self._bottle_table()
        if table.has_focus:
            row = table.cursor_row
            return self.bottles[row] if 0 <= row < len(self.bottles) else None
        proposal = self.selected()
        return (proposal.identity, proposal.host) if proposal else None

    def say(self, message: str, *, error: bool = False) -> None:
        """The status line and the log: where every outcome, good or bad, is shown."""
        message = render.clean(" / ".join(message.splitlines()))
        self.status_message = message
        status = self._main("#status", Static)
        status.update(Text(message))
        status.set_class(error, "error")
        self._main("#log", Log).write_line(("error: " if error else "") + message)

    # -- refreshing

    def action_refresh(self) -> None:
        if self._refreshing:
            # A read already under way may predate a decision: read again after it.
            self._refresh_again = True
            return
        self._refreshing = True
        self._refresh_again = False

        def work() -> None:
            try:
                snapshot = take_snapshot(self.source)
            except Exception as exc:  # shown, not raised: the dashboard keeps running
                self.call_from_thread(self._refreshed, None, describe(exc))
            else:
                self.call_from_thread(self._refreshed, snapshot, None)

        self.run_worker(work, thread=True, group="refresh", exit_on_error=False)

    def _refreshed(self, snapshot: Snapshot | None, failure: str | None) -> None:
        self._refreshing = False
        if self._refresh_again:
            self.action_refresh()
            return
        if snapshot is None:
            self.say(f"could not read proposals: {failure}", error=True)
            return
        self.allowlists = snapshot.allowlists
        self._show(snapshot.proposals, snapshot.bottles)
        if snapshot.unreachable != self._unreachable:
            self._unreachable = snapshot.unreachable
            if snapshot.unreachable:
                hosts = "; ".join(f"{h}: {why}" for h, why in sorted(snapshot.unreachable.items()))
                self.say(f"not reachable (proposals there not shown): {hosts}", error=True)
        if snapshot.broken_audit != self._broken_audit:
            self._broken_audit = snapshot.broken_audit
            for problem in snapshot.broken_audit.values():
                self.say(problem, error=True)

    def _show(self, proposals: list[Proposal], bottles: list[BottleRef]) -> None:
        table = self._table()
        self.proposals = proposals
        table.clear()
        for proposal in proposals:
            cells = render.row(proposal)
            table.add_row(*(Text(c) for c in cells), key=proposal.id)
        ids = [p.id for p in proposals]
        if table.chosen in ids:
            table.move_cursor(row=ids.index(table.chosen))
        elif table.chosen is None and ids:
            table.chosen = ids[0]  # the first shown: the row under the cursor
        bottle_table = self._bottle_table()
        keep_row = bottle_table.cursor_row
        self.bottles = bottles
        bottle_table.clear()
        for identity, host in bottles:
            bottle_table.add_row(Text(render.clean(identity)), Text(render.clean(host)))
        if bottles:
            bottle_table.move_cursor(row=min(keep_row, len(bottles) - 1))
        self._show_detail()

    def _show_detail(self) -> None:
        proposal = self.selected()
        pane = self._main("#detail", Static)
        if proposal is None:
            lost = self._lost()
            pane.update(Text(lost or ("no pending proposals" if not self.proposals else "")))
            return
        allowlist = self.allowlists.get((proposal.identity, proposal.host))
        pane.update(render.detail(proposal, allowlist))

    def on_proposal_table_chosen(self, _event: ProposalTable.Chosen) -> None:
        self._show_detail()

    # -- answering proposals

    def _actionable(self) -> Proposal | None:
        if self._bottle_table().has_focus:
            self.say("select a proposal in the proposals table first (tab)")
            return None
        proposal = self.selected()
        if proposal is None:
            self.say(f"nothing done: {self._lost() or 'no proposal selected'}")
            return None
        if proposal.id in self._deciding:
            self.say(f"{proposal.id} is already being answered")
            return None
        return proposal

    def action_approve(self) -> None:
        proposal = self._actionable()
        if proposal is None:
            return

        def answered(confirmed: bool | None) -> None:
            if not confirmed:
                self.say(f"{proposal.id}: not approved (cancelled); it stays pending")
            elif proposal.id not in {p.id for p in self.proposals}:
                self.say(f"nothing approved: {proposal.id} is no longer pending", error=True)
            else:
                self._approve(proposal, None)

        allowlist = self.allowlists.get((proposal.identity, proposal.host))
        self.push_screen(ConfirmScreen(proposal, allowlist), answered)

    def action_edit(self) -> None:
        if self._bottle_table().has_focus:
            self._operator_edit("cred-route")
            return
        proposal = self._actionable()
        if proposal is None:
            return
        edited = self._edit(proposal.payload, proposal.kind, f"{proposal.id} stays pending")
        if edited is not None:
            self._approve(proposal, edited)

    def action_reject(self) -> None:
        proposal = self._actionable()
        if proposal is None:
            return

        def answered(reason: str | None) -> None:
            if reason is None:
                self.say(f"{proposal.id}: not rejected (cancelled); it stays pending")
                return
            self._decide(proposal, Decision(approve=False, reason=reason, operator=self.operator))

        self.push_screen(ReasonScreen(f"{proposal.kind} proposal {proposal.id}"), answered)

    def action_edit_allowlist(self) -> None:
        self._operator_edit("egress")

    def _approve(self, proposal: Proposal, payload: dict[str, Any] | None) -> None:
        """Approve, first asking for the header values a credential route needs."""
        effective = payload if payload is not None else proposal.payload
        headers = effective.get("headers") if proposal.kind == "cred-route" else None
        if not headers:
            self._decide(proposal, Decision(approve=True, payload=payload, operator=self.operator))
            return

        def answered(secrets: dict[str, str] | None) -> None:
            if secrets is None:
                self.say(f"{proposal.id}: not approved (cancelled); it stays pending")
                return
            decision = Decision(
                approve=True, payload=payload, secrets=secrets, operator=self.operator
            )
            self._decide(proposal, decision)

        route = (
            f"{render.one_line(effective.get('name', '?'))} ->"
            f" {render.shown_upstream(effective.get('upstream', '?'))} (proposal {proposal.id})"
        )
        self.push_screen(SecretsScreen(route, [str(h) for h in headers]), answered)

    def _decide(self, proposal: Proposal, decision: Decision) -> None:
        verb = "approve" if decision.approve else "reject"
        self._deciding.add(proposal.id)
        self.say(f"{'approving' if decision.approve else 'rejecting'} {proposal.id}...")

        def work() -> None:
            try:
                self.source.decide(proposal, decision)
            except Exception as exc:  # whatever failed, the proposal stays pending
                message = describe(exc, decision.secrets.values())
                self.call_from_thread(self._decided, proposal, verb, message)
            else:
                self.call_from_thread(self._decided, proposal, verb, None)

        self.run_worker(work, thread=True, group="decide", exit_on_error=False)

    def _decided(self, proposal: Proposal, verb: str, failure: str | None) -> None:
        self._deciding.discard(proposal.id)
        what = f"{proposal.kind} {proposal.id} for {proposal.identity}@{proposal.host}"
        if failure is not None:
            after = "try again" if is_operator_initiated(proposal) else "it stays pending"
            self.say(f"could not {verb} {what}: {failure}; {after}", error=True)
        else:
            self._answered_here.add(proposal.id)
            done = f"{'approved' if verb == 'approve' else 'rejected'} {what}"
            if verb == "approve" and proposal.kind == "capability":
                done += f"; the bottle stopped for its rebuild: rbottle resume {proposal.identity}"
            self.say(done)
            self._show([p for p in self.proposals if p.id != proposal.id], self.bottles)
        self.action_refresh()

    # -- editing

    def _edit(self, payload: dict[str, Any], kind: Kind, outcome: str) -> dict[str, Any] | None:
        try:
            return edit.edit_json(payload, kind, self._run_editor)
        except (edit.EditError, OSError) as exc:
            self.say(f"nothing approved: {exc}; {outcome}", error=True)
            return None

    def _run_editor(self, argv: list[str]) -> int:
        try:
            with self.suspend():
                return subprocess.run(argv, check=False).returncode
        except SuspendNotSupported:
            # No terminal to hand over (headless, tests): run it without one.
            return subprocess.run(argv, check=False, stdin=subprocess.DEVNULL).returncode

    def _operator_edit(self, kind: Kind) -> None:
        """An edit of a running bottle's allowlist or routes, with no proposal behind it."""
        bottle = self.selected_bottle()
        if bottle is None:
            self.say("no bottle selected (pick one in the bottles table)")
            return
        payload = self._edit(dict(edit.TEMPLATES[kind]), kind, "the bottle is unchanged")
        if payload is None:
            return
        proposal = edit.operator_proposal(kind, *bottle, payload, self.operator)
        self._approve(proposal, payload)
