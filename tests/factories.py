"""Plan files for tests, written as a person would write them (dates unquoted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.domain import Submission
from reconciler.providers import dms
from reconciler.providers.protocol import Provider

TASKS = ["20250827115253729", "20250827115253730"]


def wedata_plan(
    name: str = "orders-backfill",
    *,
    tasks: list[str] | None = None,
    dates: list[tuple[str, str]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": "tencent-wedata",
        "region": "ap-guangzhou",
        "projectId": "1460947878944567296",
        "taskIds": list(TASKS if tasks is None else tasks),
        "dates": [{"start": s, "end": e} for s, e in (dates or [("2025-09-01", "2025-09-03")])],
    }
    body.update(spec)
    return _document(name, body)


def _document(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "backfill-reconciler/v1",
        "kind": "BackfillPlan",
        "metadata": {"name": name, "owner": "data-eng@example.com", "reason": "test"},
        "spec": spec,
    }


class _Dumper(yaml.SafeDumper):
    """Writes dates bare (`start: 2025-09-01`), as people write them, not quoted."""


def _date(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value)


class Day(str):
    """A date string to be written unquoted."""


_Dumper.add_representer(Day, _date)


def _bare_dates(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _bare_dates(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_bare_dates(v, key) for v in value]
    if key in ("start", "end") and isinstance(value, str) and len(value) == 10:
        return Day(value)
    return value


def write(path: Path, *documents: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump_all([_bare_dates(d) for d in documents], Dumper=_Dumper, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


DAGS = [15001, 15002]


def dms_plan(
    name: str = "dms-backfill",
    *,
    dags: list[int] | None = None,
    dates: list[tuple[str, str]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": "aliyun-dms",
        "region": "cn-hangzhou",
        "dagIds": list(DAGS if dags is None else dags),
        "dates": [{"start": s, "end": e} for s, e in (dates or [("2025-09-01", "2025-09-03")])],
    }
    body.update(spec)
    return _document(name, body)


def submission(provider: Provider) -> Submission:
    """One create call of `provider` for target 1 on 2025-09-01, for tests of its client."""
    request = (
        {"DagId": 1, "BackFillDate": "2025-09-01"}
        if provider is dms.PROVIDER
        else {"ProjectId": "1", "TaskIds": ["1"]}
    )
    return Submission(
        key="k",
        plan="p",
        revision=1,
        provider=provider.name,
        action=provider.action,
        region="cn-hangzhou",
        targets=("1",),
        dates=("2025-09-01",),
        fingerprint="f",
        params={},
        request=request,
    )
