"""Fetching an account's IAM credential report: the preventive scan's one read (`tasks/credential_report.py`)
and the readiness check of long-lived keys (`keyresponse/readiness/checks/long_lived_access_keys.py`).
`keyresponse/keyscan.py` reads what it returns, with no AWS call of its own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from keyresponse.errors import AwsCallError, MissingPermission
from keyresponse.keyscan import CredentialReport, CredentialReportError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


def aws_error(exc: ClientError, doing: str) -> AwsCallError:
    """The scan's error for a failed AWS call: `MissingPermission` when access was denied."""
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", str(exc))
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return MissingPermission(f"{doing}: access denied ({message})")
    return AwsCallError(f"{doing}: {code} {message}".strip())


def fetch_report(iam: IAMClient, account_id: str, *, timeout_s: float = 300.0, poll_s: float = 2.0) -> CredentialReport:
    """Generate the credential report and wait until IAM serves it (ReportInProgress / NotPresent / Expired)."""
    deadline = time.monotonic() + timeout_s
    state = "none"
    while True:
        try:
            state = iam.generate_credential_report().get("State", "")
            if state == "COMPLETE":
                answer = iam.get_credential_report()
                content = answer["Content"]
                return CredentialReport(
                    account_id=account_id,
                    content=content.decode("utf-8-sig") if isinstance(content, bytes) else content,
                    generated_at=answer.get("GeneratedTime"))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("ReportInProgress", "ReportNotPresent", "ReportExpired", "ReportNotReady"):
                raise aws_error(exc, f"fetching the credential report of account {account_id}") from exc
            state = code
        if time.monotonic() + poll_s > deadline:
            raise CredentialReportError(
                f"the credential report of account {account_id} was not ready after {timeout_s:.0f} s "
                f"(last answer: {state}); the other accounts were still scanned")
        time.sleep(poll_s)
