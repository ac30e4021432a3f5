#!/usr/bin/env python3
"""Smoke test: the official HSS Python SDK against hss-sim.

Proves the simulator verifies signatures exactly as the SDK makes them, and that the SDK can
read every answer. This script covers the deprecated calls and the registry calls;
sdk_current.py covers the current image APIs. Calls list_swr_image_repository, batch_scan_swr_image (two listed images),
add_registry and show_image_upload_command; prints one line per call; exits non-zero on any
exception.

    python3 tests/python/sdk_smoke.py [ENDPOINT [AK [SK [PROJECT_ID]]]]

Defaults come from HSS_SIM_ENDPOINT, HSS_SIM_AK, HSS_SIM_SK, HSS_SIM_PROJECT_ID (then
http://127.0.0.1:8443, sim-ak, sim-sk, sim-project). Needs `pip install huaweicloudsdkhss`.
"""

import os
import sys
import time
import traceback
import warnings

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkhss.v5 import (
    AddRegistryRequest,
    AddRegistryRequestBody,
    BatchScanPrivateImageRequestInfo,
    BatchScanSwrImageInfo,
    BatchScanSwrImageRequest,
    HssClient,
    ListSwrImageRepositoryRequest,
    ShowImageUploadCommandRequest,
)

# Three of these calls are deprecated in the SDK; the warning is expected, not news.
warnings.simplefilter("ignore", DeprecationWarning)


def settings():
    names = ["HSS_SIM_ENDPOINT", "HSS_SIM_AK", "HSS_SIM_SK", "HSS_SIM_PROJECT_ID"]
    defaults = ["http://127.0.0.1:8443", "sim-ak", "sim-sk", "sim-project"]
    values = [os.environ.get(name, default) for name, default in zip(names, defaults)]
    for i, arg in enumerate(sys.argv[1:5]):
        values[i] = arg
    return values


def main():
    endpoint, ak, sk, project_id = settings()
    client = (
        HssClient.new_builder()
        .with_credentials(BasicCredentials(ak, sk, project_id))
        .with_endpoints([endpoint])
        .build()
    )

    listing = client.list_swr_image_repository(
        ListSwrImageRepositoryRequest(image_type="private_image", limit=200)
    )
    images = listing.data_list or []
    print(f"list_swr_image_repository: total_num={listing.total_num} page={len(images)}")

    # Only images batch-scan accepts: the account holds some with over-long names on purpose.
    submittable = [
        i for i in images if len(i.namespace) <= 64 and len(i.image_name) <= 128 and i.scannable
    ][:2]
    if len(submittable) != 2:
        raise RuntimeError(f"expected two submittable images, found {len(submittable)}")
    body = BatchScanPrivateImageRequestInfo(
        image_type="private_image",
        operate_all=False,
        image_info_list=[
            BatchScanSwrImageInfo(
                namespace=i.namespace, image_name=i.image_name, image_version=i.image_version
            )
            for i in submittable
        ],
    )
    client.batch_scan_swr_image(BatchScanSwrImageRequest(body=body))
    names = ", ".join(f"{i.namespace}/{i.image_name}:{i.image_version}" for i in submittable)
    print(f"batch_scan_swr_image: submitted {names}")

    registry_name = f"smoke-{int(time.time() * 1000)}"
    client.add_registry(
        AddRegistryRequest(
            body=AddRegistryRequestBody(
                registry_name=registry_name,
                registry_type="Harbor",
                api_version="V2",
                protocol="https",
                registry_addr="harbor.example.com:8443",
                registry_username="robot",
                registry_password="not-a-real-password",
                namespace="security",
                connect_cluster_id="cluster-01",
                get_scan_image_channel="Other",
            )
        )
    )
    print(f"add_registry: added {registry_name}")

    command = client.show_image_upload_command(
        ShowImageUploadCommandRequest(
            registry_addr="harbor.example.com:8443",
            namespace="security",
            username="robot",
            password="not-a-real-password",
        )
    )
    if not command.image_command:
        raise RuntimeError("show_image_upload_command returned no image_command")
    print(f"show_image_upload_command: {command.image_command[:60]}...")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # any failure, SDK or ours, must fail the run
        traceback.print_exc()
        sys.exit(1)
