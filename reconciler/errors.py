"""The one exception type for failures a user can cause and fix, and where they happened; the
exit codes of a run that ends otherwise than with success or an error."""

from __future__ import annotations

from dataclasses import dataclass

WAIT_TIMED_OUT = 4
"""The exit code of `--wait` when --wait-timeout passed before every cell was final."""
WAIT_INTERRUPTED = 130
"""The exit code of `--wait` stopped by Ctrl-C (the waiting only: the backfills go on)."""


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file: 1-based line and column; 0 means unknown."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line and self.col:
            return f"{self.file}:{self.line}:{self.col}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in user input: where, which field, and a sentence that says what to do."""

    location: Location
    message: str
    field: str = ""

    def __str__(self) -> str:
        where = f"{self.location}: "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"


class BackfillError(Exception):
    """A failure the user can act on. The CLI prints it as one clean message and exits 1."""

    def __init__(self, message: str, *, location: Location | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class InvalidPlans(BackfillError):
    """Plan files failed validation; carries every problem found in the run."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        count = len(diagnostics)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the plan files")
        self.diagnostics = diagnostics


class StateError(BackfillError):
    """The state directory is damaged, locked or not writable."""
