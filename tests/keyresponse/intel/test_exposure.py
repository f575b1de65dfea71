"""How the key leaked: alert payloads, causes, first use, key age."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyresponse.intel.exposure import assess_exposure

URL = "https://github.com/acme-corp/billing-service/blob/0123456789abcdef0123456789abcdef01234567/config/settings.py"
ALERTS = Path(__file__).resolve().parents[2] / "fixtures" / "alerts"
SUPPORT = "https://aws.amazon.com/premiumsupport/knowledge-center/potential-account-compromise/"


def _health(url: str = URL) -> dict[str, Any]:
    """A Health event whose metadata names where the key was found; its prose carries AWS's support link."""
    return {"source": "aws.health", "time": "2026-11-19T10:00:00Z", "detail": {
        "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "startTime": "2026-11-19T10:00:00Z",
        "eventMetadata": {"publicKey": "AKIAIOSFODNN7EXAMPLE", "exposureUrl": url},
        "eventDescription": [{"language": "en_US", "latestDescription":
                              f"Your AWS Access Key is publicly available online. See {SUPPORT} for help."}]}}


def test_health_location_comes_from_event_metadata_never_from_the_description() -> None:
    """The real AWS Health payload (aws-health-tools), its description given AWS's support link as the
    issue saw it: the location is the URL in `eventMetadata`, never a URL scraped from the prose."""
    payload = json.loads((ALERTS / "health_risk_credentials_exposed.aws_health_tools.json").read_text())
    unmodified = assess_exposure("health", payload, None, None)
    assert unmodified["url"] is None and unmodified["channel"] == "alert_only"
    payload["detail"]["eventDescription"][0]["latestDescription"] = (
        f"Your AWS Access Key ACCESS_KEY_ID_HERE is publicly available. Follow {SUPPORT} to secure the account.")
    described = assess_exposure("health", payload, None, None)
    assert described["url"] is None and SUPPORT not in described["summary"]
    payload["detail"]["eventMetadata"] = {"publicKey": "ACCESS_KEY_ID_HERE", "supportUrl": SUPPORT, "exposureUrl": URL}
    located = assess_exposure("health", payload, None, None)
    assert (located["url"], located["repository"], located["file"]) == (
        URL, "acme-corp/billing-service", "config/settings.py")
    assert located["channel"] == "public_url" and located["likely_causes"][0]["cause"] == "hard_coded_in_code"


def test_github_location_is_the_page_built_from_its_structured_fields() -> None:
    """The real secret-scanning webhook (octokit), with a location in the shape GitHub's locations API
    returns: the location is the blob page on github.com, not the REST API URL, and the commit is
    shown whole."""
    payload = json.loads((ALERTS / "github_secret_scanning_alert_reopened.octokit.json").read_text())
    sha, blob = "af5626b4a114abcb82d63db7c8082c3c4756e51b", "f2d8c9e1b7a64c3d5e6f7a8b9c0d1e2f3a4b5c6d"
    api = "https://api.github.com/repos/Codertocat/Hello-World"
    locations = [{"type": "commit", "details": {
        "path": "config/settings.py", "start_line": 12, "end_line": 12, "start_column": 9, "end_column": 29,
        "blob_sha": blob, "blob_url": f"{api}/git/blobs/{blob}", "commit_sha": sha, "commit_url": f"{api}/git/commits/{sha}"}}]
    out = assess_exposure("github", payload, None, None, github_locations=locations)
    page = f"https://github.com/Codertocat/Hello-World/blob/{sha}/config/settings.py"
    assert out["url"] == page and out["locations"][0]["url"] == page
    assert (out["repository"], out["file"], out["commit"]) == ("Codertocat/Hello-World", "config/settings.py", sha)
    assert sha in out["likely_causes"][0]["reasoning"]
    without = assess_exposure("github", payload, None, None)
    assert without["url"] == "https://github.com/Codertocat/Hello-World" and without["file"] is None


def _first(**extra: Any) -> dict[str, Any]:
    return {"event_id": "e1", "event_time": "2026-11-19T10:04:00Z", "event_name": "GetCallerIdentity",
            "source_ip": "146.190.61.22", "user_agent": "TruffleHog", "principal_arn": "arn:aws:iam::1:user/u"} | extra


def test_health_event_gives_url_commit_file_and_timing() -> None:
    out = assess_exposure("health", _health(), {"created_at": "2025-01-01T00:00:00Z", "owner": "ci-runner"}, _first())
    assert (out["repository"], out["file"], out["commit"]) == (
        "acme-corp/billing-service", "config/settings.py", "0123456789abcdef0123456789abcdef01234567")
    assert out["first_use"]["minutes_after_exposure"] == 4.0
    assert out["likely_causes"][0] == {"cause": "hard_coded_in_code", "confidence": "high",
                                       "reasoning": out["likely_causes"][0]["reasoning"]}
    assert out["key"]["age_days"] > 300 and any("days old" in n for n in out["notes"])
    assert any("automated scanning" in n for n in out["notes"])
    assert "ci-runner" in out["summary"] and URL in out["summary"]


@pytest.mark.parametrize(("path", "cause"), [
    (".env", "leaked_environment_variable"), ("deploy/.env.production", "leaked_environment_variable"),
    (".github/workflows/deploy.yml", "leaked_environment_variable"), ("infra/prod.tfvars", "leaked_environment_variable"),
    ("home/.aws/credentials", "committed_credentials_file"), ("src/app.py", "hard_coded_in_code"),
])
def test_file_kind_names_the_cause(path: str, cause: str) -> None:
    url = f"https://github.com/o/r/blob/abc123/{path}"
    assert assess_exposure("health", _health(url), None, None)["likely_causes"][0]["cause"] == cause


def test_paste_and_non_code_github_locations_are_pasted_publicly() -> None:
    out = assess_exposure("health", _health("https://pastebin.com/abcd1234"), None, None)
    assert out["likely_causes"][0]["cause"] == "pasted_publicly"
    payload = {"alert": {"created_at": "2026-11-19T10:00:00Z"}, "repository": {"full_name": "o/r"}}
    locations = [{"type": "issue_comment", "details": {"issue_comment_url": "https://api.github.com/x/1"}}]
    out = assess_exposure("github", payload, None, None, github_locations=locations)
    assert out["likely_causes"][0]["cause"] == "pasted_publicly"


def test_public_but_unused_key_says_not_yet_abused() -> None:
    out = assess_exposure("health", _health(), None, None)
    assert "not_yet_abused" in {c["cause"] for c in out["likely_causes"]} and out["first_use"] is None


def test_console_login_first_points_to_phishing() -> None:
    out = assess_exposure("guardduty", None, None, _first(event_name="ConsoleLogin"))
    assert out["likely_causes"][0]["cause"] == "phishing"


def test_guardduty_outside_aws_finding_is_ssrf_high() -> None:
    payload = {"source": "aws.guardduty", "detail": {
        "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "service": {"eventFirstSeen": "2026-11-19T09:00:00Z"}}}
    out = assess_exposure("guardduty", payload, None, _first())
    assert out["likely_causes"][0]["cause"] == "ssrf_instance_metadata"
    assert out["likely_causes"][0]["confidence"] == "high"


def test_ec2_role_delivery_marks_an_instance_credential() -> None:
    first = _first(principal_arn="arn:aws:sts::1:assumed-role/web/some-session",
                   user_identity={"arn": "arn:aws:sts::1:assumed-role/web/some-session",
                                  "sessionContext": {"ec2RoleDelivery": "2.0"}})
    causes = assess_exposure(None, None, None, first)["likely_causes"]
    assert causes[0]["cause"] == "ssrf_instance_metadata"


@pytest.mark.parametrize("payload", [None, {}, {"detail": "nonsense"}, {"alert": None, "repository": 3}, [1, 2]])
def test_nothing_known_gives_low_confidence_candidates_not_an_error(payload: Any) -> None:
    out = assess_exposure("generic", payload, {"created_at": "garbage"}, None)
    assert out["confidence"] == "low" and out["url"] is None
    assert {"malware_or_local_theft", "leaked_environment_variable", "phishing"} <= {
        c["cause"] for c in out["likely_causes"]}
