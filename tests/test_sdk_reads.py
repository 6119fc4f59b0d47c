"""The official SDKs' read calls against the emulator, after `backfill apply` and `refresh` with
an injected failure rate: WeData GetDataBackfillPlan and ListDataBackfillInstances, DMS
ListTaskFlowInstance by business date. What each SDK reads is what `refresh` journaled, so the
emulator speaks those calls as the SDKs do, and refresh reads the fields they define."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock
from factories import DAGS, TASKS, dms_plan, wedata_plan, write
from harness import cli

from reconciler.domain import Health, day, days
from reconciler.providers import dms, wedata
from reconciler.providers.acs3 import AliyunCredentials
from reconciler.state import load_state

DATES = ("2025-09-01", "2025-09-05")
FAULTS = {"instance_failure_rate": 0.4, "instance_seconds": 1.0, "seed": 3}


def refreshed(root: Path, url: str, env: dict[str, str], clock: FakeClock) -> dict[str, Any]:
    """Applies and refreshes the plans under `root` after every run ended; the journaled
    health of each (target, date), with the remote ids."""
    httpx.post(f"{url}/_emulator/faults", json=FAULTS).raise_for_status()
    assert cli("init", cwd=root, env=env).returncode == 0
    assert cli("apply", "--yes", "--endpoint", url, cwd=root, env=env).returncode == 0
    clock.advance(200)
    assert cli("refresh", "--endpoint", url, cwd=root, env=env).returncode == 0
    health: dict[tuple[str, str], Health] = {}
    remote: dict[str, str] = {}
    for record in load_state(root / "state").submissions.values():
        for target, first, last, seen, _ in record.health:
            health |= dict.fromkeys(((target, d) for d in days(day(first), day(last))), seen)
        for target in record.targets:
            remote[target] = record.remote_id
    return {"health": health, "remote": remote}


def test_the_wedata_sdk_lists_the_instances_refresh_journaled(
    tmp_path: Path,
    wedata_sdk_client: Callable[..., Any],
    emulator_url: str,
    emulator_clock: FakeClock,
    cli_env: dict[str, str],
) -> None:
    pytest.importorskip("tencentcloud.wedata.v20250806")
    from tencentcloud.wedata.v20250806 import models

    write(tmp_path / "plans" / "orders.yaml", wedata_plan("orders", dates=[DATES]))
    seen = refreshed(tmp_path, emulator_url, cli_env, emulator_clock)
    sdk = wedata_sdk_client()
    (plan_id,) = set(seen["remote"].values())

    get = models.GetDataBackfillPlanRequest()
    get.ProjectId = wedata_plan()["spec"]["projectId"]
    get.DataBackfillPlanId = plan_id
    plan = sdk.GetDataBackfillPlan(get).Data
    failed = sum(1 for h in seen["health"].values() if h is Health.FAILED)
    assert plan.CompletePercent == 100
    assert plan.SuccessPercent == 100 * (len(seen["health"]) - failed) // len(seen["health"])

    listed: dict[tuple[str, str], Health] = {}
    for task in TASKS:
        request = models.ListDataBackfillInstancesRequest()
        request.ProjectId, request.DataBackfillPlanId = get.ProjectId, plan_id
        request.TaskId, request.PageNumber, request.PageSize = task, 1, 2
        while True:
            page = sdk.ListDataBackfillInstances(request).Data
            for item in page.Items:
                meaning = wedata.INSTANCE_HEALTH[item.State]
                listed[(item.TaskId, item.CurRunDate[:10])] = meaning.health
            if request.PageNumber >= page.TotalPageNumber:
                break
            request.PageNumber += 1
    assert listed == seen["health"]
    assert Health.FAILED in listed.values()


def test_the_dms_sdk_lists_by_business_date_the_runs_refresh_journaled(
    tmp_path: Path,
    emulator_url: str,
    emulator_clock: FakeClock,
    aliyun_credentials: AliyunCredentials,
    cli_env: dict[str, str],
) -> None:
    pytest.importorskip("alibabacloud_dms_enterprise20181101")
    from alibabacloud_dms_enterprise20181101 import models
    from alibabacloud_dms_enterprise20181101.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    write(tmp_path / "plans" / "flows.yaml", dms_plan("flows", dates=[DATES]))
    seen = refreshed(tmp_path, emulator_url, cli_env, emulator_clock)
    config = Config(
        access_key_id=aliyun_credentials.access_key_id,
        access_key_secret=aliyun_credentials.access_key_secret,
        endpoint=emulator_url.removeprefix("http://"),
        protocol="http",
    )
    client = Client(config)

    listed: dict[tuple[str, str], Health] = {}
    for dag in DAGS:
        request = models.ListTaskFlowInstanceRequest(
            dag_id=dag,
            use_biz_date=True,
            start_time_begin=DATES[0],
            start_time_end=DATES[1],
            page_index=1,
            page_size=2,
        )
        while True:
            body = client.list_task_flow_instance(request).body
            for item in body.daginstance_list.daginstance:
                assert item.trigger_type == dms.MANUAL_TRIGGER
                health = dms.INSTANCE_STATUS[item.status][1].health
                listed[(str(dag), item.business_time[:10])] = health
            if request.page_index * request.page_size >= body.total_count:
                break
            request.page_index += 1
    assert listed == seen["health"]
    assert Health.FAILED in listed.values()
