"""The proposals table, and which proposal the operator chose in it.

A refresh rebuilds the table: when the proposal under the cursor is withdrawn, the
cursor lands on another row. `chosen` does not follow it: it changes only when the
operator moves the cursor (keys or mouse), so an answer never goes to a proposal the
operator did not pick.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import DataTable


class ProposalTable(DataTable[Text]):
    """Rows keyed by proposal id; `chosen` is the id the operator last moved the cursor to."""

    class Chosen(Message):
        """The operator chose another proposal."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.chosen: str | None = None

    def choose_cursor(self) -> None:
        """Make the proposal under the cursor the chosen one."""
        key = None
        if 0 <= self.cursor_row < self.row_count:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        if key != self.chosen:
            self.chosen = key
            self.post_message(self.Chosen())

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self.choose_cursor()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self.choose_cursor()

    def action_page_up(self) -> None:
        super().action_page_up()
        self.choose_cursor()

    def action_page_down(self) -> None:
        super().action_page_down()
        self.choose_cursor()

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self.choose_cursor()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self.choose_cursor()

    def action_select_cursor(self) -> None:
        super().action_select_cursor()
        self.choose_cursor()

    def on_click(self, event: events.Click) -> None:
        # DataTable's own handler moves the cursor after this one: choose once it has.
        self.call_later(self.choose_cursor)
