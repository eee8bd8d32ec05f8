"""The dashboard's questions: a rejection reason, and a cred-route's header values."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from remotebottle.dashboard.render import clean


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
