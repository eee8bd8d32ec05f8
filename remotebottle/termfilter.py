"""The agent's output made safe for the operator's terminal (docs/terminal.md).

A hostile agent can print control strings that the operator's terminal acts on: OSC 52
writes the clipboard (a command waiting to be pasted), iTerm2's OSC 1337 and kitty's
OSC 5113 transfer files, DCS strings query or reprogram the terminal, APC carries kitty
graphics, and a title report (CSI 21 t) types the window title back as input.
`TermFilter` removes them from the byte stream and keeps what a TUI such as Claude Code
needs:

- text, C0 controls and the other escape and CSI sequences (cursor movement, SGR
  colours, modes: alternate screen, bracketed paste, mouse, focus, synchronized output),
  except the title reports CSI 20 t and CSI 21 t;
- OSC titles (0, 1, 2), hyperlinks (8, to http and https only) and colours with their
  queries and resets (4, 10, 11, 12, 104, 110, 111, 112), in their 7-bit form.

Dropped whole: every other OSC string (52, 1337, 7, 133, the notifications 9, 99, 777,
Claude Code's 7501...), every DCS, SOS, PM and APC string, and any string in its C1
form (U+009D, or a lone byte 0x9D), on which terminals disagree. A sequence is forwarded
only once complete, so one split across reads is judged whole; plain text is never held
back (only the bytes of a character split across reads). A string left unterminated is
dropped: it ends at the next ESC, as in a terminal, and after `MAX_DROPPED` characters
without one the filter stops waiting and shows what follows as text.
"""

from __future__ import annotations

import codecs
import re
from enum import Enum, auto

KEPT_OSC = frozenset({0, 1, 2, 4, 8, 10, 11, 12, 104, 110, 111, 112})
MAX_KEPT = 4096  # a kept OSC string longer than this is dropped
MAX_SEQUENCE = 256  # an escape or CSI sequence longer than this is dropped
MAX_DROPPED = 1 << 20

ESC, BEL, CAN, SUB, ST = "\x1b", "\x07", "\x18", "\x1a", "\\"

# The 7-bit final character standing for a C1 control. A C1 control arrives as a code
# point (U+009D) or, not being valid UTF-8, as a lone byte (0x9D, decoded to U+DC9D).
_C1 = {0x90: "P", 0x98: "X", 0x9B: "[", 0x9C: ST, 0x9D: "]", 0x9E: "^", 0x9F: "_"}
_STRINGS = "PX^_]"

_GROUND_STOP = re.compile("[\x1b\x90\x98\x9b\x9d\x9e\x9f\udc90\udc98\udc9b\udc9d\udc9e\udc9f]")
_STRING_STOP = re.compile("[\x07\x18\x1a\x1b\x80-\x9f\udc80-\udc9f]")
_KEPT_STOP = re.compile("[\x00-\x1f\x7f\x80-\x9f\udc80-\udc9f]")
_OSC_NUMBER = re.compile(r"([0-9]+)(?:;|$)")
_HYPERLINK = re.compile(r"8;[^;]*;(?:https?://.*)?", re.IGNORECASE | re.DOTALL)
_TITLE_REPORT = re.compile(r"0*2[01](?![0-9])")
# A whole CSI or escape sequence in one chunk (the common case), matched in one go.
_WHOLE = re.compile(
    rf"\x1b\[([\x20-\x3f]{{0,{MAX_SEQUENCE}}})([\x40-\x7e])"
    rf"|\x1b(?:[\x20-\x2f]{{1,{MAX_SEQUENCE}}}[\x30-\x7e]"
    r"|[\x30-\x4f\x51-\x57\x59\x5a\x5c\x60-\x7e])"  # not [ ] P X ^ _, which open more
)


class _State(Enum):
    GROUND = auto()
    ESCAPE = auto()
    CSI = auto()
    STRING = auto()
    STRING_ESCAPE = auto()  # an ESC inside a string: ST if a backslash follows


def _c1(char: str) -> str | None:
    code = ord(char)
    if 0xDC80 <= code <= 0xDC9F:
        code -= 0xDC00
    return _C1.get(code)


def _is_c1(char: str) -> bool:
    code = ord(char)
    return 0x80 <= code <= 0x9F or 0xDC80 <= code <= 0xDC9F


class TermFilter:
    """A stream filter: `feed` each chunk as it arrives, `flush` at the end of the stream."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self._state = _State.GROUND
        self._intro = ""  # what opened the pending sequence: ESC [, ESC ], or a C1 control
        self._body: list[str] = []
        self._length = 0
        self._osc = False
        self._keep = False

    def feed(self, data: bytes) -> bytes:
        return self._run(self._decoder.decode(data))

    def flush(self) -> bytes:
        """The rest of the stream; a sequence still open is dropped."""
        out = self._run(self._decoder.decode(b"", final=True))
        self._ground()
        return out

    def _run(self, text: str) -> bytes:
        out: list[str] = []
        at = 0
        while at < len(text):
            if self._state is _State.GROUND:
                stop = _GROUND_STOP.search(text, at)
                end = stop.start() if stop else len(text)
                out.append(text[at:end])
                whole = _WHOLE.match(text, end)
                if whole:
                    if whole.group(2) != "t" or not _TITLE_REPORT.match(whole.group(1)):
                        out.append(whole.group())
                    at = whole.end()
                    continue
                if stop:
                    self._open(text[end])
                at = end + 1
            elif self._state in (_State.STRING, _State.STRING_ESCAPE):
                at = self._string(text, at, out)
            else:
                at = self._sequence(text[at], at, out)
        return "".join(out).encode("utf-8", "surrogateescape")

    def _ground(self) -> None:
        self._state = _State.GROUND
        self._intro = ""
        self._body = []
        self._length = 0

    def _open(self, char: str) -> None:
        if char == ESC:
            self._state, self._intro = _State.ESCAPE, ESC
        else:
            self._start(char, _c1(char) or "")

    def _start(self, intro: str, kind: str) -> None:
        """Begin the CSI or string sequence that `intro` (ESC x, or a C1 control) opens."""
        self._intro, self._body, self._length = intro, [], 0
        if kind == "[":
            self._state = _State.CSI
        else:
            self._state = _State.STRING
            self._osc = kind == "]"
            # Only 7-bit OSC strings are kept: terminals disagree about C1 controls.
            self._keep = self._osc and intro.startswith(ESC)

    def _sequence(self, char: str, at: int, out: list[str]) -> int:
        """One character of an escape or CSI sequence; returns where to go on."""
        code = ord(char)
        if self._state is _State.ESCAPE and not self._body and char in "[" + _STRINGS:
            self._start(ESC + char, char)
        elif 0x20 <= code <= (0x2F if self._state is _State.ESCAPE else 0x3F):
            self._body.append(char)
            if len(self._body) > MAX_SEQUENCE:
                self._ground()
        elif 0x30 <= code <= 0x7E:
            if not (self._state is _State.CSI and char == "t" and self._title_report()):
                out.append(self._intro + "".join(self._body) + char)
            self._ground()
        else:
            # Not a well-formed sequence: it is dropped, and `char` read afresh.
            self._ground()
            return at
        return at + 1

    def _title_report(self) -> bool:
        return _TITLE_REPORT.match("".join(self._body)) is not None

    def _string(self, text: str, at: int, out: list[str]) -> int:
        """A run of an OSC, DCS, SOS, PM or APC string; returns where to go on."""
        if self._state is _State.STRING_ESCAPE:
            if text[at] == ST:
                self._close(ESC + ST, out)
                return at + 1
            # The ESC ended the string (dropped) and opens a new sequence.
            self._ground()
            self._state, self._intro = _State.ESCAPE, ESC
            return at
        room = MAX_DROPPED - self._length
        if room <= 0:
            self._ground()
            return at
        stop = (_KEPT_STOP if self._keep else _STRING_STOP).search(text, at, at + room)
        end = stop.start() if stop else min(len(text), at + room)
        if self._keep:
            self._body.append(text[at:end])
        self._length += end - at
        if self._keep and self._length > MAX_KEPT:
            self._keep, self._body = False, []
        if not stop:
            return end
        char = text[end]
        if char == BEL and self._osc:
            self._close(char, out)
        elif char == ESC:
            self._state = _State.STRING_ESCAPE
        elif _c1(char) == ST:
            self._ground()  # C1 ST ends it, but not for every terminal: not forwarded
        elif char in (CAN, SUB) or _is_c1(char):
            self._ground()
            return end
        else:
            # Any other control inside a string: never forwarded, the string is dropped.
            self._keep, self._body = False, []
            self._length += 1
        return end + 1

    def _close(self, terminator: str, out: list[str]) -> None:
        payload = "".join(self._body)
        if self._keep and _kept_osc(payload):
            out.append(self._intro + payload + terminator)
        self._ground()


def _kept_osc(payload: str) -> bool:
    number = _OSC_NUMBER.match(payload)
    if number is None or int(number.group(1)) not in KEPT_OSC:
        return False
    return int(number.group(1)) != 8 or _HYPERLINK.fullmatch(payload) is not None
