"""`prefect deploy --all` with the project's prefect.yaml works against a local Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def prefect(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYRESPONSE_PROJECT_DIR": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def deployments_removed_after(prefect_server: str) -> Iterator[None]:
    """The deployments this test makes are deleted afterwards. The session's server is shared with the
    tests that run `keyresponse serve`: a serve registering the same names after `prefect deploy` keeps the
    work pool and drops the pull step, so its runs crash ("storage at None"; the Prefect-native issue)."""
    from prefect import get_client

    yield
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            if deployment.work_pool_name == "keyresponse":
                client.delete_deployment(deployment.id)


def test_deploys_every_deployment_of_prefect_yaml(prefect_server: str, deployments_removed_after: None) -> None:
    from prefect import get_client

    created = prefect("work-pool", "create", "keyresponse", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = prefect("deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with get_client(sync_client=True) as client:
        names = {(d.name, d.work_pool_name) for d in client.read_deployments()}
        scan = next(d for d in client.read_deployments() if d.name == "preventive-key-scan")
    assert {("respond-to-exposed-key", "keyresponse"), ("undo-incident", "keyresponse"),
            ("preventive-key-scan", "keyresponse")} <= names
    assert scan.schedules and scan.schedules[0].schedule.cron == "0 6 * * *"
