"""Attaching again after a cut: what was shown is skipped in the engine's replay, which
holds complete lines only; the unfinished line shown is skipped if the replay goes on
with it, and nothing after it is lost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remotebottle.ops.replay import Shown

pytestmark = pytest.mark.unit


def show(shown: Shown, *chunks: bytes) -> bytes:
    replay = shown.replay()
    return b"".join(shown.take(1, chunk, replay) for chunk in chunks)


def logged(output: bytes) -> bytes:
    """What Docker's log holds of `output`: its complete lines."""
    return output[: output.rfind(b"\n") + 1]


def test_the_replay_of_complete_lines_is_skipped() -> None:
    shown = Shown()
    assert show(shown, b"one\n", b"two\n") == b"one\ntwo\n"
    assert show(shown, b"one\ntw", b"o\nthree\n") == b"three\n"


def test_an_unfinished_line_finished_during_the_cut_is_shown_from_where_it_stopped() -> None:
    shown = Shown()
    assert show(shown, b"one\nprompt> ") == b"one\nprompt> "
    assert show(shown, b"one\nprompt> answer\nnext\n") == b"answer\nnext\n"


def test_an_unfinished_line_still_unfinished_is_not_shown_again_and_new_output_passes() -> None:
    shown = Shown()
    show(shown, b"one\nprompt> ")
    # The log holds "one\n"; the live stream then brings what comes after the prompt.
    assert show(shown, b"one\n", b"typed\n") == b"typed\n"
    assert shown.count(1) == len(b"one\nprompt> typed\n")


TEXT = st.binary(max_size=120).map(lambda b: bytes(b"ab\n"[x % 3] for x in b))


@given(before=TEXT, during=TEXT, after=TEXT, cut=st.integers(min_value=1, max_value=50))
def test_the_terminal_gets_the_whole_output_once(
    before: bytes, during: bytes, after: bytes, cut: int
) -> None:
    """`before` shown live; the cut; the re-attach replays the log (the complete lines of
    all written so far) in chunks of `cut`, then `after` comes live. When the cut fell
    between lines and the agent ended its lines during it, nothing is lost or doubled."""
    before, during = before + b"\n", during + b"\n" if during else b""
    shown = Shown()
    first = show(shown, before)
    replayed = logged(before + during)
    chunks = [replayed[i : i + cut] for i in range(0, len(replayed), cut)]
    assert first + show(shown, *chunks, after) == before + during + after


def test_a_line_left_unfinished_during_the_cut_is_the_one_thing_not_replayed() -> None:
    shown = Shown()
    show(shown, b"one\n")
    # "two" was written during the cut with no newline yet: not in the log.
    assert show(shown, b"one\n", b"\nthree\n") == b"\nthree\n"
