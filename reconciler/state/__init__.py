"""The state store: the journal, its snapshot and the lock. Nothing else touches those files.

The audit's and the lock's names load when first asked for: a `plan` reads the state, and
needs neither."""

import importlib
from typing import TYPE_CHECKING, Any

from reconciler.domain import SubmissionStatus
from reconciler.state.intents import IntentDetails, intent_details
from reconciler.state.records import EventType, State, SubmissionRecord
from reconciler.state.store import (
    History,
    StateWriter,
    init_state,
    load_state,
    open_state,
    verify_journal,
)

if TYPE_CHECKING:
    from reconciler.state.audit import (
        Attempt,
        AuditLog,
        Step,
        Verification,
        audit_log,
        verify,
    )
    from reconciler.state.lock import LockHolder, force_unlock, read_lock_holder

_DEFERRED = {
    "audit": ("Attempt", "AuditLog", "Step", "Verification", "audit_log", "verify"),
    "lock": ("LockHolder", "force_unlock", "read_lock_holder"),
}
"""Module of this package -> its names offered here, loaded when first asked for."""


def __getattr__(name: str) -> Any:
    for module, names in _DEFERRED.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Attempt",
    "AuditLog",
    "EventType",
    "History",
    "IntentDetails",
    "LockHolder",
    "State",
    "StateWriter",
    "Step",
    "SubmissionRecord",
    "SubmissionStatus",
    "Verification",
    "audit_log",
    "force_unlock",
    "init_state",
    "intent_details",
    "load_state",
    "open_state",
    "read_lock_holder",
    "verify",
    "verify_journal",
]
