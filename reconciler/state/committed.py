"""What git has committed of the journal: the state's history is part of its integrity.

A journal only ever grows, so every committed version of it is a prefix of the journal on disk.
A journal shorter than a committed version, or differing from it, lost or changed events: the
next apply would send their calls again. Checking this costs no read from git: the blob id git
stored for each version is compared with the id of the journal's same-sized prefix, hashed as
the journal is read.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Location, StateError
from reconciler.state import chain

VERSIONS = 3
"""How many of the newest committed versions are compared. Every command checks before it
writes, so a truncation committed by anything but this tool is caught by the next run; three
also catch one that was followed by a commit or two of other changes."""


@dataclass(frozen=True, slots=True)
class Version:
    commit: str
    size: int
    blob: str


@dataclass(frozen=True, slots=True)
class Committed:
    """The newest committed versions of one journal (none outside a git work tree)."""

    path: Path
    object_format: str = "sha1"
    versions: tuple[Version, ...] = ()

    def check(self, size: int, prefix_ids: dict[int, str]) -> None:
        """Raises StateError when the journal on disk (`size` bytes, with the git blob ids of its
        prefixes) lacks an event of a committed version.

        A version that is a byte prefix of the journal is proven at no cost. One that is not
        (line endings converted on checkout, blank lines added) is read from git: the journal
        then holds its events when it has its last event, with the same hash (every event
        before it is chained to that one, and the chain on disk was checked)."""
        for version in self.versions:
            if prefix_ids.get(version.size) == version.blob and version.size <= size:
                continue
            last = _last_event(_git(self.path.parent, "cat-file", "blob", version.blob) or "")
            if last is not None and _has_event(self.path, *last):
                continue
            if version.size > size:
                raise self._damage(
                    version,
                    f"is {size} bytes, shorter than the {version.size} bytes committed in"
                    f" {version.commit[:12]}: events were removed",
                )
            raise self._damage(
                version,
                f"does not begin with the journal committed in {version.commit[:12]}:"
                " committed events were edited or removed",
            )

    def _damage(self, version: Version, what: str) -> StateError:
        return StateError(
            what,
            location=Location(str(self.path)),
            hint=f"`git diff {version.commit[:12]} -- {self.path.name}` (run in"
            f" {self.path.parent}) shows what changed; restore the journal with `git checkout"
            f" {version.commit[:12]} -- {self.path.name}` if it lost events, and never edit"
            " it by hand",
        )


def versions(journal: Path) -> Committed:
    """The newest committed versions of `journal`, newest first; none when it is not in a git
    work tree, git is missing, or the journal was never committed."""
    directory = journal.parent
    found = _git(directory, "rev-parse", "--show-object-format", "--show-prefix")
    if found is None:
        return Committed(journal)
    object_format, _, prefix = found.partition("\n")
    commits = _git(directory, "log", f"-n{VERSIONS}", "--format=%H", "--", journal.name)
    if not commits:
        return Committed(journal, object_format)
    names = "".join(f"{commit}:{prefix}{journal.name}\n" for commit in commits.split())
    listing = _git(directory, "cat-file", "--batch-check", stdin=names)
    versions = []
    for commit, line in zip(commits.split(), (listing or "").splitlines(), strict=False):
        blob, kind, size = [*line.split(), "", "", ""][:3]
        if kind == "blob" and size.isdigit():  # else deleted in that commit
            versions.append(Version(commit, int(size), blob))
    return Committed(journal, object_format, tuple(versions))


def _git(directory: Path, *args: str, stdin: str | None = None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=directory,
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None


def _link(line: bytes) -> tuple[int, str] | None:
    """(seq, hash) of a journal line, whatever its layout; None if it is no event."""
    found = chain.fast_link(line)
    if found is not None:
        return found[0], found[2]
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict):
        return None
    seq, own = event.get("seq"), event.get("hash")
    return (seq, own) if isinstance(seq, int) and isinstance(own, str) else None


def _last_event(text: str) -> tuple[int, str] | None:
    lines = [line for line in text.encode().splitlines() if line.strip()]
    return _link(lines[-1].rstrip(b"\r")) if lines else None


def _has_event(path: Path, seq: int, own: str) -> bool:
    try:
        with path.open("rb") as lines:
            return any(_link(line.rstrip(b"\r\n")) == (seq, own) for line in lines)
    except OSError:
        return False
