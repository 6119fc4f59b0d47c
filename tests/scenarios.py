"""Repos in the states a reviewer meets: plans edited and removed after an apply."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from factories import dms_plan, wedata_plan
from harness import LOOPBACK, Repo

from reconciler import pipeline
from reconciler.diff import Changeset
from reconciler.execute import intent
from reconciler.state import load_state, open_state


def orders(**spec: Any) -> dict[str, Any]:
    plan = wedata_plan("orders-backfill", **spec)
    plan["metadata"].update(
        reason="INC-4711 | late <order> events, fixed upstream",
        labels={"team": "orders", "ticket": "INC-4711"},
    )
    return plan


def applied(repo: Repo) -> None:
    repo.write("orders", orders(parallelism=2))
    repo.write("retired", dms_plan("retired-backfill", dates=[("2025-08-01", "2025-08-02")]))
    repo.write("settled", dms_plan("settled-backfill", dags=[15003]))
    assert repo.apply() == 0


def edited(repo: Repo) -> None:
    """One plan's parameter edited and its range extended (a conflict and new dates), a plan
    removed (orphaned), a DMS plan added (creates), one left alone (in sync)."""
    (repo.plans / "retired.yaml").unlink()
    repo.write("orders", orders(parallelism=4, dates=[("2025-09-01", "2025-09-05")]))
    repo.write(
        "dms",
        dms_plan("dms-daily", dates=[("2025-09-01", "2025-09-03"), ("2025-09-07", "2025-09-07")]),
    )


def under_review(repo: Repo) -> None:
    applied(repo)
    edited(repo)


def interrupted(repo: Repo, plan: dict[str, Any]) -> None:
    """The plan's first call journaled as intended with no outcome, as when the process died
    after sending it: its cells need attention."""
    repo.write(plan["metadata"]["name"], plan)
    first = next(s for s in repo.changes().creates if s.plan == plan["metadata"]["name"])
    with open_state(repo.state, actor={"user": "test"}, command="test") as writer:
        writer.append("intent", intent(first, LOOPBACK))


def relative_changes(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Changeset:
    """The changeset as `backfill plan` computes it in the repo root: locations read plans/..."""
    monkeypatch.chdir(repo.plans.parent)
    return pipeline.changeset(pipeline.plans([Path("plans")]), load_state(Path("state")))


def clean_env(**extra: str) -> dict[str, str]:
    """For the CLI as a subprocess: none of our variables, nor GitHub's when the tests
    themselves run in Actions, so that only the variables a test sets have an effect."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BACKFILL_", "TENCENTCLOUD_", "ALIBABA_CLOUD_", "GITHUB_"))
    }
    return {**env, "NO_COLOR": "1", **extra}
