"""Imported by the forkserver of `keyresponse.warm_start` (and nothing else): parses the service models
of `WARM_SERVICES` into the botocore loader every session shares (`keyresponse.aws`), so that no warm
flow run parses them again. Files only: no client, no credentials, no network."""

from __future__ import annotations

import contextlib

from keyresponse.aws import shared_loader
from keyresponse.warm_start import WARM_SERVICES


def warm() -> None:
    loader = shared_loader()
    for name in ("endpoints", "partitions", "sdk-default-configuration"):
        with contextlib.suppress(Exception):  # a file this botocore lacks is its business
            loader.load_data(name)
    for service in WARM_SERVICES:
        for kind in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
            with contextlib.suppress(Exception):
                loader.load_service_model(service, kind)


warm()
