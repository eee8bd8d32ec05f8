"""The pre-receive hook's ref policy: deleting, rewriting, non-commit refs and CI changes,
each refused unless the remote allows it (the mirror's `gitgate.allow*` keys)."""

from __future__ import annotations

import re

from remotebottle.resources.gitgate.hook_git import Update, allowed, git, git_out

# Where the well-known CI systems read their definitions (paths from the repository root).
CI_DEFINITION = re.compile(
    r"(?:\.github/(?:workflows|actions)|\.circleci|\.buildkite|\.azure-pipelines)/"
    r"|(?:\.gitlab-ci|azure-pipelines|\.travis|bitbucket-pipelines|\.drone)\.ya?ml$"
    r"|jenkinsfile$",
    re.IGNORECASE,
)


def leads_to(oid: str) -> str:
    """The type of the object `oid` leads to once tags are peeled."""
    return git("cat-file", "-t", f"{oid}^{{}}").stdout.strip() or "missing object"


def rewrites(update: Update) -> bool:
    """Whether the update is not a fast-forward (moving a tag always is)."""
    if update.ref.startswith("refs/tags/"):
        return True
    result = git("merge-base", "--is-ancestor", update.old, update.new)
    return result.returncode != 0


def check_ref(u: Update, kind: str) -> str | None:
    """Why this ref update is refused, if it is; `kind` is what its new value leads to."""
    if u.deletes:
        if allowed("allowDeletes"):
            return None
        return f"push refused: {u.ref}: this remote does not allow deleting refs (AllowDeletes)"
    if kind != "commit":
        return (
            f"push refused: {u.ref} leads to a {kind}, not a commit: the gate forwards"
            " branches and tags of commits only"
        )
    if u.creates or not rewrites(u) or allowed("allowForcePush"):
        return None
    what = "moves a tag" if u.ref.startswith("refs/tags/") else "is not a fast-forward"
    return f"push refused: {u.ref} {what}: this remote does not allow force-pushes (AllowForcePush)"


def check_ci(commits: list[str]) -> list[str]:
    """A refusal per commit that changes a CI definition (for a merge: differs from every
    parent there), unless the remote allows it."""
    if not commits or allowed("allowCIChanges"):
        return []
    out = git_out(
        "diff-tree",
        "--stdin",
        "-r",
        "--root",
        "-c",
        "--name-only",
        "-z",
        stdin="\n".join(commits) + "\n",
    )
    new = set(commits)
    touched: dict[str, list[str]] = {}
    commit = ""
    for token in out.split("\0"):
        if token in new:
            commit = token
        elif CI_DEFINITION.match(token):
            touched.setdefault(commit, []).append(token)
    return [
        f"push refused: commit {c[:12]} changes CI definitions ({', '.join(paths[:3])}):"
        " this remote does not allow CI changes (AllowCIChanges)"
        for c, paths in touched.items()
    ]
