"""The state store: the journal, its snapshot and the lock. Nothing else touches those files."""

from reconciler.domain import SubmissionStatus
from reconciler.state.audit import (
    Attempt,
    AuditLog,
    Step,
    Verification,
    audit_log,
    verify,
)
from reconciler.state.intents import IntentDetails, intent_details
from reconciler.state.lock import LockHolder, force_unlock, read_lock_holder
from reconciler.state.records import EventType, State, SubmissionRecord
from reconciler.state.store import (
    History,
    StateWriter,
    init_state,
    load_state,
    open_state,
    verify_journal,
)

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
