"""Indicator-driven materialisation: every query returns what full materialisation returns, the byte
scanner indexes and cuts records exactly, odd files fall back to DuckDB's reader, the index is reused."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engines import indicators
from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.indicator_table import indicator_filters
from keyresponse.engines.layout import write_trail_files
from keyresponse.intel.taxonomy import data_access_calls
from keyresponse.queries import Query, registry

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cloudtrail"
WIDE = {"start_day": "2022/01/01", "end_day": "2026/12/31",
        "start_time": "2022-01-01T00:00:00Z", "end_time": "2027-01-01T00:00:00Z"}


def params_for(query: Query, keys: list[str], ips: list[str], window: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, param in query.params.items():
        if name == "access_key_ids":
            values[name] = keys
        elif name == "source_ips":
            values[name] = ips
        elif name == "data_calls":
            values[name] = data_access_calls()
        elif param.type == "array(varchar)":
            values[name] = []
        elif name == "after_time":
            values[name] = window["start_time"]
        else:
            values[name] = window[name]
    return values


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def assert_same_results(logs: Path, tmp: Path, cases: list[tuple[list[str], list[str]]], window: dict[str, str],
                        **options: Any) -> int:
    """Every query for every (keys, ips) case on both paths; the number of non-empty results."""
    non_empty = 0
    with DuckDBEngine(logs, cache_dir=tmp / "full", materialise="full") as full, \
            DuckDBEngine(logs, cache_dir=tmp / "indicators", **options) as fast:
        for keys, ips in cases:
            for name, query in registry().items():
                params = params_for(query, keys, ips, window)
                expected = full.run(name, params)
                # as multisets: ties in a query's ORDER BY may come out in either order
                assert canonical(fast.run(name, params)) == canonical(expected), (name, keys, ips)
                non_empty += bool(expected)
        assert fast.logging_gaps == full.logging_gaps
    return non_empty


def records(name: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / name).read_text())["Records"])


@pytest.fixture(scope="module")
def fixture_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixture-logs")
    write_trail_files(records("stratus_red_team_detonation_logs.json"), root)
    write_trail_files(records("panther_analysis_cloudtrail_rule_tests.trimmed.json"), root)
    return root


@pytest.mark.parametrize(("kernel", "decompressor"), [("c", "libdeflate"), ("numpy", "isal")])
def test_every_query_matches_full_materialisation_on_the_fixtures(
    fixture_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: str, decompressor: str
) -> None:
    monkeypatch.setattr(indicators, "KERNEL", kernel)  # the index kernel in use (see indicators.py)
    monkeypatch.setattr(indicators, "DECOMPRESSOR", decompressor)
    recs = records("stratus_red_team_detonation_logs.json") + records("panther_analysis_cloudtrail_rule_tests.trimmed.json")
    keys = sorted({r["userIdentity"]["accessKeyId"] for r in recs
                   if isinstance(r.get("userIdentity"), dict) and isinstance(r["userIdentity"].get("accessKeyId"), str)})
    ips = sorted({r["sourceIPAddress"] for r in recs if isinstance(r.get("sourceIPAddress"), str)})
    assert len(keys) > 5 and len(ips) > 5
    cases = [([k], [ip]) for k, ip in zip(keys[::7], ips[::7], strict=False)] + [(keys, ips), (keys[:3], ips[:3])]
    assert assert_same_results(fixture_logs, tmp_path, cases, WIDE) > 20


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from keyresponse.sandbox import MotoSandbox
    from keyresponse.sandbox.simulate import run_simulation

    out = tmp_path_factory.mktemp("pivot-chain")
    with MotoSandbox() as box:
        run_simulation(scenario="pivot-chain", out=out, events=50_000, sandbox=box,
                       anchor=datetime(2026, 11, 20, tzinfo=UTC))
    yield out


@pytest.mark.slow
def test_every_query_matches_full_materialisation_on_50k_simulated_events(
    simulated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indicators, "PARALLEL_MIN_BYTES", 0)  # the worker pool, even on small files
    truth = json.loads((simulated / "ground_truth.json").read_text())
    keys = [c["access_key_id"] for c in truth["attacker_credentials"]]
    ips = list(truth["attacker_ips"])
    window = {"start_day": "2026/11/17", "end_day": "2026/11/20",
              "start_time": "2026-11-17T00:00:00Z", "end_time": "2026-11-21T00:00:00Z"}
    cases = [([keys[0]], []), ([keys[0]], ips[:2]), (keys[:3], ips), (keys, ips), (keys, []), ([], ips)]
    assert assert_same_results(simulated, tmp_path, cases, window, workers=2) > 20


def test_only_filters_by_indicators_when_every_use_is_a_contains_filter() -> None:
    assert indicator_filters("SELECT 1 FROM cloudtrail WHERE contains(:access_key_ids, useridentity.accesskeyid)") \
        == ("access_key_ids",)
    assert indicator_filters(
        "SELECT 1 FROM cloudtrail WHERE contains(:source_ips, sourceipaddress)"
        " AND NOT contains(:access_key_ids, coalesce(useridentity.accesskeyid, ''))") == ("source_ips",)
    assert indicator_filters("SELECT 1 FROM cloudtrail WHERE NOT contains(:access_key_ids, useridentity.accesskeyid)") \
        is None
    assert indicator_filters("SELECT 1 FROM cloudtrail WHERE cardinality(:access_key_ids) > 0") is None
    assert indicator_filters("SELECT count(*) FROM cloudtrail") is None
    # every query file is served by indicators, but one: a console sign-in by a user the keys created
    # carries no access key (and need not come from an attacker IP), so it is found by user name in
    # every record of the window; the investigation asks it only when the keys created a user
    whole_window = {"created_user_sign_ins"}
    for name, query in registry().items():
        assert (indicator_filters(query.body) is None) == (name in whole_window), name


def write(path: Path, text: str) -> str:
    path.write_bytes(gzip.compress(text.encode()))
    return str(path)


def rec(key: str, ip: str, n: int, first: str = '"eventVersion":"1.08",') -> str:
    return ('{' + first + f'"userIdentity":{{"type":"IAMUser","accessKeyId":"{key}"}},"eventTime":"2024-07-30T00:00:0{n}Z",'
            f'"eventName":"E{n}","sourceIPAddress":"{ip}","eventID":"id{n}"}}')


def test_scanner_indexes_and_cuts_records(tmp_path: Path) -> None:
    long_ip = "2001:0db8:85a3:0000:0000:8a2e:0370:7334-and-more"
    body = '{"Records":[' + ",".join([rec("AKIAAAAAAAAAAAAAAAA1", "1.2.3.4", 1), rec("AKIAAAAAAAAAAAAAAAA2", long_ip, 2),
                                      rec("AKIAAAAAAAAAAAAAAAA1", "5.6.7.8", 3)]) + ']}'
    path = write(tmp_path / "a.json.gz", body)
    scan = indicators.scan_file(path, indicators.needles(["AKIAAAAAAAAAAAAAAAA1"]), True)
    assert scan.status == indicators.FAST
    assert scan.keys == {"AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2"}
    assert scan.ips == {"1.2.3.4", long_ip, "5.6.7.8"}
    assert [json.loads(text)["eventID"] for _, text in scan.segments] == ["id1", "id3"]
    again = indicators.scan_file(path, indicators.needles([long_ip]), False)
    assert [json.loads(text)["eventID"] for _, text in again.segments] == ["id2"]


def test_scanner_sends_odd_files_to_duckdb_and_skips_corrupt_ones(tmp_path: Path) -> None:
    spaced = write(tmp_path / "b.json.gz", '{"Records":[{ ' + rec("AKIAAAAAAAAAAAAAAAA1", "1.2.3.4", 1)[1:] + ']}')
    bare_list = write(tmp_path / "c.json.gz", "[" + rec("AKIAAAAAAAAAAAAAAAA1", "1.2.3.4", 1) + "]")
    escaped = write(tmp_path / "d.json.gz", '{"Records":[' + rec("AKIA\\u0041AAAAAAAAAAAAAA1", "1.2.3.4", 1) + ']}')
    empty = write(tmp_path / "e.json.gz", '{"Records": []}')
    corrupt = tmp_path / "f.json.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00not gzip")
    for path in (spaced, bare_list, escaped):
        assert indicators.scan_file(path, [], True).status == indicators.FULL, path
    assert indicators.scan_file(empty, [], True).keys == frozenset()
    assert indicators.scan_file(str(corrupt), [], True).status == indicators.SKIP


def test_a_second_engine_reuses_the_index_and_reads_only_files_holding_the_indicators(
    fixture_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "AKIA30BEZSJBVKOFKZW0"  # Stratus iam-backdoor-user
    params = params_for(registry()["key_events"], [key], [], WIDE)
    with DuckDBEngine(fixture_logs, cache_dir=tmp_path) as engine:
        first = engine.run("key_events", params)
    scanned: list[str] = []
    original = indicators.scan_task

    def counting(task: tuple[str, list[bytes], bool]) -> indicators.FileScan:
        scanned.append(task[0])
        return original(task)

    monkeypatch.setattr(indicators, "scan_task", counting)
    with DuckDBEngine(fixture_logs, cache_dir=tmp_path) as engine:
        assert engine.run("key_events", params) == first
        assert engine.run("key_events", params) == first  # nothing new to read
    holding = [p for p in fixture_logs.rglob("*.json.gz") if key.encode() in gzip.decompress(p.read_bytes())]
    assert sorted(scanned) == sorted(str(p) for p in holding) and first


def test_records_cut_badly_fall_back_to_whole_files(tmp_path: Path) -> None:
    key, ip = "AKIAAAAAAAAAAAAAAAA1", "1.2.3.4"
    nested = rec(key, ip, 5)[:-1] + ',"requestParameters":{"eventVersion":"nested"}}'
    folder = tmp_path / "logs" / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / "2024" / "07" / "30"
    folder.mkdir(parents=True)
    # a record starting with another key is glued to the one before it; a nested marker breaks a cut
    write(folder / "111122223333_CloudTrail_us-east-1_20240730T0000Z_GLUED.json.gz",
          '{"Records":[' + ",".join([rec(key, ip, 1), rec(key, ip, 2, '"awsRegion":"us-east-1",'), rec(key, ip, 3)]) + "]}")
    write(folder / "111122223333_CloudTrail_us-east-1_20240730T0005Z_NESTED.json.gz",
          '{"Records":[' + ",".join([rec(key, "9.9.9.9", 4), nested, rec(key, ip, 6)]) + "]}")
    window = {"start_day": "2024/07/30", "end_day": "2024/07/30",
              "start_time": "2024-07-30T00:00:00Z", "end_time": "2024-07-31T00:00:00Z"}
    cases = [([key], [ip]), ([key], ["9.9.9.9"]), ([], [ip])]
    assert assert_same_results(tmp_path / "logs", tmp_path, cases, window) > 5
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "c") as engine:
        rows = engine.run("key_events", params_for(registry()["key_events"], [key], [], window))
    assert len(rows) == 6


# -- the C half (`_scan.c`): the index kernel and the cutter match Python; libdeflate --------------

needs_c = pytest.mark.skipif(indicators._heads_c is None, reason="the C kernel is not built (no compiler)")


def both_kernels(data: bytes, wanted: tuple[bytes, ...]) -> tuple[Any, Any]:
    assert indicators._heads_c is not None
    c = indicators._heads_c(data, indicators._KEY_NAME, indicators._KEY_LOOKAHEAD,
                            indicators._IP_NAME, indicators._IP_LOOKAHEAD, wanted)
    return c, indicators._heads_numpy(data, wanted)


def test_the_c_kernel_is_built_where_a_compiler_is() -> None:
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the numpy kernel is the one in use")
    assert indicators.KERNEL == "c" and indicators._heads_c is not None  # `pip install` built _scan.c


@needs_c
def test_the_c_kernel_matches_numpy_on_real_and_simulated_files(fixture_logs: Path, simulated: Path) -> None:
    truth = json.loads((simulated / "ground_truth.json").read_text())
    wanted_values = [truth["compromised_access_key_id"], *truth["attacker_ips"][:2]]
    wanted = tuple(p + w for w in indicators.needles(wanted_values) for p in (b":", b": "))
    files = sorted(fixture_logs.rglob("*.json.gz")) + sorted(simulated.rglob("*.json.gz"))[::5]
    hits = 0
    for path in files:
        data = indicators.read_file(str(path))
        c, numpy_ = both_kernels(data, wanted)
        assert c == numpy_, path
        hits += len(c[1]) + len(c[3])
    assert len(files) > 20 and hits > 100


# Fragments that make names, near-misses, values and truncations in any order: the kernels must
# agree on every arrangement (after a 16-byte lead, as a FAST file's first name always is).
FRAGMENTS = [b'"accessKeyId"', b'"sourceIPAddress"', b'"accessKeyI"', b'"sourceIPAddres"', b"accessKeyId",
             b':"AKIAAAAAAAAAAAAAAAA1"', b': "AKIAAAAAAAAAAAAAAAA2"', b':"1.2.3.4"', b':"10.0.0.1"', b": null",
             b':"' + b"x" * 60 + b'"', b'"', b":", b" ", b"I", b"Id", b"IP", b",", b"{", b"}", b"\\", b'"principalId"']


@needs_c
def test_the_c_kernel_matches_numpy_on_any_arrangement() -> None:
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    wanted = (b':"AKIAAAAAAAAAAAAAAAA1"', b': "AKIAAAAAAAAAAAAAAAA1"', b':"1.2.3.4"', b': "1.2.3.4"',
              b':"' + b"x" * 30)

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.sampled_from(FRAGMENTS), max_size=300), st.binary(max_size=8))
    @example([b'"sourceIPAddress"', b':"1.2.3.4"'], b"")  # a wanted value that ends the data
    @example([b'"accessKeyId"', b':"AKIAAAAAAAAAAAAAAAA1"'], b"")
    @example([b'"accessKeyId"'], b"")  # a name that ends the data: an empty head
    @example([b'"sourceIPAddress"', b':"1.2'], b"")  # a value cut short
    @example([b'"accessKeyId"', b"accessKeyId", b'"accessKeyId"'], b"")  # names sharing their quotes
    def agree(parts: list[bytes], tail: bytes) -> None:
        data = b'{"Records":[{"eventVersion":"1",' + b"".join(parts) + tail
        c, numpy_ = both_kernels(data, wanted)
        assert c == numpy_

    agree()


@needs_c
def test_the_c_kernel_matches_numpy_past_its_first_table_size() -> None:
    """The C kernel starts with 256 slots per name and grows at half full: 3,000 distinct keys and IPs."""
    records = [rec(f"AKIA{i:016d}", f"10.{i // 250}.{i % 250}.1", i % 10) for i in range(3000)]
    data = ('{"Records":[' + ",".join(records) + "]}").encode()
    c, numpy_ = both_kernels(data, (b':"AKIA0000000000000007"', b':"10.3.7.1"'))
    assert c == numpy_
    assert len(c[0]) == 3000 and len(c[2]) == 3000 and len(c[1]) == 1 and len(c[3]) == 1


@needs_c
def test_the_c_kernel_rejects_what_it_cannot_index() -> None:
    assert indicators._heads_c is not None
    with pytest.raises(ValueError, match="'I'"):
        indicators._heads_c(b"{}", b'"name"', 8, indicators._IP_NAME, 8, ())
    with pytest.raises(TypeError, match="tuple of bytes"):
        indicators._heads_c(b"{}", indicators._KEY_NAME, 8, indicators._IP_NAME, 8, ("text",))


def test_a_gzip_file_of_several_members_is_read_whole_and_a_cut_one_is_skipped(tmp_path: Path) -> None:
    body = '{"Records":[' + rec("AKIAAAAAAAAAAAAAAAA1", "1.2.3.4", 1) + "," + rec("AKIAAAAAAAAAAAAAAAA2", "5.6.7.8", 2) + "]}"
    half = len(body) // 2
    two = tmp_path / "two.json.gz"  # `cat a.gz b.gz` is a valid gzip file: every member counts
    two.write_bytes(gzip.compress(body[:half].encode()) + gzip.compress(body[half:].encode()))
    assert indicators.read_file(str(two)) == body.encode()
    scan = indicators.scan_file(str(two), [], True)
    assert scan.keys == {"AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2"}
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(gzip.compress(body.encode())[:-6])
    skipped = indicators.scan_file(str(cut), [], True)
    assert skipped.status == indicators.SKIP and "EOFError" in skipped.reason


def test_libdeflate_is_used_where_the_system_has_it() -> None:
    import ctypes.util

    if indicators._gunzip is None or ctypes.util.find_library("deflate") is None:
        pytest.skip("no C half or no libdeflate here: ISA-L decompresses every file")
    assert indicators.DECOMPRESSOR == "libdeflate"


@pytest.mark.skipif(indicators.DECOMPRESSOR != "libdeflate", reason="no libdeflate here")
def test_libdeflate_takes_only_a_file_of_exactly_one_whole_member() -> None:
    import struct

    gunzip = indicators._gunzip
    assert gunzip is not None
    body = b'{"Records":[' + b",".join(rec(f"AKIA{i:016d}", "1.2.3.4", i % 10).encode() for i in range(500)) + b"]}"
    one = gzip.compress(body)
    assert gunzip(one) == body
    for path in sorted(FIXTURES.glob("*.json")):
        text = path.read_bytes()
        assert gunzip(gzip.compress(text)) == text, path
    trailer_crc, size = struct.unpack("<II", one[-8:])
    refused = {
        "two members": one + gzip.compress(b"more"),
        "the same member twice": one + one,
        "zero padding": one + b"\0" * 8,
        "garbage after": one + b"garbage!",
        "cut short": one[:-20],
        "a size in the trailer too small": one[:-4] + struct.pack("<I", size - 1),
        "a size in the trailer too large": one[:-4] + struct.pack("<I", size + 1),
        "a 4 GiB size (never allocated)": one[:-4] + struct.pack("<I", 0xFFFFFFFF),
        "a bad CRC": one[:-8] + struct.pack("<II", trailer_crc ^ 1, size),
        "not gzip": b"\x1f\x8b\x08\x00not gzip at all",
        "empty": b"",
    }
    for why, data in refused.items():
        assert gunzip(data) is None, why  # read_file then hands it to ISA-L (every member, or an error)
    assert gunzip(bytearray(one)) == body  # any buffer


@needs_c
def test_the_c_segment_cutter_matches_python_on_any_arrangement() -> None:
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    pieces = [b'{"eventVersion"', b'{"eventVersion":"1.08",', b'"x"', b",", b" ", b"\n", b"]}", b"\xc3\xa9", b"a" * 40,
              b"{", b"}"]
    marker = b'{"eventVersion"'

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.sampled_from(pieces), max_size=80), st.lists(st.integers(0, 900), max_size=12),
           st.integers(0, 900))
    @example([b'{"eventVersion":"1.08",', b'"x"', b" ,\n"], [3, 20], 900)  # a trailing comma and spaces
    @example([b'"x"', b'{"eventVersion"'], [0], 900)  # a hit before any marker
    def agree(parts: list[bytes], hits: list[int], tail: int) -> None:
        data = b"".join(parts)
        hits = sorted(set(hits))
        try:
            expected: Any = indicators._segments_python(data, hits, tail, marker)
        except UnicodeDecodeError:
            expected = UnicodeDecodeError
        assert indicators._segments_c is not None
        try:
            got: Any = indicators._segments_c(data, hits, tail, marker)
        except UnicodeDecodeError:
            got = UnicodeDecodeError
        assert got == expected

    agree()
