"""The incident report: golden files, attacker text kept inert, numbers traced to the record, outcomes.

The fixed incident is `tests/fixtures/incidents/pivot_chain_incident.json` (a real pivot-chain
simulator run; `build_pivot_chain.py` beside it says how it was made). After an intended change
to the report, regenerate the golden files and read the diff before committing:

    .venv/bin/python -c "
    from pathlib import Path
    from keyresponse.report import load_incident, render_json, render_markdown
    d = Path('tests/fixtures/incidents')
    i = load_incident(d / 'pivot_chain_incident.json')
    (d / 'pivot_chain_incident.golden.md').write_text(render_markdown(i))
    (d / 'pivot_chain_incident.golden.json').write_text(render_json(i))"
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from typer.testing import CliRunner

from keyresponse.incident import Incident, make_incident
from keyresponse.markdown import text
from keyresponse.queries import get_query
from keyresponse.report import (
    artifact_key,
    build_context,
    categorize,
    human_duration,
    load_incident,
    query_runs,
    recommendations,
    render_html,
    render_json,
    render_markdown,
    write_report,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "incidents"
SCRIPT_UA = '<script>alert("owned")</script>'
HTML_RESOURCE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return json.loads((FIXTURES / "pivot_chain_incident.json").read_text())


@pytest.fixture(scope="module")
def incident() -> Incident:
    return load_incident(FIXTURES / "pivot_chain_incident.json")


@pytest.fixture(scope="module")
def html(incident: Incident) -> str:
    return render_html(incident)


class Page(HTMLParser):
    """The elements, attributes and text of an HTML document, and row counts per `data-section` table."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: Counter[str] = Counter()
        self.figures: dict[str, str] = {}
        self._section: list[str | None] = []
        self._in_tbody = False
        self._figure: str | None = None
        self._value = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in ("table", "ol", "ul"):
            self._section.append(attributes.get("data-section"))
        if tag == "tbody":
            self._in_tbody = True
        section = self._section[-1] if self._section else None
        if section and ((tag == "tr" and self._in_tbody) or (tag == "li" and self._section[-1] == section)):
            self.rows[section] += 1
        if "data-figure" in attributes:
            self._figure = attributes["data-figure"]
        if self._figure and attributes.get("class") == "value":
            self._value = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("table", "ol", "ul") and self._section:
            self._section.pop()
        if tag == "tbody":
            self._in_tbody = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._value and self._figure:
            self.figures[self._figure] = data.strip()
            self._value, self._figure = False, None


# -- golden files -----------------------------------------------------------------------------------


def test_markdown_matches_the_golden_file(incident: Incident) -> None:
    assert render_markdown(incident) == (FIXTURES / "pivot_chain_incident.golden.md").read_text()


def test_json_matches_the_golden_file(incident: Incident) -> None:
    assert render_json(incident) == (FIXTURES / "pivot_chain_incident.golden.json").read_text()


def test_json_holds_the_record_unchanged_and_round_trips(raw: dict[str, Any], incident: Incident) -> None:
    data = json.loads(render_json(incident))
    assert {k: v for k, v in data.items() if k != "report"} == raw
    assert load_incident(FIXTURES / "pivot_chain_incident.golden.json") == incident


# -- attacker text is inert ----------------------------------------------------------------------------


def test_attacker_strings_are_inert_text_in_the_html(html: str) -> None:
    page = Page(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "iframe", "object", "embed", "link")]
    assert not [(tag, a) for tag, a in page.tags if any(name.startswith("on") for name in a)]
    assert not [a for tag, a in page.tags if tag == "img"]  # the only images are inline SVG
    text = "".join(page.text)
    assert SCRIPT_UA in text and HTML_RESOURCE in text  # shown, as text
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_html_is_self_contained(html: str) -> None:
    page = Page(html)
    for _tag, attributes in page.tags:
        for name in ("src", "href"):
            assert not (attributes.get(name) or "").startswith(("http", "//")), attributes
    assert "@import" not in html and "url(" not in html


def test_attacker_strings_are_neutralised_in_the_markdown(incident: Incident) -> None:
    md = render_markdown(incident)
    assert "<script" not in md and "<img" not in md and "onerror=alert\\(1\\)&gt;" in md
    assert '&lt;script&gt;alert\\("owned"\\)&lt;/script&gt;' in md
    ua_rows = [line for line in md.splitlines() if "Mozilla/5.0" in line]
    assert ua_rows and all(line.count(" | ") == 2 for line in ua_rows)  # still three cells


@pytest.mark.parametrize(("value", "expected"), [
    ("a|b", r"a\|b"), ("`x`", r"\`x\`"), ("<b>&", "&lt;b&gt;&amp;"), ("two\nlines\r\nhere", "two lines here"),
    ("[x](javascript:alert(1))", r"\[x\]\(javascript:alert\(1\)\)"), ("http://evil.example", r"http\://evil.example"),
])
def test_every_output_of_the_markdown_template_goes_through_the_one_escaping_function(value: str, expected: str) -> None:
    incident = make_incident(approvals=[{"phase": "containment", "approver": value, "decision": "deny",
                                         "reason": "r", "at": "2026-11-19T19:10:02Z"}])
    assert text(value) == expected
    assert f"| containment | {expected} | **deny** |" in render_markdown(incident)


def test_code_blocks_cannot_be_closed_by_their_content() -> None:
    incident = make_incident(ledger=[{"incident_id": "ir-test", "action": "tag_principal",
                                      "target": {"kind": "user", "id": "u"}, "before": {"tag": "```\n<script>"},
                                      "after": {"tag": "ir-test"}}])
    md = render_markdown(incident)
    block = md.split("<details><summary>Before and after each change</summary>", 1)[1]
    assert "````json" in block and "<script>" in block.split("````json", 1)[1].split("````", 1)[0]


# -- every number comes from the record ----------------------------------------------------------------


def test_every_figure_and_table_is_traced_to_the_record(raw: dict[str, Any], html: str) -> None:
    inv, ledger = raw["investigation"], raw["ledger"]
    page = Page(html)
    applied = [e for e in ledger if e["kind"] == "apply" and not e["dry_run"]]
    assert page.figures == {
        "events": str(len(raw["events"])),
        "credentials": str(len(inv["credentials"])),
        "derived_credentials": str(len([c for c in inv["credentials"] if c["parent"]])),
        "source_ips": str(len([ip for ip in inv["source_ips"] if ip["classification"] == "attacker"])),
        "resources_created": str(len(inv["resources_created"])),
        "data_calls": str(sum(d["count"] for d in inv["data_access"])),
        "actions": str(len(applied)),
        "approvals": str(len(raw["approvals"])),
        "cost": f"{inv['cost_estimate_usd']:.2f}",
    }
    assert inv["event_count"] == len(raw["events"])
    assert page.rows["credentials"] == len(inv["credentials"])
    assert page.rows["source_ips"] == len(inv["source_ips"])
    assert page.rows["user_agents"] == len({e["user_agent"] for e in raw["events"]})
    assert page.rows["resources_created"] == len(inv["resources_created"])
    assert page.rows["data_access"] == len(inv["data_access"])
    assert page.rows["persistence"] == len(inv["persistence"])
    assert page.rows["actions"] == len(ledger)
    assert page.rows["approvals"] == len(raw["approvals"])
    assert page.rows["queries"] == len(inv["queries"])
    assert page.rows["milestones"] == 8
    assert page.rows["categories"] == len({categorize(e) for e in raw["events"]})
    assert sum(int(n) for n in re.findall(r"\((\d+)\)</span>", html.split('class="legend"', 1)[1].split("</div>", 1)[0])) \
        == len(raw["events"])


def test_durations_are_measured_on_the_timeline(raw: dict[str, Any], html: str) -> None:
    timeline = {k: datetime.fromisoformat(v.replace("Z", "+00:00")) for k, v in raw["timeline"].items()}
    seconds = dict(re.findall(r'data-duration="(\w+)" data-seconds="([\d.]+)"', html))
    assert float(seconds["ttd"]) == (timeline["detected_at"] - timeline["first_malicious_at"]).total_seconds()
    assert float(seconds["ttc"]) == (timeline["contained_at"] - timeline["detected_at"]).total_seconds()
    assert float(seconds["tte"]) == (timeline["eradicated_at"] - timeline["detected_at"]).total_seconds()
    assert float(seconds["ttr"]) == (timeline["recovered_at"] - timeline["detected_at"]).total_seconds()
    assert human_duration(171) == "2 min 51 s" and human_duration(4320) == "1 h 12 min"
    assert human_duration(52178) == "14 h 29 min" and human_duration(180000) == "2 d 2 h"


def test_markdown_figures_match_the_html(incident: Incident, html: str) -> None:
    md = render_markdown(incident)
    labels = {f.key: f.label for f in build_context(incident).figures}
    for key, value in Page(html).figures.items():
        assert f"| {text(labels[key])} | {text(value)} |" in md


# -- outcomes ------------------------------------------------------------------------------------------


def test_dry_run_report_shows_the_plan_and_says_nothing_changed(raw: dict[str, Any]) -> None:
    record = raw | {"status": "dry_run", "dry_run": True, "ledger": [], "approvals": [],
                    "timeline": raw["timeline"] | {"contained_at": None, "eradicated_at": None,
                                                   "recovered_at": None, "closed_at": None}}
    incident = Incident.model_validate(record)
    md, html = render_markdown(incident), render_html(incident)
    assert "Dry run: nothing was changed" in md and "no change was made in AWS" in md
    steps = sum(len(v) for v in raw["plans"].values())
    assert md.count("| not applied |") == steps
    assert Page(html).rows["plan"] == steps and Page(html).rows["actions"] == 0


def test_denied_report_names_who_denied_and_why(raw: dict[str, Any]) -> None:
    denial = {"phase": "containment", "approver": "sam@example.com", "decision": "deny",
              "reason": "This is our red-team exercise <b>RT-42</b>", "at": "2026-11-19T19:10:02Z"}
    incident = Incident.model_validate(raw | {"status": "denied", "ledger": [], "approvals": [denial]})
    md, html = render_markdown(incident), render_html(incident)
    assert text("sam@example.com denied the containment plan at 2026-11-19 19:10:02 UTC") in md
    assert "Nothing was changed in AWS." in md and "RT-42" in md and "<b>" not in md
    assert "&lt;b&gt;RT-42&lt;/b&gt;" in html


def test_denied_after_containment_says_what_stays_changed(raw: dict[str, Any]) -> None:
    denial = {"phase": "eradication", "approver": "sam@example.com", "decision": "deny", "reason": "wait",
              "at": "2026-11-19T19:20:00Z"}
    contained = [e for e in raw["ledger"] if e["applied_at"] < "2026-11-19T19:20"]
    incident = Incident.model_validate(raw | {"status": "denied", "ledger": contained, "approvals": [denial]})
    assert text(f"{len(contained)} change(s) applied before this point remain in place") in render_markdown(incident)


def test_denied_report_lists_each_change_left_in_place_with_the_undo_commands(raw: dict[str, Any]) -> None:
    denial = {"phase": "containment", "approver": "sam@example.com", "decision": "deny", "reason": "wait",
              "at": "2026-11-19T19:20:00Z"}
    contained = [e for e in raw["ledger"] if e["applied_at"] < "2026-11-19T19:20"]
    changes = [{"entry_id": e["entry_id"], "action": e["action"], "target": e["target"],
                "label": f"{e['target']['kind']}:{e['target']['id']}", "description": f"{e['action']} <i>x</i>",
                "state": e["after"], "applied_at": e["applied_at"], "undo_supported": True} for e in contained]
    left = {"changes": changes, "undo": {
        "dry_run": "keyresponse undo ir-pivot", "apply": "keyresponse undo ir-pivot --apply",
        "deployment": "undo-incident/undo-incident", "parameters": {"incident_id": "ir-pivot", "dry_run": False}}}
    incident = Incident.model_validate(raw | {"status": "denied", "ledger": contained, "approvals": [denial],
                                              "left_in_place": left})
    md, html = render_markdown(incident), render_html(incident)
    section = md[md.index("## Left in place"):md.index("## Actions")]
    assert section.count("| keyresponse undo |") == len(contained)
    assert "`keyresponse undo ir-pivot --apply`" in section and "`undo-incident/undo-incident`" in section
    assert "<i>" not in section and "&lt;i&gt;" in section
    assert text(f"{len(contained)} change(s) applied before this point are left in place") in md
    assert Page(html).rows["left_in_place"] == len(contained) and "<code>keyresponse undo ir-pivot --apply</code>" in html
    assert json.loads(render_json(incident))["left_in_place"] == left | {"changes": [
        c | {"reason": None} for c in changes]}
    assert "## Left in place" not in render_markdown(Incident.model_validate(raw))


def test_not_ours_report_names_the_owning_account_and_what_to_do() -> None:
    incident = make_incident(status="not_ours", investigation={"account_id": "999988887777", "key": {
        "access_key_id": "AKIAIOSFODNN7EXAMPLE", "account_id": "999988887777", "is_ours": False}})
    md = render_markdown(incident)
    assert "belongs to account 999988887777" in md and "Tell that account's owner" in md
    assert "No recommendations" in md and "No change was made in AWS." in md
    render_html(incident)


@pytest.mark.parametrize("status", ["contained", "eradicated", "recovered", "timed_out", "failed"])
def test_every_status_renders_a_minimal_record(status: str) -> None:
    incident = make_incident(status=status)
    assert incident.incident_id in render_markdown(incident)
    assert "<svg" in render_html(incident)


# -- recommendations, intel, queries ----------------------------------------------------------------------


def test_recommendations_are_tied_to_their_findings(incident: Incident) -> None:
    found = {r.key: r.finding for r in recommendations(incident)}
    assert set(found) == {"long_term_keys", "scp_create_access_key", "data_notification", "trust_policies",
                          "lambda_data_events"}
    assert "CreateAccessKey" in found["scp_create_access_key"] and "ops-admin" in found["trust_policies"]


def test_gaps_and_secret_reads_bring_their_recommendations() -> None:
    incident = make_incident(investigation={
        "logging_gaps": ["no S3 data events in the trail for these credentials: S3 object reads are unknown"],
        "data_access": [{"event_name": "GetSecretValue", "resource": "prod/db", "count": 1, "error_count": 0}],
        "event_count": 1}, alert={"source": "github", "alert_id": "1", "observed_at": "2026-11-19T19:00:00Z",
                                   "severity": "high", "title": "secret"})
    found = {r.key: r for r in recommendations(incident)}
    assert {"s3_data_events", "rotate_secrets", "guardduty", "secret_scanning"} <= set(found)
    assert "prod/db" in found["rotate_secrets"].finding


def test_intel_answers_render_when_present_and_are_escaped() -> None:
    incident = make_incident(investigation={"exposure": {"source": "github", "repository": "acme/<x>"},
                                            "tools_observed": [{"tool": "Pacu", "evidence": ["ua"]}]})
    md, html = render_markdown(incident), render_html(incident)
    assert "## Intelligence" in md and "acme/&lt;x&gt;" in md and "Pacu" in html and "acme/<x>" not in html
    assert "Intelligence" not in render_markdown(make_incident())


def test_text_shows_the_keys_creation_the_policy_and_every_arn_whole() -> None:
    """Two accounts' `role/admin` are two principals: the report's text never shortens an ARN; it
    names who created the key (here a root session) and the policy a persistence step attached."""
    made = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "event_time": "2026-11-01T08:00:00Z",
            "event_name": "CreateAccessKey", "user_name": "alice", "created_by_arn": "arn:aws:iam::111122223333:root",
            "created_by_type": "Root", "created_by_access_key_id": None, "account_id": "111122223333",
            "aws_region": "us-east-1", "source_ip": "192.0.2.44", "user_agent": "AWS Internal", "event_id": "e0"}
    roles = ["arn:aws:iam::111122223333:role/admin", "arn:aws:iam::444455556666:role/admin"]
    credentials = [{"access_key_id": "AKIAIOSFODNN7EXAMPLE", "kind": "original", "created_by_event": None,
                    "parent": None, "principal_arn": "arn:aws:iam::111122223333:user/alice"}] + [
        {"access_key_id": f"ASIAIOSFODNN7EXAMPL{n}", "kind": "session", "created_by_event": "AssumeRole",
         "parent": "AKIAIOSFODNN7EXAMPLE", "principal_arn": arn} for n, arn in enumerate(roles)]
    persistence = [{"event_name": "AttachUserPolicy", "event_time": "2026-11-19T19:00:00Z", "resource": "backdoor",
                    "detail": "AdministratorAccess", "access_key_id": "AKIAIOSFODNN7EXAMPLE"}]
    incident = make_incident(investigation={"key_creation": made, "credentials": credentials, "principals": roles,
                                            "persistence": persistence})
    for page in (render_markdown(incident), render_html(incident)):
        assert all(arn in page for arn in roles) and "arn:aws:iam::111122223333:user/alice" in page
        assert "arn:aws:iam::111122223333:root" in page and "AdministratorAccess" in page
    assert "| Key created | CreateAccessKey at 2026-11-01 08:00:00 UTC for alice by arn:aws:iam::111122223333:root " \
           "(Root) from 192.0.2.44 |" in render_markdown(incident)


def test_a_long_request_is_shortened_by_its_long_values_never_through_an_id() -> None:
    """The impact tables show each request on one line: a policy document is shortened, the ARNs
    around it stay whole (the line used to be cut at 200 characters, wherever that fell)."""
    arns = [f"arn:aws:iam::111122223333:role/service-role/backup-{n:02d}" for n in range(6)]
    document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn} for arn in arns]})
    event = {"event_time": "2026-11-19T19:00:00Z", "event_source": "iam.amazonaws.com", "event_name": "PutRolePolicy",
             "aws_region": "us-east-1", "source_ip": "192.0.2.1", "user_agent": "aws-cli/2", "error_code": None,
             "access_key_id": "AKIAIOSFODNN7EXAMPLE", "principal_arn": "arn:aws:iam::111122223333:user/alice",
             "event_id": "e1", "response_elements": None, "request_parameters": json.dumps(
                 {"roleName": "ops", "policyName": "assume-backups", "roles": arns, "policyDocument": document})}
    md = render_markdown(make_incident(events=[event], investigation={"event_count": 1}))
    assert all(arn in md for arn in arns)
    assert text(f"({len(document)} characters)") in md and text(document) not in md


def test_query_files_are_runnable_sql_with_safe_literals(incident: Incident, tmp_path: Path) -> None:
    paths = write_report(incident, tmp_path)
    sql_files = sorted((tmp_path / "queries").glob("*.sql"))
    assert len(sql_files) == len(incident.investigation["queries"]) and set(sql_files) <= set(paths)
    assert sql_files[0].name == "01_key_activity_by_source_ip.sql"
    for path in sql_files:
        text = path.read_text()
        sqlglot.parse_one(text, read="athena")
        assert get_query(text).placeholders == [], path.name  # every :name has its value
    tricky = make_incident(investigation={"queries": [{"query": "key_events", "params": {
        "access_key_ids": ["AKIAIOSFODNN7EXAMPLE"], "exclude_ips": ["1.2.3.4'; DROP TABLE x; --\nSELECT 1"],
        "start_day": "2026/11/18", "end_day": "2026/11/20", "start_time": "2026-11-18T00:00:00Z",
        "end_time": "2026-11-20T00:00:00Z"}}]})
    sql = query_runs(tricky)[0].sql
    assert "ARRAY['1.2.3.4''; DROP TABLE x; --\nSELECT 1']" in sql
    assert all(line.startswith("--") for line in sql.split("SELECT", 1)[0].splitlines())
    assert len(sqlglot.parse(sql, read="athena")) == 1


def test_write_report_writes_every_file(incident: Incident, tmp_path: Path) -> None:
    paths = write_report(incident, tmp_path / "out")
    assert [p.name for p in paths[:3]] == ["report.md", "report.html", "incident.json"]
    assert all(p.exists() and p.stat().st_size for p in paths)


def test_artifact_keys_are_lowercase_letters_digits_and_dashes() -> None:
    assert artifact_key("IR_2026.11-19") == "incident-ir-2026-11-19"


# -- the command line ---------------------------------------------------------------------------------------


def test_cli_rerenders_from_the_evidence_store(raw: dict[str, Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from keyresponse.cli import app
    from keyresponse.evidence import LocalEvidenceStore
    from keyresponse.settings import get_settings

    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    try:
        LocalEvidenceStore(raw["incident_id"], tmp_path).put_json("incident.json", raw)
        runner = CliRunner()
        result = runner.invoke(app, ["report", raw["incident_id"], "--format", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["report"]["figures"]["events"]["value"] == str(raw["investigation"]["event_count"])
        out = tmp_path / "r.html"
        assert runner.invoke(app, ["report", raw["incident_id"], "--format", "html", "--out", str(out)]).exit_code == 0
        assert out.read_text().startswith("<!DOCTYPE html>")
        missing = runner.invoke(app, ["report", "ir-none"])
        assert missing.exit_code == 2 and "no incident record for ir-none" in missing.output
        assert runner.invoke(app, ["report", raw["incident_id"], "--format", "pdf"]).exit_code == 2
    finally:
        get_settings.cache_clear()


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from keyresponse.settings import get_settings

    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_refuses_a_tampered_record_and_renders_it_only_under_a_banner(raw: dict[str, Any], cli_home: Path) -> None:
    """Review M3.3: `keyresponse report` verifies the evidence before rendering. A record changed after it
    was stored is refused, naming the file and the mismatch; `--unverified` renders it under a banner."""
    import hashlib

    from keyresponse.cli import app
    from keyresponse.evidence import LocalEvidenceStore

    incident_id = raw["incident_id"]
    store = LocalEvidenceStore(incident_id, cli_home)
    store.put_json("incident.json", raw)
    runner = CliRunner()
    assert runner.invoke(app, ["report", incident_id]).exit_code == 0
    record = store.folder / "incident.json"
    text = record.read_text()
    assert '"status": "closed"' in text
    record.write_text(text.replace('"status": "closed"', '"status": "recovered"', 1))

    refused = runner.invoke(app, ["report", incident_id])
    assert refused.exit_code == 1 and not refused.stdout
    message = " ".join(refused.output.split())
    assert f"refusing to render the report of {incident_id} from its incident.json" in message
    assert "incident.json does not match its SHA-256 in the manifest (manifest " in message, message
    assert "--unverified" in message

    md = runner.invoke(app, ["report", incident_id, "--unverified"])
    assert md.exit_code == 0 and md.stdout.startswith("> **UNVERIFIED"), md.output
    assert "incident.json does not match its SHA" in md.stdout.split("\n", 1)[0]
    html = runner.invoke(app, ["report", incident_id, "--unverified", "--format", "html"]).stdout
    assert '<body>\n<div role="alert"' in html and "UNVERIFIED" in html
    as_json = json.loads(runner.invoke(app, ["report", incident_id, "--unverified", "--format", "json"]).stdout)
    assert as_json["unverified"].startswith("UNVERIFIED") and as_json["status"] == "recovered"

    manifest = json.loads((store.folder / "manifest.json").read_text())  # re-hashed into the manifest too
    manifest["items"][0]["sha256"] = hashlib.sha256(record.read_bytes()).hexdigest()
    manifest["items"][0]["size"] = record.stat().st_size
    (store.folder / "manifest.json").write_text(json.dumps(manifest))
    refused = runner.invoke(app, ["report", incident_id])
    assert refused.exit_code == 1 and "(incident.json) was edited after it was chained" in refused.output


def test_cli_renders_a_record_beside_the_ledger_only_when_told_it_is_unverified(raw: dict[str, Any],
                                                                                 cli_home: Path) -> None:
    from keyresponse.cli import app

    beside = cli_home / "incidents" / raw["incident_id"] / "incident.json"
    beside.parent.mkdir(parents=True)
    beside.write_text(json.dumps(raw))
    runner = CliRunner()
    refused = runner.invoke(app, ["report", raw["incident_id"]])
    assert refused.exit_code == 1 and "is in no manifest, so it cannot be verified" in " ".join(refused.output.split())
    shown = runner.invoke(app, ["report", raw["incident_id"], "--unverified"])
    assert shown.exit_code == 0 and shown.stdout.startswith("> **UNVERIFIED")


def test_each_address_shows_whose_it_is_and_why_and_uncertain_credentials_stand_apart() -> None:
    """The judgement's evidence quotes user agents, which the attacker writes: inert in both formats."""
    evidence = [f"new to the key, and new client(s) {SCRIPT_UA} making calls the key never made: ListUsers"]
    inv = {"source_ips": [{"ip": "203.0.113.9", "event_count": 3, "user_agents": [SCRIPT_UA],
                           "first_seen": "2026-11-19T19:00:00Z", "last_seen": "2026-11-19T19:05:00Z",
                           "classification": "attacker", "confidence": "medium", "evidence": evidence}],
           "uncertain_credentials": [{"access_key_id": "ASIAUNCERTAIN0000001", "kind": "session",
                                      "created_by_event": "AssumeRole", "parent": "AKIAEXAMPLE000000001",
                                      "principal_arn": "arn:aws:iam::111122223333:role/ops",
                                      "reasons": [f"minted from an address with {HTML_RESOURCE}"]}]}
    incident = make_incident(investigation=inv)
    md, html = render_markdown(incident), render_html(incident)
    page = Page(html)
    assert page.rows["uncertain_credentials"] == 1 and "ASIAUNCERTAIN0000001" in html
    assert "(medium)" in md and "ASIAUNCERTAIN0000001" in md and "not in the" in md
    assert "<script" not in md and "<img" not in md and "&lt;script&gt;" in md
    assert not [tag for tag, _ in page.tags if tag in ("script", "img")]
    assert SCRIPT_UA in "".join(page.text)  # shown, as text
    assert "uncertain_credentials" not in render_html(make_incident())


def _checks(event_name: str, source_ip: str) -> list[dict[str, Any]]:
    """A quiet check, then one that reopened the incident on a call the attacker named."""
    key = "AKIAIOSFODNN7EXAMPLE"
    row = {"access_key_id": key, "event_source": "s3.amazonaws.com", "event_name": event_name, "source_ip": source_ip,
           "error_code": None, "call_count": 3, "first_seen_at": "2026-11-20T10:05:00Z",
           "last_seen_at": "2026-11-20T10:06:00Z", "contained_at": "2026-11-20T10:00:00Z", "breach": True}
    denied = row | {"error_code": "AccessDenied", "call_count": 2, "breach": False}
    return [{"stage": "after_containment", "checked_at": "2026-11-20T10:00:05Z", "credentials": [key]},
            {"stage": "after_delivery_delay", "checked_at": "2026-11-20T10:15:00Z", "credentials": [key],
             "activity": [row, denied], "round": "applied",
             "breaches": [{"kind": "activity", "subject": key, "detail": f"3 successful {event_name} call(s) from "
                                                                         f"{source_ip}"},
                          {"kind": "reverted", "subject": f"access_key:{key} (alice)",
                           "detail": "deactivate access key, applied at 2026-11-20T10:00:00Z, no longer holds"}]}]


def test_a_reopened_incident_says_so_with_the_attackers_calls_inert_in_both_formats() -> None:
    incident = make_incident(status="contained", containment_checks=_checks(SCRIPT_UA, HTML_RESOURCE))
    assert [c.stage for c in incident.reopenings()] == ["after_delivery_delay"]
    md, html = render_markdown(incident), render_html(incident)
    assert "## Did containment hold" in md and "reopened 1 time(s)" in md
    section = md[md.index("## Did containment hold"):md.index("## Actions")]
    assert "<script" not in section and "<img" not in section
    assert '&lt;script&gt;alert\\("owned"\\)&lt;/script&gt;' in section and "onerror=alert\\(1\\)&gt;" in section
    assert "| AccessDenied |" in section and "| success |" in section
    activity_rows = [line for line in section.splitlines() if line.startswith("| AKIAIOSFODNN7EXAMPLE |")]
    assert len(activity_rows) == 2 and all(line.count(" | ") == 8 for line in activity_rows)  # nine cells each
    page = Page(html)
    assert page.rows["containment_checks"] == 2 and page.rows["activity_after"] == 2 and page.rows["breaches"] == 2
    assert not [tag for tag, _ in page.tags if tag in ("script", "img")]
    assert SCRIPT_UA in "".join(page.text) and HTML_RESOURCE in "".join(page.text)  # shown, as text
    assert "Containment did not hold" in render_json(incident)  # the outcome says it too


def test_a_quiet_check_says_containment_held_and_an_older_record_has_no_section() -> None:
    quiet = make_incident(status="contained", containment_checks=_checks("ListBuckets", "198.51.100.7")[:1])
    md = render_markdown(quiet)
    assert "Containment held" in md and "reopened" not in md
    assert "Did containment hold" not in render_markdown(make_incident())
    assert "containment_checks" not in make_incident().record()
