"""The audit log's hash chain: written by the real writers, checked, tampered with."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from remotebottle.supervise import audit
from remotebottle.supervise.model import Decision, Proposal

pytestmark = pytest.mark.unit

IDENTITY = "dev-ab12c"
OLD_ENTRY = {"identity": IDENTITY, "kind": "egress", "decision": "approved", "time": "t0"}


def refusal(n: int) -> dict[str, str]:
    return {
        "time": f"2026-01-01T00:00:{n:02d}Z",
        "by": "egress proxy",
        "method": "GET",
        "where": f"https://evil.example/{n}",
        "reason": "not on the allowlist",
    }


def write_log(entries: int = 4) -> Path:
    """One decision by the dashboard's writer, then refusals by the session's."""
    proposal = Proposal(
        id="p-1",
        identity=IDENTITY,
        kind="egress",
        payload={"hosts": ["pypi.org"]},
        created_at="2026-01-01T00:00:00Z",
    )
    audit.record(proposal, Decision(approve=True, operator="alice"), before=[], after=["pypi.org"])
    audit.record_refusals(IDENTITY, [refusal(n) for n in range(entries - 1)])
    return audit.log_path(IDENTITY)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rewrite(path: Path, new: list[str]) -> audit.Chain:
    path.write_text("".join(line + "\n" for line in new))
    return audit.verify(IDENTITY)


def test_entries_are_chained_from_genesis_and_verify() -> None:
    path = write_log(4)
    entries = audit.read(IDENTITY)
    assert [e["kind"] for e in entries] == ["egress", "refused", "refused", "refused"]
    assert entries[0]["prev"] == audit.GENESIS
    for before, entry in itertools.pairwise(entries):
        assert entry["prev"] == before["hash"]
    assert all(e["hash"] == audit.entry_hash(e) for e in entries)
    chain = audit.verify(IDENTITY)
    assert chain.ok and chain.entries == 4
    assert chain.summary() == "intact: 4 entries hash-chained"
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_edited_entry_is_named() -> None:
    path = write_log(4)
    old = lines(path)
    edited = old[2].replace("not on the allowlist", "allowed")
    chain = rewrite(path, [*old[:2], edited, *old[3:]])
    assert (chain.broken_at, chain.line) == (3, 3)
    assert chain.summary() == (
        "BROKEN at entry 3 (line 3): its content does not match its hash"
        " (edited after it was written)"
    )


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link() -> None:
    path = write_log(4)
    old = lines(path)
    entry = json.loads(old[1])
    entry["reason"] = "allowed"
    entry["hash"] = audit.entry_hash(entry)
    chain = rewrite(path, [old[0], json.dumps(entry, sort_keys=True), *old[2:]])
    assert chain.broken_at == 3
    assert "does not chain from entry 2" in chain.summary()


@pytest.mark.parametrize(("removed", "named"), [(0, "the start of the log"), (2, "entry 2")])
def test_a_removed_entry_is_detected(removed: int, named: str) -> None:
    path = write_log(4)
    old = lines(path)
    chain = rewrite(path, old[:removed] + old[removed + 1 :])
    assert chain.broken_at == removed + 1
    assert chain.summary() == (
        f"BROKEN at entry {removed + 1} (line {removed + 1}): does not chain from {named}"
        " (an entry was removed, inserted or moved)"
    )


def test_reordered_entries_are_detected() -> None:
    path = write_log(4)
    old = lines(path)
    chain = rewrite(path, [old[0], old[2], old[1], old[3]])
    assert chain.broken_at == 2


def test_an_inserted_entry_is_detected() -> None:
    path = write_log(3)
    old = lines(path)
    forged = json.dumps({**OLD_ENTRY, "decision": "rejected"})
    assert rewrite(path, [*old[:2], forged, old[2]]).summary() == (
        "BROKEN at entry 3 (line 3): no hash, after hash-chained entries (added or edited by hand)"
    )
    assert rewrite(path, [old[0], "garbage", *old[1:]]).why == "not a JSON object"


def test_a_log_from_before_chaining_still_reads_and_says_so() -> None:
    path = audit.log_path(IDENTITY)
    path.parent.mkdir(parents=True)
    old = [json.dumps(OLD_ENTRY, sort_keys=True), json.dumps({**OLD_ENTRY, "time": "t1"})]
    path.write_text("\n".join(old) + "\n")
    assert audit.read(IDENTITY) == [OLD_ENTRY, {**OLD_ENTRY, "time": "t1"}]
    chain = audit.verify(IDENTITY)
    assert chain.ok and chain.unchained == 2
    assert chain.summary() == "unchained (written before hash chaining): 2 entries"

    audit.record_refusals(IDENTITY, [refusal(1)])
    assert audit.verify(IDENTITY).summary() == (
        "intact: 1 entry hash-chained after 2 unchained (written before hash chaining)"
    )
    # The first chained entry holds the last old one in place.
    now = lines(path)
    chain = rewrite(path, [now[0], now[1].replace("t1", "t2"), now[2]])
    assert chain.broken_at == 3


def test_no_log_has_no_entries() -> None:
    assert audit.verify(IDENTITY).summary() == "no entries"


def test_a_torn_last_line_is_kept_apart_and_shown() -> None:
    path = write_log(2)
    with path.open("a") as log:
        log.write('{"kind": "refu')
    audit.record_refusals(IDENTITY, [refusal(9)])
    assert lines(path)[2] == '{"kind": "refu'
    chain = audit.verify(IDENTITY)
    assert (chain.broken_at, chain.why) == (3, "not a JSON object")


WRITER = """
import sys
from remotebottle.supervise import audit
for n in range(int(sys.argv[3])):
    audit.record_refusals(sys.argv[1], [{"by": sys.argv[2], "n": str(n)}])
"""


def test_concurrent_writers_keep_one_chain() -> None:
    writers, each = 4, 40
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, IDENTITY, f"w{w}", str(each)])
        for w in range(writers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * writers
    chain = audit.verify(IDENTITY)
    assert chain.ok, chain.summary()
    entries = audit.read(IDENTITY)
    assert len(entries) == writers * each
    for w in range(writers):
        assert [e["n"] for e in entries if e["by"] == f"w{w}"] == [str(n) for n in range(each)]
