#!/usr/bin/env python3
"""Smoke test: the official HSS Python SDK against hss-sim's current (non-deprecated) image APIs.

Proves the simulator verifies the SDK's signatures on every current call (the region header
of create_manual_image_scan_task included) and that the SDK's models read every answer.
Calls list_registry_images (time windows and sort), create_manual_image_scan_task,
list_image_scan_task, stop_image_scan_task, create_image_synchronize_task,
list_associate_registries, list_image_scan_policy, show_image_pay_per_scan_statistics and
show_switches_status; prints one line per call; exits non-zero on any exception or on an
answer that does not say what the simulator was asked to do.

    python3 tests/python/sdk_current.py [ENDPOINT [AK [SK [PROJECT_ID]]]]

Defaults as for sdk_smoke.py. Needs `pip install huaweicloudsdkhss`.
"""

import os
import sys
import time
import traceback

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkhss.v5 import (
    CreateImageSynchronizeTaskRequest,
    CreateImageSynchronizeTaskRequestInfo,
    CreateManualImageScanTaskReqInfo,
    CreateManualImageScanTaskReqInfoImageInfo,
    CreateManualImageScanTaskRequest,
    HssClient,
    ListAssociateRegistriesRequest,
    ListImageScanPolicyRequest,
    ListImageScanTaskRequest,
    ListRegistryImagesRequest,
    ShowImagePayPerScanStatisticsRequest,
    ShowSwitchesStatusRequest,
    StopImageScanTaskRequest,
)


def settings():
    names = ["HSS_SIM_ENDPOINT", "HSS_SIM_AK", "HSS_SIM_SK", "HSS_SIM_PROJECT_ID"]
    defaults = ["http://127.0.0.1:8443", "sim-ak", "sim-sk", "sim-project"]
    values = [os.environ.get(name, default) for name, default in zip(names, defaults)]
    for i, arg in enumerate(sys.argv[1:5]):
        values[i] = arg
    return values


def check(condition, message):
    if not condition:
        raise RuntimeError(message)


def submittable(record):
    """A record HSS takes: scannable, one architecture, not expired, not in flight."""
    return (
        record.scannable
        and not record.is_multiple_arch
        and record.shared_status != "expired"
        and record.scan_status not in ("scanning", "waiting_for_scan")
    )


def main():
    endpoint, ak, sk, project_id = settings()
    client = (
        HssClient.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project_id))
        .with_endpoints([endpoint])
        .build()
    )
    started = int(time.time() * 1000)

    listing = client.list_registry_images(
        ListRegistryImagesRequest(
            image_type="private_image",
            limit=200,
            offset=0,
            start_latest_update_time=0,
            end_latest_update_time=started,
            sort_key="latest_scan_time",
            sort_dir="desc",
            is_multarch=False,
        )
    )
    records = listing.data_list or []
    times = [r.latest_scan_time for r in records]
    check(times == sorted(times, reverse=True), "not sorted by latest_scan_time desc")
    check(all(r.registry_type == "SwrPrivate" and r.registry_id for r in records), "registry fields")
    print(f"list_registry_images: total_num={listing.total_num} page={len(records)}")

    picked = [r for r in records if submittable(r)][:2]
    check(len(picked) == 2, f"expected two submittable records, found {len(picked)}")
    body = CreateManualImageScanTaskReqInfo(
        scan_scope=2147483647,
        rate_limit=0,
        is_all=False,
        image_info=[
            CreateManualImageScanTaskReqInfoImageInfo(
                id=r.id,
                image_digest=r.image_digest,
                registry_id=r.registry_id,
                registry_name=r.registry_name,
                image_name=r.image_name,
                image_version=r.image_version,
                namespace=r.namespace,
                registry_type=r.registry_type,
            )
            for r in picked
        ],
    )
    client.create_manual_image_scan_task(
        CreateManualImageScanTaskRequest(
            region="ap-southeast-1", global_image_type="registry", body=body
        )
    )
    print(f"create_manual_image_scan_task: ids {[r.id for r in picked]}")

    scan_tasks = client.list_image_scan_task(
        ListImageScanTaskRequest(
            type="image_scan", task_type="manual", global_image_type="registry", limit=10, offset=0
        )
    )
    task = (scan_tasks.data_list or [None])[0]
    check(task is not None and task.total_num == 2, "the scan task is listed")
    check(isinstance(task.task_status, int), "task_status is an integer")
    print(
        f"list_image_scan_task: task_id={task.task_id} task_status={task.task_status} "
        f"success_num={task.success_num} total_num={task.total_num}"
    )

    rescanned = client.list_registry_images(
        ListRegistryImagesRequest(start_latest_scan_time=started, limit=200)
    )
    ids = sorted(r.id for r in rescanned.data_list or [])
    check(ids == sorted(r.id for r in picked), f"the scanned images by time window: {ids}")
    print(f"list_registry_images(start_latest_scan_time): total_num={rescanned.total_num}")

    client.stop_image_scan_task(
        StopImageScanTaskRequest(region="ap-southeast-1", task_id=task.task_id)
    )
    print(f"stop_image_scan_task: {task.task_id}")

    client.create_image_synchronize_task(
        CreateImageSynchronizeTaskRequest(
            body=CreateImageSynchronizeTaskRequestInfo(sync_all_registries=True)
        )
    )
    print("create_image_synchronize_task: all registries")

    sync_tasks = client.list_image_scan_task(ListImageScanTaskRequest(type="image_sync"))
    sync_task = (sync_tasks.data_list or [None])[0]
    check(sync_task is not None and sync_task.task_type == "manualSync", "the sync task is listed")
    registries = client.list_associate_registries(
        ListAssociateRegistriesRequest(task_id=sync_task.task_id, limit=10)
    )
    check(registries.total_num >= 3, "the sync task covers the SWR registries")
    print(f"list_associate_registries: total_num={registries.total_num}")

    policy = client.list_image_scan_policy(
        ListImageScanPolicyRequest(type="cycle", global_image_type="registry")
    )
    check(policy.enabled is False, "the native policy is off by default")
    print(
        f"list_image_scan_policy: enabled={policy.enabled} "
        f"registries={policy.total_registry_num}"
    )

    usage = client.show_image_pay_per_scan_statistics(ShowImagePayPerScanStatisticsRequest())
    check(usage.repository_scan_num == 2, f"two billed scans, got {usage.repository_scan_num}")
    check(usage.total.registry == usage.total.registriy, "registry and registriy agree")
    print(
        f"show_image_pay_per_scan_statistics: repository_scan_num={usage.repository_scan_num} "
        f"total.registry={usage.total.registry}"
    )

    switch = client.show_switches_status(ShowSwitchesStatusRequest(code="image_pay_per_scan"))
    check(switch.enabled is True, "pay-per-scan is on by default")
    print(f"show_switches_status: image_pay_per_scan enabled={switch.enabled}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # any failure, SDK or ours, must fail the run
        traceback.print_exc()
        sys.exit(1)
