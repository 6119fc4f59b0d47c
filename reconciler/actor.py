"""Who is acting, from where: the provenance every journal event carries."""

from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess
from collections.abc import Mapping

from reconciler import __version__
from reconciler.domain import JSON


def current(command: str, env: Mapping[str, str] | None = None) -> dict[str, JSON]:
    """The actor of this process: the CI actor inside GitHub Actions, else the local user."""
    env = os.environ if env is None else env
    actor: dict[str, JSON] = {"command": command, "tool_version": __version__}
    if env.get("GITHUB_ACTIONS") == "true":
        actor["user"] = env.get("GITHUB_ACTOR", "")
        actor["ci"] = "github-actions"
        actor["commit"] = env.get("GITHUB_SHA", "")
        actor["ref"] = env.get("GITHUB_REF", "")
        pr = re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", env.get("GITHUB_REF", ""))
        if pr:
            actor["pr"] = int(pr.group(1))
        if env.get("GITHUB_RUN_ID"):
            actor["run_url"] = (
                f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                f"{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
            )
    else:
        actor["user"] = _local_user()
        actor["host"] = socket.gethostname()
        commit = _git_head()
        if commit:
            actor["commit"] = commit
    return actor


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _git_head() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
