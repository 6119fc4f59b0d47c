"""The state's branch on a git remote: in the GitHub flow it is the write-ahead log.

A command that writes the state first checks that its checkout is the newest commit of the
branch (an older one would plan calls that were already made), then publishes what it journaled
before acting on it: a commit pushed fast-forward only, never forced, never rebased. The push is
the fence: two runs that read the same commit cannot both publish, so at most one of them sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import actor, git
from reconciler.errors import BackfillError
from reconciler.remedies import plural
from reconciler.state.journal import JOURNAL_FILE

if TYPE_CHECKING:
    from reconciler.state import StateWriter


class Unpublished(BackfillError):
    """The remote did not take a commit of the state: what it holds is what the next run sees."""


@dataclass(frozen=True, slots=True)
class StateBranch:
    state_dir: Path
    name: str
    remote: str = "origin"

    @property
    def where(self) -> str:
        return f"{self.remote}/{self.name}"

    def _top(self) -> Path:
        top = git.work_tree(self.state_dir)
        if top is None:
            raise BackfillError(
                f"{self.state_dir} is not in a git checkout, so it cannot be published to the"
                f" branch {self.name}",
                hint=f"check out {self.where} and point --state-dir at the state in it",
            )
        rule = git.ignored_by(top, self.state_dir.resolve() / JOURNAL_FILE)
        if rule:
            raise BackfillError(
                f"git ignores {self.state_dir / JOURNAL_FILE} ({rule}), so it could never be"
                f" committed to {self.name}",
                hint="keep the state in a checkout of its own branch, where no .gitignore"
                " covers it",
            )
        return top

    def require_newest(self) -> None:
        """Raises unless the state directory is a clean checkout of the branch's newest commit
        on the remote (fetched now)."""
        top = self._top()
        tip = git.fetch_branch(top, self.remote, self.name)
        if tip is None:
            raise BackfillError(
                f"the remote {self.remote!r} has no branch {self.name}: there is no state to"
                " apply against",
                hint=f"start one once with `backfill init --state-branch {self.name}` (in GitHub:"
                " run the workflow with the operation `init`)",
            )
        here = git.head(top)
        if here != tip:
            what, hint = self._not_newest(top, here, tip)
            raise BackfillError(what, hint=hint)
        dirty = git.uncommitted(top, self.state_dir.resolve())
        if dirty:
            raise BackfillError(
                f"{self.state_dir} has changes that are not committed ({dirty[0].strip()}"
                + (f" and {len(dirty) - 1} more" if len(dirty) > 1 else "")
                + f"): they are not on {self.where}, where the next run reads the state",
                hint=f"discard them (`git checkout -- .` and `git clean`) or start from a fresh"
                f" checkout of {self.where}",
            )

    def _not_newest(self, top: Path, here: str | None, tip: str) -> tuple[str, str]:
        newest = f"the newest state is {self.where} at {tip[:12]}"
        if here and git.is_ancestor(top, here, tip):
            behind = git.count(top, f"{here}..{tip}")
            return (
                f"the state checkout is {plural(behind, 'commit')} behind {self.where}: another"
                " run wrote the state since it was checked out, and planning from it would make"
                " calls again",
                f"{newest}: update the checkout (`git pull`), plan and apply again; in GitHub,"
                " re-run all jobs (not only the failed ones) or run the workflow again",
            )
        if here and git.is_ancestor(top, tip, here):
            return (
                f"the state checkout has commits that are not on {self.where}: a run that could"
                " not publish them left them behind, and nothing that relied on them was sent",
                f"{newest}: start from a fresh checkout of it (`git reset --hard {self.where}`)",
            )
        return (
            f"the state checkout ({(here or 'no commit')[:12]}) is not a commit of {self.where}",
            f"{newest}: check it out (`git checkout {self.where}`)",
        )

    def require_none(self) -> bool:
        """For `init`: True when the remote has no such branch yet; False when it has, and this
        checkout is its newest commit (then there is nothing to start). Raises otherwise."""
        top = self._top()
        tip = git.fetch_branch(top, self.remote, self.name)
        if tip is None:
            return True
        if git.head(top) != tip:
            raise BackfillError(
                f"{self.where} already exists: a state was started there before",
                hint=f"check it out (`git checkout {self.where}`) instead of starting another",
            )
        return False

    def publish(self, message: str, *, journal_only: bool = True) -> bool:
        """Commits the journal (or the whole state directory) and pushes it. False when there
        was nothing to commit. Raises Unpublished when the remote did not take it: then nothing
        that relies on it may happen."""
        top = self._top()
        directory = self.state_dir.resolve()
        commit = git.commit(top, [directory / JOURNAL_FILE if journal_only else directory], message)
        if commit is None:
            return False
        pushed = git.push(top, self.remote, self.name)
        if pushed.result is git.Pushed.FAILED:
            # The answer was lost, not necessarily the push: ask the remote what it holds.
            try:
                if git.fetch_branch(top, self.remote, self.name) == commit:
                    return True
            except git.GitError:
                pass
        if pushed.result is git.Pushed.OK:
            return True
        raise self._unpublished(pushed)

    def _unpublished(self, pushed: git.Push) -> Unpublished:
        if pushed.result is git.Pushed.MOVED:
            return Unpublished(
                f"{self.where} moved since this run read it ({pushed.message}): another run or a"
                " person wrote the state meanwhile",
                hint="plan again from the newest state; in GitHub, re-run all jobs (not only"
                " the failed ones) or run the workflow again",
            )
        if pushed.result is git.Pushed.REFUSED:
            return Unpublished(
                f"{self.remote!r} refused the push to {self.name} ({pushed.message}): a"
                " protected branch, a ruleset or a token without `contents: write`",
                hint=f"let the identity that runs apply push to {self.name} (exempt it from the"
                " rule, or give the job a token that may), then run again",
            )
        return Unpublished(
            f"the push to {self.where} failed ({pushed.message})",
            hint="check the remote and the network, then run again",
        )


@contextmanager
def writing(
    state_dir: Path, command: str, *, lock_timeout: float, branch: StateBranch | None
) -> Iterator[StateWriter]:
    """The state open to write for `backfill COMMAND`, under its lock; with `branch`, only on
    the newest commit of the state's branch (what it journals is the caller's to publish)."""
    from reconciler.state import open_state  # noqa: PLC0415 (the state store, when writing)

    if branch:
        branch.require_newest()
    with open_state(
        state_dir,
        actor=actor.current(command),
        command=f"backfill {command}",
        lock_timeout=lock_timeout,
    ) as writer:
        yield writer
