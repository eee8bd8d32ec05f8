#!/usr/bin/python3
"""The git gate's pre-receive hook: check and scan everything a push adds, then push upstream.

Installed as `pre-receive` in every mirror (core.hooksPath). The pushed objects are still in
git's quarantine here, visible to the git commands this hook runs. A push is refused when:
- it deletes a ref, rewrites one (not a fast-forward, or a moved tag) or adds a commit that
  changes a CI definition, unless the remote allows it (the mirror's `gitgate.allow*` keys,
  which the gate server sets from the manifest);
- a ref would not lead to a commit (a tag of a blob or a tree): nothing to check it by;
- gitleaks finds a secret in any object it adds (`rev-list --objects <new> --not --all`):
  every blob, whatever reaches it, and the commits, tags and trees themselves (messages,
  file names);
- the scan fails, or cannot show it read every object: refusing is the only safe answer.

Each object is copied into a scratch directory behind a marker line and scanned by
`gitleaks dir` with a config that has no path allowlists, written when the image is built
(`pre-receive --write-gitleaks-config PATH`). The marker shifts the content off the offsets
where gitleaks looks for the magic numbers of binary files it skips, and a marker finding in
every copy proves gitleaks read it. A clean push is forwarded upstream with a lease on each
ref's old value; the mirror's refs move only if the upstream accepted, since this hook's exit
status decides.

The hook's parts lie next to it as the package path they have in remotebottle
(remotebottle/resources/gitgate/hook_*.py in the hooks directory), so the same imports work
in the image and in tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from remotebottle.resources.gitgate.hook_git import (
    UPSTREAM_TIMEOUT,
    Refusal,
    Update,
    git,
    git_out,
    say,
)
from remotebottle.resources.gitgate.hook_gitleaks_config import write_gitleaks_config
from remotebottle.resources.gitgate.hook_refs import check_ci, check_ref, leads_to
from remotebottle.resources.gitgate.hook_scan import new_objects, scan


def upstream_env() -> dict[str, str]:
    """This hook's environment minus the quarantine's ref lock: an upstream reached by path
    runs its receive-pack under it. A push to a URL updates no ref here."""
    return {k: v for k, v in os.environ.items() if k != "GIT_QUARANTINE_PATH"}


def forward(updates: list[Update]) -> int:
    url = git("config", "--get", "remote.origin.url").stdout.strip()
    leases = [f"--force-with-lease={u.ref}:{'' if u.creates else u.old}" for u in updates]
    refspecs = [f":{u.ref}" if u.deletes else f"{u.new}:{u.ref}" for u in updates]
    atomic = ["--atomic"] if len(updates) > 1 else []  # all refs or none, as in the mirror
    try:
        result = git("push", "--porcelain", *atomic, *leases, url, *refspecs, env=upstream_env())
    except subprocess.TimeoutExpired:
        say(f"push refused: the upstream did not answer in {UPSTREAM_TIMEOUT}s")
        return 1
    say(f"upstream {'accepted' if result.returncode == 0 else 'refused'} the push:")
    say(result.stdout + result.stderr)
    return 0 if result.returncode == 0 else 1


def read_updates(text: str) -> list[Update]:
    updates: list[Update] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            updates.append(Update(*fields))
    return updates


def check(updates: list[Update]) -> list[str]:
    """Every reason to refuse these updates; none means forward them."""
    kinds = {u.new: leads_to(u.new) for u in updates if not u.deletes}
    problems = [p for u in updates if (p := check_ref(u, kinds.get(u.new, "")))]
    try:
        if commits := [new for new, kind in kinds.items() if kind == "commit"]:
            added = git_out("rev-list", "--stdin", "--not", "--all", stdin="\n".join(commits))
            problems += check_ci(added.split())
        if kinds:
            problems += scan(new_objects(list(kinds)))
    except Refusal as exc:
        problems.append(str(exc))
    return problems


def main() -> int:
    updates = read_updates(sys.stdin.read())
    if not updates:
        return 0
    try:
        problems = check(updates)
    except subprocess.TimeoutExpired:
        problems = [f"push refused: checking the push took over {UPSTREAM_TIMEOUT}s"]
    except (OSError, ValueError) as exc:
        problems = [f"push refused: checking the push failed: {exc}"]
    if problems:
        for problem in problems:
            say(problem)
        say("nothing was sent upstream")
        return 1
    return forward(updates)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-gitleaks-config"] and len(sys.argv) == 3:
        write_gitleaks_config(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
