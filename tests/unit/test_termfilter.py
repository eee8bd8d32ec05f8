"""The filter between the agent's output and the operator's terminal.

`tests/fixtures/claude-code/tui-turn.raw` is the raw output of the pinned Claude Code
(2.1.330) in a 100x30 pty: the start screen, a prompt typed, a streamed reply from the
fake Messages API (`tests/harness/fake_anthropic`), the slash-command menu, then
ctrl-c twice.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remotebottle.termfilter import KEPT_OSC, MAX_DROPPED, MAX_KEPT, MAX_SEQUENCE, TermFilter

pytestmark = pytest.mark.unit

CLAUDE_CODE = (Path(__file__).parents[1] / "fixtures" / "claude-code" / "tui-turn.raw").read_bytes()
CLIPBOARD = b"\x1b]52;c;" + b"cm0gLXJmIH4K" + b"\x07"  # base64 of "rm -rf ~"


def run(*chunks: bytes) -> bytes:
    screen = TermFilter()
    return b"".join(screen.feed(chunk) for chunk in chunks) + screen.flush()


def bytewise(data: bytes) -> bytes:
    return run(*(data[i : i + 1] for i in range(len(data))))


def dangers(out: bytes) -> list[str]:
    """What a terminal would act on in `out` that the filter must never let through,
    read independently of the filter: a terminal skips C0 controls after an ESC."""
    text = out.decode("utf-8", "surrogateescape")
    found = []
    for match in re.finditer("[\x90\x98\x9d\x9e\x9f\udc90\udc98\udc9d\udc9e\udc9f]", text):
        found.append(f"C1 string introducer {match.group()!r}")
    for match in re.finditer("\x1b[\x00-\x17\x19\x1c-\x1f]*(.?)", text, re.DOTALL):
        rest = text[match.end(1) :]
        if match.group(1) in ("P", "X", "^", "_"):
            found.append(f"ESC {match.group(1)}")
        elif match.group(1) == "]":
            osc = re.match(r"([0-9]+)(;[^\x00-\x1f\x7f-\x9f]*)?(?:\x07|\x1b\\)", rest)
            if osc is None or int(osc.group(1)) not in KEPT_OSC:
                found.append(f"OSC {rest[:12]!r}")
            elif osc.group(1) == "8" and not re.fullmatch(
                r";[^;]*;(https?://.*)?", osc.group(2), re.IGNORECASE
            ):
                found.append(f"OSC 8 {rest[:30]!r}")
        elif match.group(1) == "[" and re.match(r"0*2[01]t", rest):
            found.append("title report")
    return found


def test_plain_text_is_untouched_and_never_held_back() -> None:
    text = "héllo\tworld\r\n日本語 \x07\x08\x0e\x0f ünïcödé 🎉\n".encode()
    screen = TermFilter()
    assert screen.feed(text) == text
    assert bytewise(text) == text
    # Only the bytes of a character split across reads wait for the rest of it.
    assert screen.feed("é".encode()[:1]) == b""
    assert screen.feed("é".encode()[1:] + b"x") == "éx".encode()
    invalid = b"\xff\xfe raw \xc3 bytes \xed\xa0\x80"
    assert run(invalid) == invalid


def test_claude_codes_own_output_passes_unchanged() -> None:
    # Its status query (OSC 7501, Claude Code's own) is the one thing dropped.
    expected = CLAUDE_CODE.replace(b"\x1b]7501;?\x07", b"")
    assert CLAUDE_CODE.count(b"\x1b]7501;") == 1
    for piece in (b"\x1b[?1049h", b"\x1b[?2004h", b"\x1b]0;", b"\x1b]8;id=", b"\x1b[38;2;"):
        assert piece in CLAUDE_CODE
    assert run(CLAUDE_CODE) == expected
    assert bytewise(CLAUDE_CODE) == expected
    assert run(*(CLAUDE_CODE[i : i + 7] for i in range(0, len(CLAUDE_CODE), 7))) == expected


@pytest.mark.parametrize(
    "sequence",
    [
        b"\x1b[?1049h\x1b[?1049l",  # alternate screen
        b"\x1b[?2004h\x1b[?2004l",  # bracketed paste
        b"\x1b[?2026h\x1b[?2026l",  # synchronized output
        b"\x1b[?1000h\x1b[?1002h\x1b[?1003h\x1b[?1006h\x1b[?1004h",  # mouse, focus
        b"\x1b[38;2;215;119;87m\x1b[48;5;17m\x1b[1;3;4m\x1b[0m\x1b[m",  # SGR colours
        b"\x1b[12;40H\x1b[3A\x1b[2B\x1b[5C\x1b[1D\x1b[2J\x1b[K\x1b[r\x1b[1;20r",  # cursor
        b"\x1b[>0q\x1b[c\x1b[6n\x1b[?u\x1b[>4;2m\x1b[<u\x1b[14t\x1b[16t\x1b[22;0t",  # queries
        b"\x1b7\x1b8\x1b(B\x1b)0\x1b=\x1b>\x1bM\x1b\\",  # other escape sequences
        b"\x1b]0;\xe2\x9c\xb3 Claude Code\x07\x1b]2;title\x1b\\\x1b]1;icon\x07",  # titles
        b"\x1b]8;id=a1;https://code.claude.com/docs\x07link\x1b]8;;\x07",  # hyperlink
        b"\x1b]8;;HTTP://example.com/a;b\x1b\\x\x1b]8;;\x1b\\",
        b"\x1b]11;?\x07\x1b]10;?\x1b\\\x1b]4;1;?\x07\x1b]104;255\x07\x1b]111\x07",  # colours
        b"\xc2\x9b31mC1 CSI\xc2\x9b0m",
    ],
)
def test_what_a_tui_needs_is_kept(sequence: bytes) -> None:
    data = b"a" + sequence + b"z"
    assert run(data) == data
    assert bytewise(data) == data


@pytest.mark.parametrize(
    ("sequence", "left"),
    [
        (CLIPBOARD, b""),
        (b"\x1b]52;c;cm0gLXJmIH4K\x1b\\", b""),
        (b"\x1b]52;p;?\x07", b""),  # clipboard read
        (b"\x1b]1337;File=name=eA==;inline=0:aGk=\x07", b""),  # iTerm2 file download
        (b"\x1b]1337;SetUserVar=a=Yg==\x07\x1b]5113;ac=send;id=1\x1b\\", b""),  # kitty transfer
        (b"\x1b]7;file://host/tmp\x07\x1b]133;A\x07", b""),  # cwd, prompt marks
        (b"\x1b]9;notification\x07\x1b]777;notify;t;b\x07\x1b]99;;hi\x1b\\", b""),  # notifications
        (b"\x1b]7501;state=clear\x07\x1b]21337;status=x\x07", b""),  # Claude Code's own
        (b"\x1b]8;;file:///etc/passwd\x07\x1b]8;;ssh://evil\x1b\\", b""),  # links off the web
        (b"\x1b]L icon\x1b\\\x1b]l title\x1b\\\x1b]; x\x07\x1b]052;c;eA==\x07", b""),
        (b"\x1bP$qm\x1b\\\x1bP+q544e\x1b\\\x1bP1000p\x1b\\", b""),  # DECRQSS, XTGETTCAP, DCS
        (b"\x1b_Ga=T,f=100;iVBORw0KGgo=\x1b\\", b""),  # APC: kitty graphics
        (b"\x1b^privacy message\x1b\\\x1bXstart of string\x1b\\", b""),  # PM, SOS
        # tmux passthrough: the doubled ESC ends the DCS, the OSC 52 inside is dropped
        # on its own, and the closing ESC \ is left, a lone ST that does nothing.
        pytest.param(b"\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\", b"\x1b\\", id="tmux"),
        (b"\x1bP\x1b]52;c;eA\x1b\\\x1bP==\x07\x1b\\", b""),  # screen passthrough, as Claude Code
        (b"\xc2\x9d52;c;eA==\xc2\x9c", b""),  # C1 forms, as UTF-8
        (b"\xc2\x9d0;title\x07\x1b]0;title\xc2\x9c", b""),  # of a title too, and C1 ST
        (b"\x9d52;c;eA==\x07\x90q\x9c\x9fG\x9c\x9ex\x9c\x98y\x9c", b""),  # and as lone bytes
        (b"\x1b[21t\x1b[20t\x1b[021;0t", b""),  # title reports
    ],
)
def test_what_a_terminal_would_act_on_is_dropped(sequence: bytes, left: bytes) -> None:
    data = b"before " + sequence + b" after"
    assert run(data) == b"before " + left + b" after"
    assert bytewise(data) == run(data)


def test_a_string_is_caught_across_reads() -> None:
    chunks = [b"ok \x1b", b"]", b"5", b"2;c;", b"cm0g", b"LXJmIH4K\x1b", b"\\ still ok"]
    screen = TermFilter()
    outs = [screen.feed(chunk) for chunk in chunks]
    assert outs == [b"ok ", b"", b"", b"", b"", b"", b" still ok"]
    assert run(b"x\xc2", b"\x9d52;c;eA==\x07y") == b"xy"  # a C1 split mid-character


def test_a_kept_sequence_is_forwarded_whole_once_complete() -> None:
    screen = TermFilter()
    assert screen.feed(b"a\x1b]0;ti") == b"a"
    assert screen.feed(b"tle\x07b\x1b[3") == b"\x1b]0;title\x07b"
    assert screen.feed(b"1mc") == b"\x1b[31mc"


def test_a_title_cut_short_by_another_sequence_is_dropped_with_it() -> None:
    # ESC inside a string ends it there, for the terminal too: the title is not
    # forwarded half-open, and what the ESC opens is judged on its own.
    assert run(b"a\x1b]0;x" + CLIPBOARD + b"b") == b"ab"
    assert run(b"a\x1b]0;x\x1b[31mb") == b"a\x1b[31mb"
    assert run(b"a\x1b]0;x\ny\x07b") == b"ab"  # a control inside a title


def test_controls_inside_an_escape_cannot_smuggle_one_in() -> None:
    # A terminal executes C0 controls inside ESC and CSI and goes on with the sequence.
    # Here the half sequence is dropped and the rest shown as text.
    assert run(b"a\x1b\n]52;c;eA==\x07b") == b"a\n]52;c;eA==\x07b"
    assert run(b"a\x1b[2\n1t\x1b[\x1b]52;c;eA==\x07b") == b"a\n1tb"


def test_an_unterminated_string_is_dropped_and_the_session_goes_on() -> None:
    assert run(b"text \x1bPnever ends") == b"text "
    assert run(b"text \x1b]52;c;never ends") == b"text "
    # The next escape sequence ends it, as it does for the terminal.
    assert run(b"a\x1bPjunk\n\x1b[31mred") == b"a\x1b[31mred"
    # With no escape at all, it is given up after MAX_DROPPED characters.
    screen = TermFilter()
    assert screen.feed(b"a\x1b]52;c;" + b"A" * (MAX_DROPPED - 15)) == b"a"
    assert screen.feed(b"A" * 15 + b" visible again") == b"A" * 5 + b" visible again"


def test_overlong_sequences_are_dropped_not_truncated() -> None:
    long = b"\x1b]0;" + b"t" * MAX_KEPT + b"\x07"
    assert run(b"a" + long + b"b") == b"ab"
    params = b"1;" * 200
    assert run(b"a\x1b[" + params + b"m b") == b"a" + params[MAX_SEQUENCE + 1 :] + b"m b"


# fmt: off
PIECES = [
    b"\x1b", b"]", b"[", b"P", b"_", b"^", b"X", b"\\", b"52", b"8", b"0", b"21", b"t",
    b";", b";;", b"c;", b"eA==", b"\x07", b"\x1b\\", b"https://x", b"file:/", b"\n",
    b"\x18", b"\x7f", b"\xc2\x9d", b"\x9d", b"\xc2", b"\x9c", b"\xc2\x9c", b"\xc2\x9b",
    b"text", "é".encode(), b"?", b"m", b"31",
]
# fmt: on


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_nothing_dangerous_gets_through_however_it_is_cut(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    whole = run(data)
    assert dangers(whole) == [], (data, whole)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert run(*chunks) == whole
