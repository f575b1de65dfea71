"""Attribution of source addresses: ranges, lists, odd addresses, missing files, injected fetch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyresponse.intel.attribution import (
    IntelConfig,
    Ranges,
    Source,
    attribute_ip,
    attribute_ips,
    load_ranges,
    parse_ip_list,
)

from ._helpers import INTEL, full_config


@pytest.fixture(scope="module")
def ranges() -> Ranges:
    return load_ranges(full_config())


@pytest.mark.parametrize(("ip", "kind", "provider", "region"), [
    ("3.91.171.44", "cloud", "aws", "us-east-1"),
    ("3.236.12.7", "cloud", "aws", "us-east-1"),
    ("2600:1f18::1", "cloud", "aws", "us-east-1"),
    ("34.70.1.2", "cloud", "gcp", "us-central1"),
    ("40.71.3.4", "cloud", "azure", "eastus"),
    ("146.190.61.22", "public", None, None),
])
def test_cloud_ranges_of_each_provider(ranges: Ranges, ip: str, kind: str, provider: str | None,
                                       region: str | None) -> None:
    row = attribute_ip(ip, ranges)
    assert (row["kind"], row["provider"], row["region"]) == (kind, provider, region)
    assert row["notes"]


def test_most_specific_aws_service_is_reported(ranges: Ranges) -> None:
    row = attribute_ip("3.91.171.44", ranges)
    assert row["service"] == "EC2" and set(row["services"]) == {"AMAZON", "EC2"}


def test_tor_exit_and_threat_list_with_label(ranges: Ranges) -> None:
    assert attribute_ip("185.220.101.34", ranges)["tor_exit"] is True
    row = attribute_ip("45.134.26.19", ranges)
    assert row["tor_exit"] is False
    assert row["lists"] == [{"list": "sample", "match": "45.134.26.0/24", "label": "bulletproof hosting (sample)"}]


@pytest.mark.parametrize(("ip", "kind"), [
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"), ("100.64.1.1", "private"),
    ("127.0.0.1", "private"), ("169.254.169.254", "private"), ("fd00::1", "private"),
    ("192.0.2.10", "documentation"), ("198.51.100.23", "documentation"), ("203.0.113.9", "documentation"),
    ("2001:db8::5", "documentation"), ("240.1.2.3", "reserved"), ("0.0.0.0", "reserved"),  # noqa: S104
    ("224.0.0.1", "reserved"),
    ("not-an-ip", "malformed"), ("999.1.1.1", "malformed"), ("08.1.250.216", "malformed"), ("", "unknown"),
    (None, "unknown"),
    ("lambda.amazonaws.com", "aws_service"), ("AWS Internal", "aws_service"),
])
def test_odd_addresses_are_classified_with_a_note_never_an_error(ranges: Ranges, ip: str | None,
                                                                   kind: str) -> None:
    row = attribute_ip(ip, ranges)
    assert row["kind"] == kind
    assert row["notes"] and isinstance(row["notes"][0], str)


def test_missing_range_files_give_unknown_with_notes(tmp_path: Path) -> None:
    config = IntelConfig(aws_ranges=tmp_path / "nope.json", tor_exits=tmp_path / "nope.txt")
    answer = attribute_ips([{"source_ip": "3.91.171.44", "event_time": "2026-11-19T00:00:00Z", "event_id": "e1"}],
                           config)
    (row,) = answer["ips"]
    assert row["kind"] == "public" and row["provider"] is None and row["tor_exit"] is None
    assert any("ownership is unknown" in n for n in row["notes"])
    assert any("cannot read" in n for n in answer["notes"])
    assert answer["sources_loaded"] == []


def test_no_configuration_at_all_still_answers() -> None:
    answer = attribute_ips([{"source_ip": "185.220.101.34", "event_id": "e", "event_time": "2026-11-19T00:00:00Z"}])
    assert answer["ips"][0]["tor_exit"] is None
    assert any("Tor exit list not configured" in n for n in answer["notes"])


def test_malformed_range_json_is_a_note(tmp_path: Path) -> None:
    bad = tmp_path / "ranges.json"
    bad.write_text("{not json")
    answer = attribute_ips([], IntelConfig(aws_ranges=bad))
    assert any("unreadable" in n for n in answer["notes"])


def test_url_source_is_fetched_once_through_the_injected_fetch_and_cached(tmp_path: Path) -> None:
    calls: list[str] = []
    body = (INTEL / "aws-ip-ranges.sample.json").read_bytes()

    def fetch(url: str) -> bytes:
        calls.append(url)
        return body

    config = IntelConfig(aws_ranges=Source(url="https://example.invalid/ip-ranges.json"), cache_dir=tmp_path,
                         fetch=fetch)
    for _ in range(2):
        assert attribute_ip("3.91.171.44", load_ranges(config))["provider"] == "aws"
    assert calls == ["https://example.invalid/ip-ranges.json"]
    assert len(list(tmp_path.iterdir())) == 1


def test_url_without_fetch_or_with_failing_fetch_is_a_note(tmp_path: Path) -> None:
    def broken(url: str) -> bytes:
        raise OSError("network unreachable")

    for fetch in (None, broken):
        ranges = load_ranges(IntelConfig(aws_ranges=Source(url="https://example.invalid/r.json"), cache_dir=tmp_path,
                                         fetch=fetch))
        assert "aws" not in ranges.loaded and any("example.invalid" in n for n in ranges.notes)


def test_config_from_a_plain_mapping() -> None:
    config = IntelConfig.from_mapping({"aws_ranges": str(INTEL / "aws-ip-ranges.sample.json"),
                                       "tor_exits": "https://example.invalid/tor.txt",
                                       "threat_lists": {"x": str(INTEL / "threat-list.sample.txt")}})
    assert isinstance(config.aws_ranges, Source) and config.aws_ranges.path is not None
    assert isinstance(config.tor_exits, Source) and config.tor_exits.url
    assert "list:x" in load_ranges(config).loaded


def test_ip_list_skips_malformed_lines_and_keeps_labels() -> None:
    ranges = parse_ip_list("# head\n1.2.3.4 # one\nbad\n\n5.6.0.0/16\n", "list:t")
    assert [(str(r.network), r.label) for r in ranges] == [("1.2.3.4/32", "one"), ("5.6.0.0/16", None)]


def test_sample_files_are_in_the_providers_formats() -> None:
    aws = json.loads((INTEL / "aws-ip-ranges.sample.json").read_text())
    assert {"prefixes", "ipv6_prefixes", "syncToken", "createDate"} <= set(aws)
    assert "prefixes" in json.loads((INTEL / "gcp-cloud.sample.json").read_text())
    assert "values" in json.loads((INTEL / "azure-servicetags.sample.json").read_text())
