"""The GitHub flow, simulated as it runs: a bare origin built from this repository's own files
(its root .gitignore, workflows, action and scripts as they ship), workflow runs whose `run:`
scripts are executed literally with the GITHUB_* files and realistic event payloads, and
stand-ins only for GitHub's own services:

- `actions/checkout`: init, fetch the ref (at the depth asked) from the origin, check it out;
  no credentials are kept;
- `actions/setup-python` and the "Install backfill-reconciler" steps: this test environment
  already has the tool installed from the same files;
- `actions/upload-artifact` / `download-artifact`: a store per workflow run, shared by its
  attempts as GitHub's is;
- `actions/github-script`: the step's script run by node with a recording `github` client,
  whose answers (comments, environment approvals) come from this simulated GitHub;
- the environment's required reviewers: an approval recorded as GitHub's API returns it;
- the cloud: the emulator, on loopback.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(os.environ.get("BACKFILL_GITOPS_SOURCE", ROOT))
"""Whose files the origin is built from: this repository (another checkout to compare)."""
BIN = Path(sys.executable).parent
NODE_RUNNER = Path(__file__).with_name("github-script.js")
REPOSITORY = "acme/backfills"
SERVER = "https://github.com"
TOKEN = "ghs_SimulatedInstallationToken0000000000"  # made up: GitHub's token for the run
BOT = "github-actions[bot]"
STEP_TIMEOUT = 300.0


# --- git ----------------------------------------------------------------------------------------


def git(cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {done.stderr}")
    return done.stdout.strip()


# --- GitHub expressions -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")


class Expression:
    """GitHub's expression language, as much of it as workflows use: literals, contexts and
    their properties, `!`, `==`, `!=`, `<`, `>`, `&&`, `||`, parentheses and the functions
    always(), success(), failure(), cancelled(), contains(), startsWith(). Anything else is an
    error, so a workflow cannot use what this simulation does not do."""

    def __init__(self, text: str, contexts: Mapping[str, Any], *, failed: bool) -> None:
        self.tokens = self._tokenize(text)
        self.at = 0
        self.contexts = contexts
        self.failed = failed

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, at = [], 0
        while at < len(text.rstrip()):
            found = _TOKEN.match(text, at)
            if not found or found.end() == at:
                raise ValueError(f"cannot read the expression {text!r} at {at}")
            kind = found.lastgroup
            assert kind is not None
            tokens.append((kind, found.group(kind)))
            at = found.end()
        return tokens

    def value(self) -> Any:
        result = self._or()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at]} in expression")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.at += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            left = right if truthy(left) else left
        return left

    def _compare(self) -> Any:
        left = self._unary()
        while self._peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self._take()[1]
            right = self._unary()
            left = compare(op, left, right)
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self._peek() == "(":
            return self._call(text)
        value: Any = self.contexts.get(text)
        if text not in self.contexts:
            raise ValueError(f"unknown context {text!r}")
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                name = self._take()[1]
            else:
                name = str(self._or())
                self._take("]")
            value = value.get(name) if isinstance(value, dict) else None
        return value

    def _call(self, name: str) -> Any:
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        if name == "always":
            return True
        if name == "success":
            return not self.failed
        if name == "failure":
            return self.failed
        if name == "cancelled":
            return False
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(compare("==", item, needle) for item in haystack)
            return str(needle).lower() in str(haystack).lower()
        if name == "startsWith":
            return str(args[0]).lower().startswith(str(args[1]).lower())
        raise ValueError(f"unknown function {name}()")


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, 0.0, "")


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip() or 0)
    except ValueError:
        return float("nan")


def compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.casefold()
        b: Any = right.casefold()
    elif type(left) is type(right) and not isinstance(left, str):
        a, b = left, right
    else:
        a, b = _number(left), _number(right)
    if op in ("==", "!="):
        return bool(a == b) == (op == "==")
    try:
        return bool({"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op])
    except TypeError:
        return False


def evaluate(text: str, contexts: Mapping[str, Any], *, failed: bool = False) -> Any:
    return Expression(text, contexts, failed=failed).value()


def interpolate(text: Any, contexts: Mapping[str, Any], *, failed: bool = False) -> str:
    """A `with:`/`env:` value: every `${{ }}` replaced by its value as a string."""
    if not isinstance(text, str):
        return "true" if text is True else "false" if text is False else str(text)

    def one(found: re.Match[str]) -> str:
        value = evaluate(found.group(1), contexts, failed=failed)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value if isinstance(value, str) else json.dumps(value)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def condition(text: Any, contexts: Mapping[str, Any], *, failed: bool) -> bool:
    """A step's or job's `if:`: without a status function it means `success() && (...)`."""
    if text is None:
        return not failed
    if isinstance(text, bool):
        return text and not failed
    expression = str(text).strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    if not any(re.search(rf"\b{name}\s*\(", expression) for name in STATUS_FUNCTIONS):
        expression = f"success() && ({expression})"
    return truthy(evaluate(expression, contexts, failed=failed))


# --- file commands --------------------------------------------------------------------------


def read_file_command(path: Path) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER` heredocs, as $GITHUB_OUTPUT and $GITHUB_ENV
    hold them."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


_COMMAND = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")


@dataclass(frozen=True, slots=True)
class Annotation:
    level: str
    message: str
    file: str = ""
    line: int = 0
    title: str = ""


def parse_annotations(output: str) -> list[Annotation]:
    found = []
    for raw in output.splitlines():
        match = _COMMAND.match(raw.strip())
        if not match:
            continue
        props: dict[str, str] = {}
        for part in (match.group(2) or "").split(","):
            if "=" in part:
                key, value = part.split("=", 1)
                props[key] = value.replace("%3A", ":").replace("%2C", ",").replace("%25", "%")
        message = match.group(3).replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
        found.append(
            Annotation(
                match.group(1),
                message,
                props.get("file", ""),
                int(props.get("line", "0") or 0),
                props.get("title", ""),
            )
        )
    return found


# --- the simulated GitHub -------------------------------------------------------------------


@dataclass
class Comment:
    id: int
    body: str
    user: str = BOT


@dataclass
class PullRequest:
    number: int
    branch: str
    title: str
    head: str
    merge: str
    base: str


@dataclass
class StepResult:
    name: str
    outcome: str
    """success, failure or skipped."""
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    id: str = ""


@dataclass
class JobResult:
    name: str
    result: str
    """success, failure or skipped."""
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    attempt: int = 1

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name} ({s.outcome})\n{s.log}" for s in self.steps)

    @property
    def annotations(self) -> list[Annotation]:
        return parse_annotations(self.log)

    def step(self, name: str) -> StepResult:
        [found] = [s for s in self.steps if name in (s.name, s.id)]
        return found


class Killed(Exception):
    """The runner died: the job's remaining steps never run, whatever their `if:`."""


class GitHub:
    """One repository on a simulated GitHub: its origin, pull requests, workflow runs,
    artifacts, comments, environment approvals and variables."""

    def __init__(self, root: Path, *, variables: Mapping[str, str], secrets: Mapping[str, str]):
        self.root = root
        self.origin = root / "origin.git"
        self.variables = dict(variables)
        self.secrets = dict(secrets)
        """The `backfill` environment's secrets (there are no repository secrets)."""
        self.runner_env: dict[str, str] = {}
        """Set on the runner machine itself, outside any workflow (as a self-hosted runner's
        .env file does)."""
        self.comments: dict[int, list[Comment]] = {}
        self.pulls: dict[int, PullRequest] = {}
        self.runs = 0
        self.approver = "alice"
        self._build_origin()

    # repository ----------------------------------------------------------------------------

    def _build_origin(self) -> None:
        git(self.root, "init", "--quiet", "--bare", "-b", "main", str(self.origin))
        # GitHub serves any commit of the repository by id (actions/checkout fetches the sha).
        git(self.origin, "config", "uploadpack.allowAnySHA1InWant", "true")
        seed = self.clone("seed")
        listed = git(SOURCE, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split(
            "\0"
        )
        for name in filter(None, listed):
            source = SOURCE / name
            if not source.is_file():
                continue  # deleted in the work tree, not yet committed
            target = seed / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        git(seed, "add", "--all")
        git(seed, "commit", "--quiet", "-m", "Initial commit")
        git(seed, "push", "--quiet", "origin", "HEAD:refs/heads/main")

    @property
    def url(self) -> str:
        return self.origin.as_uri()

    def clone(self, name: str) -> Path:
        where = self.root / "clones" / name
        if where.exists():
            shutil.rmtree(where)
        where.parent.mkdir(parents=True, exist_ok=True)
        git(self.root, "clone", "--quiet", self.url, str(where))
        return where

    def sha(self, ref: str) -> str:
        return git(self.origin, "rev-parse", ref)

    def files_at(self, ref: str) -> list[str]:
        return git(self.origin, "ls-tree", "-r", "--name-only", ref).splitlines()

    def show(self, ref: str, path: str) -> str:
        return git(self.origin, "show", f"{ref}:{path}")

    def protect(self, branch: str) -> None:
        """Refuse every push to `branch` as GitHub does for a protected branch without bypass."""
        hook = self.origin / "hooks" / "pre-receive"
        hook.write_text(
            "#!/bin/sh\n"
            "while read old new ref; do\n"
            f'  if [ "$ref" = "refs/heads/{branch}" ]; then\n'
            f'    echo "error: GH006: Protected branch update failed for refs/heads/{branch}."\n'
            '    echo "error: Changes must be made through a pull request."\n'
            "    exit 1\n"
            "  fi\n"
            "done\n"
        )
        hook.chmod(0o755)

    def unprotect(self) -> None:
        (self.origin / "hooks" / "pre-receive").unlink(missing_ok=True)

    def push_commit(
        self, files: Mapping[str, str | None], message: str, *, branch: str = "main"
    ) -> tuple[str, str]:
        """A person's commit pushed straight to `branch`: (before, after)."""
        work = self.clone(f"push-{time.monotonic_ns()}")
        git(work, "checkout", "--quiet", branch)
        before = git(work, "rev-parse", "HEAD")
        _write(work, files)
        git(work, "add", "--all")
        git(work, "commit", "--quiet", "-m", message)
        git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        return before, git(work, "rev-parse", "HEAD")

    def open_pull_request(
        self, number: int, files: Mapping[str, str | None], title: str
    ) -> PullRequest:
        """A branch off main with `files` changed, and the refs GitHub makes for it: its head
        and the merge commit of it into main that `pull_request` runs check out."""
        branch = f"change-{number}"
        work = self.clone(f"pr-{number}")
        base = git(work, "rev-parse", "HEAD")
        git(work, "checkout", "--quiet", "-b", branch)
        _write(work, files)
        git(work, "add", "--all")
        git(work, "commit", "--quiet", "-m", title)
        head = git(work, "rev-parse", "HEAD")
        git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        git(work, "push", "--quiet", "origin", f"HEAD:refs/pull/{number}/head")
        git(work, "checkout", "--quiet", "--detach", base)
        git(work, "merge", "--quiet", "--no-ff", "-m", f"Merge {head} into {base}", head)
        merge = git(work, "rev-parse", "HEAD")
        git(work, "push", "--quiet", "origin", f"HEAD:refs/pull/{number}/merge")
        found = PullRequest(number, branch, title, head, merge, base)
        self.pulls[number] = found
        return found

    def merge(self, pull: PullRequest) -> dict[str, Any]:
        """Merges with a merge commit as GitHub's button does; the push event's payload."""
        work = self.clone(f"merge-{pull.number}")
        before = git(work, "rev-parse", "HEAD")
        git(work, "fetch", "--quiet", "origin", pull.branch)
        message = f"Merge pull request #{pull.number} from acme/{pull.branch}\n\n{pull.title}"
        git(work, "merge", "--quiet", "--no-ff", "-m", message, "FETCH_HEAD")
        git(work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
        after = git(work, "rev-parse", "HEAD")
        return self.push_payload(before, after)

    def push_payload(self, before: str, after: str) -> dict[str, Any]:
        message = git(self.origin, "log", "-1", "--format=%B", after)
        return {
            "ref": "refs/heads/main",
            "before": before,
            "after": after,
            "head_commit": {"id": after, "message": message},
            "repository": {"full_name": REPOSITORY},
        }

    # workflow runs ---------------------------------------------------------------------------

    def workflow(self, name: str, ref: str = "main") -> dict[Any, Any]:
        document = yaml.safe_load(self.show(ref, f".github/workflows/{name}"))
        assert isinstance(document, dict)
        return document

    def on_push(self, name: str, payload: Mapping[str, Any]) -> Run | None:
        """The run a push starts, or None when the workflow's filters skip it."""
        found = triggers(self.workflow(name))
        push = found.get("push") if isinstance(found, dict) else None
        if push is None:
            return None
        changed = git(
            self.origin, "diff", "--name-only", payload["before"], payload["after"]
        ).splitlines()
        patterns = (push or {}).get("paths")
        if patterns and not any(_glob(p, f) for p in patterns for f in changed):
            return None
        return self.run(name, "push", dict(payload), ref="refs/heads/main", sha=payload["after"])

    def on_pull_request(self, name: str, pull: PullRequest, *, fork: bool = False) -> Run:
        head_repo = "someone/backfills" if fork else REPOSITORY
        payload = {
            "action": "synchronize",
            "number": pull.number,
            "pull_request": {
                "number": pull.number,
                "title": pull.title,
                "head": {"ref": pull.branch, "sha": pull.head, "repo": {"full_name": head_repo}},
                "base": {"ref": "main", "sha": pull.base, "repo": {"full_name": REPOSITORY}},
            },
            "repository": {"full_name": REPOSITORY},
        }
        return self.run(
            name,
            "pull_request",
            payload,
            ref=f"refs/pull/{pull.number}/merge",
            sha=pull.merge,
            workflow_ref=pull.merge,
        )

    def dispatch(self, name: str, **inputs: str) -> Run:
        found = triggers(self.workflow(name))
        if isinstance(found, str):
            found = {found: None}
        declared = (found["workflow_dispatch"] or {}).get("inputs") or {}
        values: dict[str, Any] = {k: spec.get("default", "") for k, spec in declared.items()}
        unknown = set(inputs) - set(declared)
        assert not unknown, f"the workflow has no inputs {unknown}"
        values.update(inputs)
        payload = {
            "inputs": values,
            "ref": "refs/heads/main",
            "repository": {"full_name": REPOSITORY},
        }
        return self.run(name, "workflow_dispatch", payload, ref="refs/heads/main", inputs=values)

    def run(
        self,
        name: str,
        event: str,
        payload: dict[str, Any],
        *,
        ref: str,
        sha: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        workflow_ref: str = "main",
    ) -> Run:
        self.runs += 1
        return Run(
            self,
            self.workflow(name, workflow_ref),
            name=name,
            run_id=1000 + self.runs,
            event=event,
            payload=payload,
            ref=ref,
            sha=sha or self.sha("main"),
            inputs=dict(inputs or {}),
        )

    # what GitHub's API answers -------------------------------------------------------------

    def answers(self, run: Run, issue: int | None) -> dict[str, Any]:
        approvals = [
            {
                "state": "approved",
                "comment": "",
                "environments": [{"name": name}],
                "user": {"login": self.approver},
            }
            for name in sorted(run.approved)
        ]
        comments = [
            {"id": c.id, "body": c.body, "user": {"login": c.user}}
            for c in self.comments.get(issue or 0, [])
        ]
        return {"actions.getReviewsForRun": approvals, "issues.listComments": comments}

    def record(self, calls: list[dict[str, Any]]) -> None:
        for call in calls:
            params = call["params"]
            if call["endpoint"] == "issues.createComment":
                mine = self.comments.setdefault(int(params["issue_number"]), [])
                ids = [c.id for found in self.comments.values() for c in found]
                mine.append(Comment(max(ids, default=0) + 1, params["body"]))
            elif call["endpoint"] == "issues.updateComment":
                for found in self.comments.values():
                    for comment in found:
                        if comment.id == params["comment_id"]:
                            comment.body = params["body"]


def triggers(workflow: dict[Any, Any]) -> Any:
    # YAML 1.1 reads a bare `on` as true
    return workflow["on"] if "on" in workflow else workflow[True]


def _glob(pattern: str, path: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.fullmatch(regex, path) is not None or fnmatch.fnmatch(path, pattern)


def _write(work: Path, files: Mapping[str, str | None]) -> None:
    for name, content in files.items():
        path = work / name
        if content is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")


class Run:
    """One workflow run: its jobs in the order of `needs`, attempts, artifacts and outputs."""

    def __init__(
        self,
        github: GitHub,
        workflow: dict[str, Any],
        *,
        name: str,
        run_id: int,
        event: str,
        payload: dict[str, Any],
        ref: str,
        sha: str,
        inputs: dict[str, Any],
    ) -> None:
        self.github = github
        self.workflow = workflow
        self.name = name
        self.run_id = run_id
        self.event = event
        self.payload = payload
        self.ref = ref
        self.sha = sha
        self.inputs = inputs
        self.attempt = 1
        self.jobs: dict[str, JobResult] = {}
        self.history: list[JobResult] = []
        self.approved: set[str] = set()
        self.artifacts = github.root / "artifacts" / str(run_id)
        self.home = github.root / "runs" / str(run_id)
        self.during: dict[tuple[str, str], Callable[[], bool]] = {}
        """(job, step) -> called while that step runs, to act at that moment; once it returns
        True the runner dies (SIGKILL): the job's remaining steps never run."""

    # running ---------------------------------------------------------------------------------

    def execute(self, only: Iterator[str] | None = None) -> Run:
        wanted = set(only) if only is not None else None
        for name in self._order():
            if wanted is not None and name not in wanted:
                continue
            self.jobs[name] = self._job(name)
            self.history.append(self.jobs[name])
        return self

    def rerun_failed(self) -> Run:
        """ "Re-run failed jobs": a new attempt of the failed jobs and those that need them; the
        others keep their results and outputs."""
        self.attempt += 1
        failed = {n for n, j in self.jobs.items() if j.result == "failure"}
        again = set(failed)
        for name in self._order():
            if set(_needs(self.workflow["jobs"][name])) & again:
                again.add(name)
        return self.execute(iter(again))

    def rerun_all(self) -> Run:
        self.attempt += 1
        self.jobs = {}
        return self.execute()

    def _order(self) -> list[str]:
        jobs = self.workflow["jobs"]
        done: list[str] = []
        while len(done) < len(jobs):
            for name, job in jobs.items():
                if name not in done and all(n in done for n in _needs(job)):
                    done.append(name)
        return done

    @property
    def ok(self) -> bool:
        return all(j.result != "failure" for j in self.jobs.values())

    def __getitem__(self, job: str) -> JobResult:
        return self.jobs[job]

    def _contexts(
        self, job: str, steps: Mapping[str, Any], env: Mapping[str, str]
    ) -> dict[str, Any]:
        spec = self.workflow["jobs"][job]
        needs = {
            n: {"result": self.jobs[n].result, "outputs": self.jobs[n].outputs}
            for n in _needs(spec)
            if n in self.jobs
        }
        environment = spec.get("environment")
        secrets = {"GITHUB_TOKEN": TOKEN, **(self.github.secrets if environment else {})}
        return {
            "github": {
                "event_name": self.event,
                "event": self.payload,
                "ref": self.ref,
                "sha": self.sha,
                "repository": REPOSITORY,
                "repository_owner": REPOSITORY.split("/", maxsplit=1)[0],
                "server_url": SERVER,
                "run_id": str(self.run_id),
                "run_attempt": str(self.attempt),
                "token": TOKEN,
                "actor": "dev",
                "workspace": str(self._workspace(job)),
                "action_path": str(self._workspace(job)),
            },
            "inputs": self.inputs,
            "vars": self.github.variables,
            "secrets": secrets,
            "needs": needs,
            "steps": steps,
            "env": dict(env),
            "runner": {"temp": str(self._temp(job)), "os": "Linux"},
        }

    def _workspace(self, job: str) -> Path:
        return self.home / f"{job}-{self.attempt}" / "work"

    def _temp(self, job: str) -> Path:
        return self.home / f"{job}-{self.attempt}" / "temp"

    def _job(self, name: str) -> JobResult:
        spec = self.workflow["jobs"][name]
        needs = _needs(spec)
        if any(self.jobs.get(n) is None or self.jobs[n].result != "success" for n in needs):
            return JobResult(name, "skipped", attempt=self.attempt)
        contexts = self._contexts(name, {}, {})
        if not condition(spec.get("if"), contexts, failed=False):
            return JobResult(name, "skipped", attempt=self.attempt)
        if spec.get("environment"):
            self.approved.add(str(spec["environment"]))  # a required reviewer approved it
        workspace, temp = self._workspace(name), self._temp(name)
        if workspace.parent.exists():
            shutil.rmtree(workspace.parent)
        workspace.mkdir(parents=True)
        temp.mkdir()
        result = JobResult(name, "success", attempt=self.attempt)
        job_env = {**(self.workflow.get("env") or {}), **(spec.get("env") or {})}
        steps_context: dict[str, Any] = {}
        extra_env: dict[str, str] = {}
        failed = False
        shell = (spec.get("defaults") or {}).get("run", {}).get("shell") or (
            self.workflow.get("defaults") or {}
        ).get("run", {}).get("shell")
        for index, step in enumerate(spec["steps"]):
            step_name = step.get("name") or step.get("uses") or f"step {index}"
            contexts = self._contexts(name, steps_context, {**job_env, **extra_env})
            if not condition(step.get("if"), contexts, failed=failed):
                result.steps.append(StepResult(step_name, "skipped"))
                if step.get("id"):
                    steps_context[step["id"]] = {"outcome": "skipped", "outputs": {}}
                continue
            env = {k: interpolate(v, contexts, failed=failed) for k, v in job_env.items()}
            env.update(extra_env)
            contexts["env"] = env
            env.update(
                {
                    k: interpolate(v, contexts, failed=failed)
                    for k, v in (step.get("env") or {}).items()
                }
            )
            try:
                outcome = self._step(name, step, step_name, env, contexts, shell, failed, result)
            except Killed:
                result.result = "failure"
                result.steps.append(StepResult(step_name, "failure", log="runner killed"))
                return result
            if step.get("id"):
                steps_context[step["id"]] = {"outcome": outcome.outcome, "outputs": outcome.outputs}
            extra_env.update(outcome_env(temp))
            if outcome.outcome == "failure":
                failed = True
        result.result = "failure" if failed else "success"
        contexts = self._contexts(name, steps_context, job_env)
        result.outputs = {
            k: interpolate(v, contexts) for k, v in (spec.get("outputs") or {}).items()
        }
        return result

    def _base_env(self, job: str) -> dict[str, str]:
        temp = self._temp(job)
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "BACKFILL_", "TENCENTCLOUD_", "ALIBABA_CLOUD_", "GIT_"))
            and k not in ("RUNNER_TEMP", "CI")
        }
        event_path = temp / "event.json"
        event_path.write_text(json.dumps(self.payload), encoding="utf-8")
        home = temp.parent / "home"
        home.mkdir(exist_ok=True)
        return {
            **keep,
            **self.github.runner_env,
            "HOME": str(home),
            "PATH": f"{BIN}{os.pathsep}{keep.get('PATH', '')}",
            "CI": "true",
            "NO_COLOR": "1",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self._workspace(job)),
            "RUNNER_TEMP": str(temp),
            "GITHUB_EVENT_NAME": self.event,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_REPOSITORY_OWNER": REPOSITORY.split("/", maxsplit=1)[0],
            "GITHUB_SERVER_URL": SERVER,
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_RUN_ID": str(self.run_id),
            "GITHUB_RUN_ATTEMPT": str(self.attempt),
            "GITHUB_ACTOR": "dev",
            "GITHUB_SHA": self.sha,
            "GITHUB_REF": self.ref,
            "GITHUB_JOB": job,
            "GITHUB_WORKFLOW": str(self.workflow.get("name", self.name)),
        }

    def _step(
        self,
        job: str,
        step: Mapping[str, Any],
        name: str,
        env: dict[str, str],
        contexts: dict[str, Any],
        shell: str | None,
        failed: bool,
        result: JobResult,
    ) -> StepResult:
        base = self._base_env(job)
        files = self._temp(job) / "files"
        files.mkdir(exist_ok=True)
        output, summary = (
            files / f"output-{len(result.steps)}",
            files / f"summary-{len(result.steps)}",
        )
        output.write_text("")
        summary.write_text("")
        full_env = {
            **base,
            **env,
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ENV": str(self._temp(job) / "github-env"),
        }
        inputs = {
            k: interpolate(v, contexts, failed=failed) for k, v in (step.get("with") or {}).items()
        }
        if "run" in step:
            if name == "Install backfill-reconciler":
                done = StepResult(name, "success", log="(stand-in: the tool is installed)")
            else:
                script = str(step["run"])
                done = self._script(job, name, script, step.get("shell") or shell, full_env)
        else:
            done = self._uses(job, str(step["uses"]), name, inputs, full_env, contexts)
        done.outputs = {**read_file_command(output), **done.outputs}
        done.id = str(step.get("id", ""))
        result.summary += summary.read_text(encoding="utf-8")
        result.steps.append(done)
        return done

    def _script(
        self, job: str, name: str, script: str, shell: str | None, env: Mapping[str, str]
    ) -> StepResult:
        path = self._temp(job) / f"script-{time.monotonic_ns()}.sh"
        path.write_text(script, encoding="utf-8")
        # What GitHub runs: `shell: bash` is `bash --noprofile --norc -eo pipefail {0}`; with
        # no shell given, `bash -e {0}`.
        if shell == "bash":
            command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)]
        elif shell is None:
            command = ["bash", "-e", str(path)]
        else:
            raise AssertionError(f"the simulation runs bash only, not {shell!r}")
        process = subprocess.Popen(
            command,
            cwd=self._workspace(job),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        watch = self.during.get((job, name))
        deadline = time.monotonic() + STEP_TIMEOUT
        while process.poll() is None:
            if watch is not None and watch():
                del self.during[(job, name)]  # the next attempt gets a runner that lives
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise Killed
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise AssertionError(f"step {name!r} of {job} ran past {STEP_TIMEOUT}s")
            time.sleep(0.02)
        assert process.stdout is not None
        log = process.stdout.read()
        return StepResult(name, "success" if process.returncode == 0 else "failure", log=log)

    def _uses(
        self,
        job: str,
        uses: str,
        name: str,
        inputs: Mapping[str, str],
        env: Mapping[str, str],
        contexts: dict[str, Any],
    ) -> StepResult:
        action = uses.split("@", 1)[0]
        if action == "actions/checkout":
            return self._checkout(job, name, inputs)
        if action == "actions/setup-python":
            return StepResult(name, "success", log="(stand-in: python is on PATH)")
        if action == "actions/upload-artifact":
            store = self.artifacts / inputs["name"]
            if store.exists():
                return StepResult(name, "failure", log=f"an artifact named {inputs['name']} exists")
            source = Path(inputs["path"])
            if not source.exists():
                return StepResult(name, "success", log="::warning::no files were found")
            shutil.copytree(source, store)
            return StepResult(name, "success")
        if action == "actions/download-artifact":
            store = self.artifacts / inputs["name"]
            if not store.exists():
                return StepResult(name, "failure", log=f"no artifact named {inputs['name']}")
            shutil.copytree(store, Path(inputs["path"]), dirs_exist_ok=True)
            return StepResult(name, "success")
        if action == "actions/github-script":
            return self._github_script(job, name, inputs["script"], env)
        if action == "./":
            return self._composite(job, name, inputs, env, contexts)
        raise AssertionError(f"the simulation has no stand-in for {uses}")

    def _checkout(self, job: str, name: str, inputs: Mapping[str, str]) -> StepResult:
        work = self._workspace(job) / inputs.get("path", "")
        ref = inputs.get("ref") or (self.ref if self.event == "pull_request" else self.sha)
        depth = int(inputs.get("fetch-depth", "1") or 0)
        deep = [] if depth == 0 else [f"--depth={depth}"]
        git(work, "init", "--quiet")
        git(work, "remote", "add", "origin", self.github.url)
        if depth == 0:
            git(
                work,
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            )
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            git(work, "fetch", "--quiet", "--no-tags", *deep, "origin", ref)
            git(work, "checkout", "--quiet", "--detach", ref)
        elif ref.startswith("refs/pull/"):
            git(
                work,
                "fetch",
                "--quiet",
                "--no-tags",
                *deep,
                "origin",
                f"+{ref}:refs/remotes/pull/{ref}",
            )
            git(work, "checkout", "--quiet", "--detach", f"refs/remotes/pull/{ref}")
        else:
            branch = ref.removeprefix("refs/heads/")
            tracking = f"refs/remotes/origin/{branch}"
            git(
                work,
                "fetch",
                "--quiet",
                "--no-tags",
                *deep,
                "origin",
                f"+refs/heads/{branch}:{tracking}",
            )
            git(work, "checkout", "--quiet", "-B", branch, tracking)
        assert inputs.get("persist-credentials") in ("false", False), "credentials persisted"
        return StepResult(name, "success", log=f"checked out {git(work, 'rev-parse', 'HEAD')}")

    def _github_script(
        self, job: str, name: str, script: str, env: Mapping[str, str]
    ) -> StepResult:
        node = shutil.which("node")
        if node is None:
            raise AssertionError("node is needed to run the actions/github-script steps")
        temp = self._temp(job)
        issue = (self.payload.get("pull_request") or {}).get("number")
        record = temp / f"calls-{time.monotonic_ns()}.json"
        owner, repo = REPOSITORY.split("/")
        spec = {
            "script": script,
            "record": str(record),
            "answers": self.github.answers(self, issue),
            "context": {
                "payload": self.payload,
                "eventName": self.event,
                "sha": self.sha,
                "ref": self.ref,
                "runId": self.run_id,
                "runNumber": self.run_id - 1000,
                "job": job,
                "actor": "dev",
                "serverUrl": SERVER,
                "apiUrl": "https://api.github.com",
                "repo": {"owner": owner, "repo": repo},
                "issue": {"owner": owner, "repo": repo, "number": issue},
            },
        }
        spec_path = temp / f"script-{time.monotonic_ns()}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        done = subprocess.run(
            [node, str(NODE_RUNNER), str(spec_path)],
            cwd=self._workspace(job),
            env=dict(env),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        calls = json.loads(record.read_text()) if record.exists() else []
        self.github.record(calls)
        outcome = "success" if done.returncode == 0 else "failure"
        return StepResult(name, outcome, log=done.stdout + done.stderr + json.dumps(calls))

    def _composite(
        self,
        job: str,
        name: str,
        inputs: Mapping[str, str],
        env: Mapping[str, str],
        contexts: dict[str, Any],
    ) -> StepResult:
        """`uses: ./`: this repository's action.yml, its steps run as GitHub runs a composite
        action's (each `shell: bash` step with its own files)."""
        action = yaml.safe_load((self._workspace(job) / "action.yml").read_text())
        given = {
            k: inputs.get(k, str(spec.get("default", ""))) for k, spec in action["inputs"].items()
        }
        unknown = set(inputs) - set(given)
        assert not unknown, f"the action has no inputs {unknown}"
        inner: dict[str, Any] = {}
        logs = []
        failed = False
        for step in action["runs"]["steps"]:
            scope = {**contexts, "inputs": given, "steps": inner}
            if not condition(step.get("if"), scope, failed=failed):
                continue
            step_env = {
                **env,
                **{k: interpolate(v, scope) for k, v in (step.get("env") or {}).items()},
            }
            output = self._temp(job) / f"composite-output-{time.monotonic_ns()}"
            output.write_text("")
            step_env["GITHUB_OUTPUT"] = str(output)
            if "uses" in step:
                done = StepResult(str(step.get("name")), "success")
            elif step.get("name") == "Install backfill-reconciler":
                tool = self._temp(job) / "backfill-reconciler" / "bin"
                tool.mkdir(parents=True, exist_ok=True)
                for program in ("backfill", "python"):
                    if not (tool / program).exists():
                        (tool / program).symlink_to(BIN / program)
                done = StepResult(str(step.get("name")), "success", log="(stand-in: installed)")
            else:
                done = self._script(
                    job, str(step.get("name")), step["run"], step["shell"], step_env
                )
            done.outputs = read_file_command(output)
            logs.append(done.log)
            if step.get("id"):
                inner[step["id"]] = {"outcome": done.outcome, "outputs": done.outputs}
            if done.outcome == "failure":
                failed = True
        scope = {**contexts, "inputs": given, "steps": inner}
        outputs = {k: interpolate(v["value"], scope) for k, v in action["outputs"].items()}
        return StepResult(name, "failure" if failed else "success", outputs, "\n".join(logs))


def outcome_env(temp: Path) -> dict[str, str]:
    return read_file_command(temp / "github-env")


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


# --- the cloud ----------------------------------------------------------------------------------


def creates(emulator_url: str) -> list[dict[str, Any]]:
    """Every create the emulator accepted, as it lists them."""
    calls = httpx.get(f"{emulator_url}/_emulator/calls", timeout=10).json()["calls"]
    assert isinstance(calls, list)
    return calls
