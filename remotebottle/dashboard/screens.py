"""The dashboard's questions: approve this proposal?, a rejection reason, and a
cred-route's header values."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from remotebottle.dashboard.render import clean, detail
from remotebottle.supervise.model import Proposal


class ConfirmScreen(ModalScreen[bool]):
    """Names the proposal an approval would answer, shows it again, and waits for `y`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "approve"),
        Binding("n,escape", "cancel", "cancel"),
    ]

    def __init__(self, proposal: Proposal, allowlist: list[str] | None) -> None:
        super().__init__()
        self.proposal = proposal
        self._allowlist = allowlist

    def compose(self) -> ComposeResult:
        proposal = self.proposal
        with Vertical(classes="dialog"):
            yield Label(
                f"Approve {proposal.kind} proposal {clean(proposal.id)} from"
                f" {clean(proposal.identity)} on {clean(proposal.host)}?"
            )
            with VerticalScroll(classes="confirm-detail"):
                yield Static(detail(self.proposal, self._allowlist))
            yield Label(f"y approves {clean(proposal.id)}; n or escape cancels")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ReasonScreen(ModalScreen[str | None]):
    """Asks why a proposal is rejected; the agent is told the reason."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self._what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Reject {clean(self._what)}: why? (enter to reject, escape to cancel)")
            yield Input(placeholder="reason the agent will be given", id="reason")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class SecretsScreen(ModalScreen[dict[str, str] | None]):
    """Asks for each header's value of a credential route, masked, never echoed back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, route: str, headers: list[str]) -> None:
        super().__init__()
        self._route = route
        self._headers = headers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"Values for route {clean(self._route)} (enter moves on / approves, escape cancels)"
            )
            for index, header in enumerate(self._headers):
                yield Label(clean(header))
                yield Input(password=True, id=f"secret-{index}")
            yield Label("", id="secrets-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        empty = [i for i in inputs if not i.value]
        if empty:
            self.query_one("#secrets-error", Label).update("every header needs a value")
            empty[0].focus()
            return
        self.dismiss({h: i.value for h, i in zip(self._headers, inputs, strict=True)})

    def action_cancel(self) -> None:
        self.dismiss(None)
