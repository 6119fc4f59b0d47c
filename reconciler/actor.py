"""Who is acting, from where: the provenance every journal event carries (user or CI actor,
commit, ref, pull request, workflow run, tool version)."""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler import git
from reconciler.domain import JSON, Plan, PlanHeader
from reconciler.version import VERSION

_PR_REF = re.compile(r"refs/pull/(\d+)/(?:merge|head)")
# The first line GitHub writes for a merge commit, and the suffix it gives a squashed one.
_MERGE_MESSAGE = re.compile(r"Merge pull request #(\d+) from ")
_SQUASH_MESSAGE = re.compile(r"\(#(\d+)\)$")


def current(
    command: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, JSON]:
    """The actor of this process: the CI actor inside GitHub Actions, else the local user.

    `commit` is the commit checked out in `cwd` (what the plans were read from) where git can
    say; inside Actions `event_commit` adds the triggering GITHUB_SHA when that differs, as it
    does for an apply that checks out the newest main.
    """
    env = os.environ if env is None else env
    actor: dict[str, JSON] = {"command": command, "tool_version": VERSION}
    head = _git(cwd, "rev-parse", "HEAD")
    if env.get("GITHUB_ACTIONS") == "true":
        actor.update(_github(env, head))
    else:
        actor["user"] = _local_user()
        actor["host"] = socket.gethostname()
        if head:
            actor["commit"] = head
        ref = _git(cwd, "symbolic-ref", "-q", "HEAD")
        if ref:
            actor["ref"] = ref
    return actor


def _github(env: Mapping[str, str], head: str) -> dict[str, JSON]:
    event_commit = env.get("GITHUB_SHA", "")
    actor: dict[str, JSON] = {
        "user": env.get("GITHUB_ACTOR", ""),
        "ci": "github-actions",
        "event": env.get("GITHUB_EVENT_NAME", ""),
        "repository": env.get("GITHUB_REPOSITORY", ""),
        "commit": head or event_commit,
        "ref": env.get("GITHUB_REF", ""),
    }
    if head and event_commit and head != event_commit:
        actor["event_commit"] = event_commit
    pr = _pull_request(env)
    if pr is not None:
        actor["pr"], actor["pr_source"] = pr
    # Set by the workflow from GitHub's record of who approved the deployment of this run.
    approvers = [name for name in env.get("BACKFILL_APPROVED_BY", "").split(",") if name.strip()]
    if approvers:
        actor["approved_by"] = [name.strip() for name in approvers]
    if env.get("GITHUB_RUN_ID"):
        actor["run_url"] = (
            f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/"
            f"{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
        )
        if env.get("GITHUB_RUN_ATTEMPT", "").isdigit():
            actor["run_attempt"] = int(env["GITHUB_RUN_ATTEMPT"])
    return actor


def _pull_request(env: Mapping[str, str]) -> tuple[int, str] | None:
    """The pull request and where its number came from, for an auditor to weigh.

    A pull_request run names it in GITHUB_REF. A push to main after a merge does not: its
    event payload only has the head commit, whose message GitHub writes as
    "Merge pull request #N from ..." or "Title (#N)" (squash); a rebase merge leaves no trace.
    """
    match = _PR_REF.fullmatch(env.get("GITHUB_REF", ""))
    if match:
        return int(match.group(1)), "ref"
    payload = _event_payload(env.get("GITHUB_EVENT_PATH", ""))
    pull_request = payload.get("pull_request")
    if isinstance(pull_request, dict) and isinstance(pull_request.get("number"), int):
        return pull_request["number"], "event"
    head_commit = payload.get("head_commit")
    message = head_commit.get("message") if isinstance(head_commit, dict) else None
    if isinstance(message, str) and message:
        first_line = message.splitlines()[0].strip()
        number = _pull_request_of(first_line)
        if number is not None:
            return number, "merge commit message"
    return None


def _pull_request_of(subject: str) -> int | None:
    found = _MERGE_MESSAGE.match(subject.strip()) or _SQUASH_MESSAGE.search(subject.strip())
    return int(found.group(1)) if found else None


def for_plans(
    actor: Mapping[str, JSON], plans: Iterable[Plan | PlanHeader], cwd: Path | None = None
) -> dict[str, dict[str, JSON]]:
    """The actor of each plan's intents: this run's, with the commit that last changed the plan's
    file on the first-parent line of HEAD and the pull request that commit names (a merge or
    squash commit names it; a rebase merge does not) in place of the triggering event's. The
    plan's pull request is the one that introduced or last changed it, whatever ran the apply
    (a later merge, a dispatch). Plans whose file git never committed keep the run's actor."""
    files = {plan.name: Path(plan.location.file) for plan in plans}
    changes = git.last_changes(cwd or Path.cwd(), files.values())
    others = {k: v for k, v in actor.items() if k not in ("pr", "pr_source")}
    found: dict[str, dict[str, JSON]] = {}
    for name, file in files.items():
        change = changes.get(file.resolve())
        if change is None:
            continue
        found[name] = {**others, "plan_commit": change.commit}
        number = _pull_request_of(change.subject)
        if number is not None:
            found[name].update(pr=number, pr_source="plan's last change")
    return found


def _event_payload(path: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _git(cwd: Path | None, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=False, cwd=cwd
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
