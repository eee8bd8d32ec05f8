"""Showing image shipments: a progress bar per image on a terminal, one line per image elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from remotebottle.ops.ship import ShipProgress


def render_ship_progress(console: Console) -> Callable[[ShipProgress], None]:
    """An `on_progress` callback for `ship_images` that draws on `console`.

    On a terminal each image gets a bar (bytes sent of the estimate, speed, time left) that
    stays on screen when it ends; otherwise each image gets one line when it ends.
    """
    if console.is_terminal:
        return _Bars(console)
    return _Lines(console)


def summary(event: ShipProgress, seconds: float) -> str:
    """One line saying how the shipment of `event.ref` ended."""
    if event.skipped:
        return f"{event.ref}: already on the host"
    sent = decimal(event.sent_bytes)
    if event.failed:
        return f"{event.ref}: failed after {sent}"
    rate = decimal(int(event.sent_bytes / seconds)) if seconds > 0 else "-"
    return f"{event.ref}: shipped {sent} in {seconds:.1f}s ({rate}/s)"


class _Lines:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._started: dict[str, float] = {}

    def __call__(self, event: ShipProgress) -> None:
        started = self._started.setdefault(event.ref, time.monotonic())
        if event.done:
            del self._started[event.ref]
            self._console.print(summary(event, time.monotonic() - started), markup=False)


class _Bars:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, event: ShipProgress) -> None:
        if event.skipped:
            self._console.print(summary(event, 0.0), markup=False)
            return
        progress = self._progress or self._start()
        task = self._tasks.get(event.ref)
        if task is None:
            task = progress.add_task(event.ref, total=event.total_bytes_estimate or None)
            self._tasks[event.ref] = task
        # The tar is a little larger than the image's size: let the bar's end follow it.
        total = max(event.total_bytes_estimate, event.sent_bytes) or None
        progress.update(task, completed=event.sent_bytes, total=total)
        if not event.done:
            return
        progress.update(task, total=event.sent_bytes)
        progress.stop_task(task)
        del self._tasks[event.ref]
        if event.failed:
            progress.console.print(f"[red]{escape(summary(event, 0.0))}[/]")
        if not self._tasks:
            progress.stop()
            self._progress = None

    def _start(self) -> Progress:
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._progress.start()
        return self._progress
