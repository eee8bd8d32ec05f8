"""What a session has shown of the agent's output, so that attaching again after a
network cut shows the rest: nothing lost, nothing twice.

Attaching again asks the engine to replay the output from its log, then goes on live.
The log holds complete lines only (a line is logged once its newline comes, or when it
fills Docker's 16 KB buffer), so the replay skips what was shown up to the last newline;
then, if it goes on with the unfinished line already on the screen (finished during the
cut: it comes whole, newline and all), that too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from remotebottle.termfilter import TermFilter

STREAMS = (1, 2)  # stdout, stderr; a TTY is all stdout
_LOG_BUFFER = 16 * 1024  # Docker logs an unfinished line once it is this long


@dataclass
class _Seen:
    lines: int = 0  # bytes shown through the last newline
    tail: bytes = b""  # shown after it


@dataclass
class Replay:
    """One attach's view of what to drop from the front of each stream."""

    skip: dict[int, int]
    tail: dict[int, bytes]

    def strip(self, stream: int, data: bytes) -> bytes:
        """`data` less what the terminal has shown already."""
        if self.skip[stream]:
            dropped = min(self.skip[stream], len(data))
            self.skip[stream] -= dropped
            data = data[dropped:]
            if self.skip[stream] or not data:
                return data
        tail = self.tail[stream]
        if tail:
            self.tail[stream] = b""
            # The replay gives the line whole (one log message, newline and all, or just
            # the line when the container ended on it); live output that only happens to
            # start like it is let through.
            if data == tail or (data.startswith(tail) and b"\n" in data[len(tail) :]):
                data = data[len(tail) :]
        return data


@dataclass
class Shown:
    """How much of each stream this terminal has shown, and the filters it went through."""

    seen: dict[int, _Seen] = field(default_factory=lambda: {s: _Seen() for s in STREAMS})
    screens: dict[int, TermFilter] = field(
        default_factory=lambda: {s: TermFilter() for s in STREAMS}
    )

    @property
    def any(self) -> bool:
        return any(s.lines or s.tail for s in self.seen.values())

    def count(self, stream: int) -> int:
        seen = self.seen[stream]
        return seen.lines + len(seen.tail)

    def replay(self) -> Replay:
        return Replay(
            skip={s: self.seen[s].lines for s in STREAMS},
            tail={s: self.seen[s].tail for s in STREAMS},
        )

    def take(self, stream: int, data: bytes, replay: Replay) -> bytes:
        """What of `data` is new on `stream`, filtered for the terminal; noted as shown."""
        data = replay.strip(stream, data)
        if not data:
            return b""
        seen = self.seen[stream]
        end = data.rfind(b"\n")
        if end < 0:
            seen.tail += data
        else:
            seen.lines += len(seen.tail) + end + 1
            seen.tail = data[end + 1 :]
        while len(seen.tail) >= _LOG_BUFFER:  # logged without its newline by now
            seen.lines += _LOG_BUFFER
            seen.tail = seen.tail[_LOG_BUFFER:]
        return self.screens[stream].feed(data)
