"""The state's branch on a git remote (--state-branch): a command acts only on the branch's newest
commit, publishes what it journaled before acting on it, and says why when it cannot.
The whole flow around it is tests/test_gitops.py; these are the refusals, through the CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from factories import wedata_plan, write
from harness import cli

from reconciler import git as gitcmd


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def origin(tmp_path: Path, cli_env: dict[str, str]) -> Path:
    """A bare origin whose `backfill-state` branch was started by `init --state-branch`."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    first = checkout(tmp_path, bare, "first", existing=False)
    done = cli("init", "--state-branch", "backfill-state", cwd=first, env=author(cli_env))
    assert done.returncode == 0, done.stderr
    return bare


def author(env: dict[str, str]) -> dict[str, str]:
    names = ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")
    mails = ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")
    return {**env, **dict.fromkeys(names, "ci"), **dict.fromkeys(mails, "ci@example.com")}


def checkout(tmp_path: Path, bare: Path, name: str, *, existing: bool = True) -> Path:
    work = tmp_path / name
    git(tmp_path, "init", "-q", str(work))
    git(work, "remote", "add", "origin", str(bare))
    if existing:
        git(work, "fetch", "-q", "origin", "backfill-state")
        git(work, "checkout", "-q", "--detach", "FETCH_HEAD")
    write(work / "plans" / "orders.yaml", wedata_plan())
    (work / ".git" / "info" / "exclude").write_text("plans/\n")
    return work


def test_init_publishes_the_new_state_once(
    origin: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    assert git(origin, "ls-tree", "-r", "--name-only", "backfill-state").splitlines() == [
        "state/.gitattributes",
        "state/.gitignore",
        "state/journal.jsonl",
    ]
    again = checkout(tmp_path, origin, "again")
    done = cli("init", "--state-branch", "backfill-state", cwd=again, env=author(cli_env))
    assert done.returncode == 0
    assert "already holds a state" in done.stdout
    elsewhere = checkout(tmp_path, origin, "elsewhere", existing=False)
    done = cli("init", "--state-branch", "backfill-state", cwd=elsewhere, env=author(cli_env))
    assert done.returncode == 1
    assert "already exists" in done.stderr


def test_a_checkout_behind_the_branch_is_refused_before_anything_is_planned(
    origin: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    stale = checkout(tmp_path, origin, "stale")
    newer = checkout(tmp_path, origin, "newer")
    (newer / "state" / "NOTES").write_text("newer\n")
    git(newer, "add", "state/NOTES")
    git(newer, "commit", "-q", "-m", "newer")
    git(newer, "push", "-q", "origin", "HEAD:backfill-state")

    done = cli("apply", "--yes", "--state-branch", "backfill-state", cwd=stale, env=cli_env)

    assert done.returncode == 1
    assert "1 commit behind origin/backfill-state" in done.stderr
    assert "re-run all jobs" in done.stderr


def test_a_state_that_git_ignores_can_never_be_published(
    origin: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    work = checkout(tmp_path, origin, "ignoring")
    (work / ".git" / "info" / "exclude").write_text("plans/\n/state/\n")

    done = cli("apply", "--yes", "--state-branch", "backfill-state", cwd=work, env=cli_env)

    assert done.returncode == 1
    assert "git ignores state/journal.jsonl (.git/info/exclude:2:/state/)" in done.stderr


def test_a_verdict_needs_a_reason(origin: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    work = checkout(tmp_path, origin, "verdict")
    done = cli("state", "forget", "--reason", " ", "--", "abcd", cwd=work, env=cli_env)
    assert done.returncode == 1
    assert "needs a reason" in done.stderr


@pytest.mark.parametrize(
    ("said", "result"),
    [
        (" ! [rejected]        HEAD -> backfill-state (fetch first)", gitcmd.Pushed.MOVED),
        (" ! [rejected]        HEAD -> backfill-state (non-fast-forward)", gitcmd.Pushed.MOVED),
        (
            "remote: error: GH006: Protected branch update failed for refs/heads/backfill-state.\n"
            " ! [remote rejected] HEAD -> backfill-state (protected branch hook declined)",
            gitcmd.Pushed.REFUSED,
        ),
        (
            "remote: Permission to acme/backfills.git denied to github-actions[bot].\n"
            "fatal: unable to access 'https://github.com/acme/backfills/': The requested URL"
            " returned error: 403",
            gitcmd.Pushed.REFUSED,
        ),
        ("fatal: unable to access: Could not resolve host: github.com", gitcmd.Pushed.FAILED),
    ],
)
def test_a_failed_push_says_whether_the_branch_moved_or_the_push_was_refused(
    said: str, result: gitcmd.Pushed
) -> None:
    assert gitcmd.classify(said).result is result
