"""A seeded repo-scale corpus: plan files of both providers at realistic sizes, and a state
that covers them, journaled through the same store and events that `apply` writes."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from pathlib import Path

from reconciler import pipeline
from reconciler.domain import Outcome, OutcomeKind
from reconciler.execute import intent, outcome_event
from reconciler.state import init_state, load_state, open_state

ENDPOINTS = {
    "tencent-wedata": "https://wedata.intl.tencentcloudapi.com",
    "aliyun-dms": "https://dms-enterprise.cn-hangzhou.aliyuncs.com",
}
TEAMS = ("orders", "finance", "marketing", "risk", "growth", "logistics", "search", "ads")


def _date(rng: random.Random) -> date:
    return date(2024, 1, 1) + timedelta(days=rng.randrange(0, 600))


def _ranges(rng: random.Random, count: int) -> list[str]:
    lines, day = [], _date(rng)
    for _ in range(count):
        end = day + timedelta(days=rng.randrange(0, 31))
        lines += [f"    - start: {day.isoformat()}", f"      end: {end.isoformat()}"]
        day = end + timedelta(days=rng.randrange(2, 20))
    return lines


def _wedata(rng: random.Random, name: str, team: str, index: int) -> str:
    base = 20250000000000000 + index * 10**9  # its own tasks, as each plan has its own DAGs
    tasks = [f'"{base + rng.randrange(10**9)}"' for _ in range(rng.randint(1, 4))]
    lines = [
        "spec:",
        "  provider: tencent-wedata",
        f"  region: {rng.choice(['ap-guangzhou', 'ap-singapore', 'ap-shanghai'])}",
        f'  projectId: "{1460947878944567296 + rng.randrange(50)}"',
        "  taskIds:",
        *[f"    - {t}" for t in tasks],
        "  dates:",
        *_ranges(rng, rng.randint(1, 3)),
        f"  checkParents: {rng.choice(['none', 'all', 'in-plan'])}",
        f"  order: {rng.choice(['normal', 'chronological', 'reverse'])}",
        f"  parallelism: {rng.randint(1, 8)}",
        "  skipEventListening: true",
    ]
    if rng.random() < 0.5:
        lines += ["  executionWindow:", '    start: "01:00"', '    end: "06:00"']
    if rng.random() < 0.3:
        lines += [
            "  parameters:",
            f"    mode: {rng.choice(['repair', 'restate'])}",
            f"    source: {team}_v{rng.randint(1, 3)}",
        ]
    return "\n".join(_envelope(name, team, rng.randrange(1000, 9999)) + lines) + "\n"


def _dms(rng: random.Random, name: str, team: str, index: int) -> str:
    # Each plan its own DAGs: a DAG on a date belongs to one plan at a time, and validate
    # refuses two plans that declare it (the draws stay those of the corpus before that rule;
    # at 50,000 plans, random ids over one range would meet).
    dags = [str(15000 + 5000 * index + rng.randrange(5000)) for _ in range(rng.randint(1, 3))]
    lines = [
        "spec:",
        "  provider: aliyun-dms",
        f"  region: {rng.choice(['cn-hangzhou', 'cn-shanghai', 'ap-southeast-1'])}",
        f"  tenantId: {3000 + rng.randrange(5)}",
        f"  dagIds: [{', '.join(sorted(set(dags)))}]",
        "  dates:",
        *_ranges(rng, rng.randint(1, 2)),
        f"  intervalHours: {rng.choice([24, 24, 12])}",
        f"  order: {rng.choice(['chronological', 'reverse'])}",
        "  triggerSubTree: true",
    ]
    if rng.random() < 0.4:
        lines += [f"  startNodeIds: [{4300 + rng.randrange(100)}]"]
    return "\n".join(_envelope(name, team, rng.randrange(1000, 9999)) + lines) + "\n"


def _envelope(name: str, team: str, ticket: int) -> list[str]:
    return [
        "# yaml-language-server: $schema=../../schemas/backfill-plan.schema.json",
        "apiVersion: backfill-reconciler/v1",
        "kind: BackfillPlan",
        "metadata:",
        f"  name: {name}",
        f"  owner: {team}-data@example.com",
        f'  reason: "{team.upper()}-{ticket}: upstream fix, re-run the affected days"',
        "  labels:",
        f"    team: {team}",
    ]


def write_plans(root: Path, count: int, seed: int = 7) -> Path:
    """`count` plan files under root/plans/<team>/, 60% WeData and 40% DMS."""
    rng = random.Random(seed)
    plans = root / "plans"
    for index in range(count):
        team = TEAMS[index % len(TEAMS)]
        name = f"{team}-backfill-{index:05d}"
        text = (
            _wedata(rng, name, team, index) if rng.random() < 0.6 else _dms(rng, name, team, index)
        )
        folder = plans / team
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return plans


def write_state(plans: Path, state: Path, *, target_events: int = 30_000) -> int:
    """A state in which every declared cell is submitted; every other submission was first
    rejected, then retried, until the journal holds at least `target_events` events."""
    init_state(state, actor={"user": "bench"})
    changes = pipeline.changeset(pipeline.plans([plans]), load_state(state))
    creates = changes.creates
    retries = max(0, (target_events - 2 * len(creates) + 1) // 2)
    # What a GitHub Actions apply records (reconciler.actor): the journal a team really keeps.
    actor = {
        "command": "apply",
        "tool_version": "0.1.0",
        "user": "octo-data-eng",
        "ci": "github-actions",
        "event": "push",
        "repository": "acme/data-backfills",
        "commit": "9f1c2d3e4b5a69788796a5b4c3d2e1f009a8b7c6",
        "ref": "refs/heads/main",
        "pr": 4711,
        "pr_source": "event",
        "run_url": "https://github.com/acme/data-backfills/actions/runs/12345678901",
        "run_attempt": 1,
    }
    ids = random.Random(11)
    with open_state(state, actor=actor, command="backfill apply") as writer:
        for index, submission in enumerate(creates):
            if index < retries:
                writer.append("intent", intent(submission, ENDPOINTS[submission.provider]))
                rejected = Outcome(OutcomeKind.REJECTED, code="RequestLimitExceeded", message="")
                writer.append(*outcome_event(submission, rejected))
            writer.append("intent", intent(submission, ENDPOINTS[submission.provider]))
            done = Outcome(
                OutcomeKind.SUBMITTED,
                remote_id=str(uuid.UUID(int=ids.getrandbits(128), version=4)),
                request_id=str(uuid.UUID(int=ids.getrandbits(128), version=4)),
            )
            writer.append(*outcome_event(submission, done))
        return writer.state.seq


if __name__ == "__main__":
    # Run as its own process by the benchmark, so that the benchmark's own memory stays small
    # and does not count in the peak RSS of the commands it measures (they are forked from it).
    import sys

    root, count = Path(sys.argv[1]), int(sys.argv[2])
    events = write_state(write_plans(root, count), root / "state")
    print(events)
