"""Git, as the GitHub flow needs it: the state's branch on a remote (fetch it, commit to it, push
to it fast-forward only) and the history of the plan files (which commit last changed each, and
which files a change touched). Plain functions over the `git` command.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from reconciler import providers
from reconciler.errors import BackfillError

TIMEOUT = 120.0
"""Seconds one git command may take: a fetch or a push over a slow network, never forever."""

# A pushed branch GitHub refuses names its rule: GH006 protected branch, GH013 rulesets.
_REFUSED = re.compile(
    r"\[remote rejected\]|GH0\d\d|denied|403|protected branch|hook declined", re.IGNORECASE
)
_MOVED = re.compile(r"\[rejected\]|non-fast-forward|fetch first|stale info", re.IGNORECASE)


class GitError(BackfillError):
    """A git command failed where the flow cannot go on without it."""


def _environment() -> dict[str, str]:
    # Git runs hooks and credential helpers: the cloud credentials of an apply are no business
    # of theirs. And never a prompt for a password in CI: fail instead.
    secrets = tuple(p.credentials_prefix for p in providers.registry().values())
    env = {k: v for k, v in os.environ.items() if not k.startswith(secrets)}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `cwd`; never raises for an exit code (the caller reads it)."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            env=_environment(),
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"`git {' '.join(args)}` in {cwd} took longer than {TIMEOUT:.0f}s") from None
    except OSError as error:
        raise GitError(f"cannot run git: {error.strerror}") from None


def _output(cwd: Path, *args: str) -> str:
    done = run(cwd, *args)
    if done.returncode != 0:
        raise GitError(
            f"`git {' '.join(args)}` failed in {cwd}: {_last_line(done.stderr)}",
            hint="the state directory must be in a git checkout of its branch",
        )
    return done.stdout.strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def work_tree(path: Path) -> Path | None:
    """The top of the git work tree `path` is in; None when it is in none."""
    while not path.is_dir():  # a state directory not made yet
        path = path.parent
    done = run(path, "rev-parse", "--show-toplevel")
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def head(cwd: Path) -> str | None:
    """The commit checked out; None on a branch with no commit yet."""
    done = run(cwd, "rev-parse", "--verify", "--quiet", "HEAD")
    return done.stdout.strip() or None


def fetch_branch(cwd: Path, remote: str, branch: str) -> str | None:
    """Fetches `branch` of `remote` and returns its commit; None when the remote has no such
    branch. Raises GitError when the remote cannot be asked."""
    listed = run(cwd, "ls-remote", "--exit-code", "--heads", remote, f"refs/heads/{branch}")
    if listed.returncode == 2:  # the remote answered: no such branch
        return None
    if listed.returncode != 0:
        raise GitError(f"cannot reach the remote {remote!r}: {_last_line(listed.stderr)}")
    tracking = f"refs/remotes/{remote}/{branch}"
    _output(cwd, "fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{tracking}")
    return _output(cwd, "rev-parse", "--verify", tracking)


def is_ancestor(cwd: Path, older: str, newer: str) -> bool:
    return run(cwd, "merge-base", "--is-ancestor", older, newer).returncode == 0


def count(cwd: Path, commits: str) -> int:
    return int(_output(cwd, "rev-list", "--count", commits) or 0)


def uncommitted(cwd: Path, path: Path) -> list[str]:
    """What `git status` lists under `path`: changes not committed (ignored files aside)."""
    listing = _output(cwd, "status", "--porcelain", "--untracked-files=all", "--", str(path))
    return [line for line in listing.splitlines() if line]


def ignored_by(cwd: Path, path: Path) -> str | None:
    """The rule that makes git ignore `path` (`.gitignore:8:/state/`), or None."""
    done = run(cwd, "check-ignore", "--verbose", "--no-index", "--", str(path))
    if done.returncode != 0:
        return None
    rule, _, _ = done.stdout.strip().partition("\t")
    return rule


def commit(cwd: Path, paths: Sequence[Path], message: str) -> str | None:
    """Commits `paths` (added or changed) with `message`; the new commit, or None when they did
    not change."""
    _output(cwd, "add", "--all", "--", *(str(p) for p in paths))
    if run(cwd, "diff", "--cached", "--quiet", "--", *(str(p) for p in paths)).returncode == 0:
        return None
    named = [str(p) for p in paths]
    done = run(cwd, "commit", "--quiet", "--no-verify", "-m", message, "--", *named)
    if done.returncode != 0:
        raise GitError(
            f"cannot commit the state in {cwd}: {_last_line(done.stderr + done.stdout)}",
            hint="git needs an author: set user.name and user.email (or GIT_AUTHOR_NAME,"
            " GIT_AUTHOR_EMAIL, GIT_COMMITTER_NAME, GIT_COMMITTER_EMAIL)",
        )
    return _output(cwd, "rev-parse", "HEAD")


class Pushed(StrEnum):
    OK = "ok"
    MOVED = "moved"
    """The branch has commits this one does not: someone else wrote it since it was read."""
    REFUSED = "refused"
    """The remote would not take it: a protected branch, a ruleset, or no permission."""
    FAILED = "failed"
    """No answer that says which: the network, or the remote failed."""


@dataclass(frozen=True, slots=True)
class Push:
    result: Pushed
    message: str
    """What the remote or git said, one line."""


def push(cwd: Path, remote: str, branch: str) -> Push:
    """Pushes HEAD to `branch` of `remote`: fast-forward only, never forced."""
    done = run(cwd, "push", "--porcelain", "--quiet", remote, f"HEAD:refs/heads/{branch}")
    if done.returncode == 0:
        return Push(Pushed.OK, "")
    return classify(done.stdout + "\n" + done.stderr)


def classify(said: str) -> Push:
    """What a failed push's output says happened."""
    remote_lines = [
        line.removeprefix("remote:").strip()
        for line in said.splitlines()
        if line.startswith("remote:") and line.removeprefix("remote:").strip()
    ]
    line = next((r for r in remote_lines if _REFUSED.search(r)), None) or _last_line(said)
    if "[remote rejected]" in said or (_REFUSED.search(said) and not _MOVED.search(said)):
        return Push(Pushed.REFUSED, line)
    if _MOVED.search(said):
        return Push(Pushed.MOVED, line)
    return Push(Pushed.FAILED, line)


# --- the plan files' history ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """The commit on the first-parent line of HEAD that last changed a file: for a merged pull
    request, its merge commit (or the squashed one), whose message names the pull request."""

    commit: str
    subject: str


def last_changes(cwd: Path, files: Iterable[Path]) -> dict[Path, Change]:
    """For each of `files` (resolved paths), the commit that last changed it on HEAD's
    first-parent line; files git never committed are left out. One `git log` for all."""
    wanted = {f.resolve() for f in files}
    top = work_tree(cwd)
    if top is None or not wanted:
        return {}
    found: dict[Path, Change] = {}
    folders = sorted({str(f.parent.relative_to(top)) for f in wanted if f.is_relative_to(top)})
    if not folders:
        return {}
    with subprocess.Popen(
        ["git", "log", "--first-parent", "--format=%x1e%H%x1f%s", "--name-only", "--", *folders],
        cwd=top,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_environment(),
    ) as log:
        assert log.stdout is not None
        current: Change | None = None
        for raw in log.stdout:
            line = raw.rstrip("\n")
            if line.startswith("\x1e"):
                commit, _, subject = line[1:].partition("\x1f")
                current = Change(commit, subject)
            elif line and current is not None:
                path = (top / line).resolve()
                if path in wanted and path not in found:
                    found[path] = current
                    if len(found) == len(wanted):
                        break
        log.kill()
    return found


def changed_files(cwd: Path, since: str) -> frozenset[Path]:
    """The files (resolved) that differ between commit `since` and the work tree."""
    top = work_tree(cwd)
    if top is None:
        raise GitError(f"{cwd} is not in a git work tree, so nothing can be compared with {since}")
    names = _output(top, "diff", "--name-only", "--no-renames", since, "--")
    return frozenset((top / name).resolve() for name in names.splitlines() if name)
