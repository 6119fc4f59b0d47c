"""Between diff and execute: the cells a changeset finds missing become the API calls that
create them, batched as few as each provider's API allows, each with its deterministic key and
the request exactly as it will be sent. A call that runs failed cells again names the attempts
it replaces (in its key too)."""

from __future__ import annotations

import dataclasses

from reconciler import providers
from reconciler.diff import Changeset, PlanChanges
from reconciler.domain import Plan, Submission, submission_key


def submissions(changes: Changeset) -> Changeset:
    """The changeset with every plan's calls made."""
    return dataclasses.replace(
        changes,
        plans=tuple(
            dataclasses.replace(p, submissions=made) if (made := calls(p)) else p
            for p in changes.plans
        ),
    )


def calls(changes: PlanChanges) -> tuple[Submission, ...]:
    plan = changes.plan
    if not changes.missing:
        return ()
    assert isinstance(plan, Plan)  # the diff keeps the spec of a plan with cells to create
    provider = providers.get(plan.provider)
    made: list[Submission] = []
    for missing in changes.missing:
        group = missing.group
        for batch in provider.batches(plan, missing.dates):
            replaces = tuple(
                sorted(
                    {
                        missing.replaces[target][date]
                        for target in batch.targets
                        if target in missing.replaces
                        for date in batch.dates
                        if date in missing.replaces[target]
                    }
                )
            )
            key = submission_key(
                plan.name,
                plan.revision,
                batch.targets,
                batch.dates,
                group.fingerprint,
                replaces=replaces,
            )
            made.append(
                Submission(
                    key=key,
                    plan=plan.name,
                    revision=plan.revision,
                    provider=provider.name,
                    action=provider.action,
                    region=provider.region(plan),
                    targets=batch.targets,
                    dates=batch.dates,
                    fingerprint=group.fingerprint,
                    params=group.params,
                    request=provider.request(plan, group, batch, key),
                    replaces=replaces,
                )
            )
    return tuple(made)
