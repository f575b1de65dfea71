"""How a CloudTrail file becomes rows of the `cloudtrail` table in DuckDB: the ingest projection.

The table has the Athena CloudTrail columns, partition columns `account`, `region` and `timestamp`
('yyyy/MM/dd') taken from the file's path in the trail layout (else from the record), and
`eventtime` normalised to `YYYY-MM-DDTHH:MM:SSZ` (records written as `YYYY-MM-DD HH:MM:SS[.fff]`
are rewritten, so string comparisons are time comparisons). A file holds `{"Records": [...]}`, a
bare list of records, or one record. Both materialisations build their rows here: the Parquet
cache of whole windows (`parquet_cache.py`) from files through DuckDB's JSON reader
(`select_rows` over `json_reader`), the indicator table (`indicator_table.py`) from the record
segments the byte scanner cut out (`select_segments`) and from whole files. A file DuckDB cannot
read (corrupt gzip, not JSON, `Records` not a list) is found by `unreadable` and skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

#: Bump when the ingest projection changes, so old Parquet caches and file indexes are not reused
#: (it is part of every unit's key: `trail_files.Unit.key`).
SCHEMA_VERSION = "2"
#: A CloudTrail file is one JSON object; real ones reach tens of MB uncompressed.
MAX_OBJECT_SIZE = 1 << 30

_USERIDENTITY = json.dumps({
    "type": "VARCHAR", "principalId": "VARCHAR", "arn": "VARCHAR", "accountId": "VARCHAR",
    "invokedBy": "VARCHAR", "accessKeyId": "VARCHAR", "userName": "VARCHAR",
    "onBehalfOf": {"userId": "VARCHAR", "identityStoreArn": "VARCHAR"},
    "sessionContext": {
        "attributes": {"mfaAuthenticated": "VARCHAR", "creationDate": "VARCHAR"},
        "sessionIssuer": {"type": "VARCHAR", "principalId": "VARCHAR", "arn": "VARCHAR",
                          "accountId": "VARCHAR", "userName": "VARCHAR"},
        "ec2RoleDelivery": "VARCHAR",
        "webIdFederationData": {"federatedProvider": "VARCHAR", "attributes": "MAP(VARCHAR, VARCHAR)"},
    },
})
_RESOURCES = json.dumps([{"ARN": "VARCHAR", "accountId": "VARCHAR", "type": "VARCHAR"}])
_TLSDETAILS = json.dumps({"tlsVersion": "VARCHAR", "cipherSuite": "VARCHAR", "clientProvidedHostHeader": "VARCHAR"})
_ADDENDUM = json.dumps({"reason": "VARCHAR", "updatedFields": "VARCHAR", "originalRequestID": "VARCHAR",
                        "originalEventID": "VARCHAR"})

_STRING_FIELDS = {
    "eventversion": "eventVersion", "eventsource": "eventSource", "eventname": "eventName",
    "awsregion": "awsRegion", "sourceipaddress": "sourceIPAddress", "useragent": "userAgent",
    "errorcode": "errorCode", "errormessage": "errorMessage", "requestid": "requestID",
    "eventid": "eventID", "readonly": "readOnly", "eventtype": "eventType", "apiversion": "apiVersion",
    "recipientaccountid": "recipientAccountId", "sharedeventid": "sharedEventID",
    "vpcendpointid": "vpcEndpointId", "vpcendpointaccountid": "vpcEndpointAccountId",
    "eventcategory": "eventCategory", "managementevent": "managementEvent",
    "sessioncredentialfromconsole": "sessionCredentialFromConsole",
}
_JSON_TEXT_FIELDS = {
    "requestparameters": "requestParameters", "responseelements": "responseElements",
    "additionaleventdata": "additionalEventData", "serviceeventdetails": "serviceEventDetails",
    "edgedevicedetails": "edgeDeviceDetails",
}

#: The whole record in one json_transform: each record's JSON is parsed once (per-field `->>`
#: extraction re-parses the record for every column and is several times slower).
_RECORD = json.dumps({
    **{key: "VARCHAR" for key in _STRING_FIELDS.values()},
    **{key: "JSON" for key in _JSON_TEXT_FIELDS.values()},
    "eventTime": "VARCHAR",
    "userIdentity": json.loads(_USERIDENTITY),
    "resources": json.loads(_RESOURCES),
    "tlsDetails": json.loads(_TLSDETAILS),
    "addendum": json.loads(_ADDENDUM),
})

_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
_EVENTTIME = (
    "CASE WHEN regexp_matches(r.eventTime, '" + _ISO + "') THEN r.eventTime "
    "ELSE coalesce(strftime(try_cast(r.eventTime AS TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%SZ'), r.eventTime) END"
)


def quote(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


#: account, region and day of a file in the trail layout (organization trails included).
_LAYOUT = r"/AWSLogs/(?:o-[a-z0-9]+/)?([0-9]{12})/CloudTrail/([a-z0-9-]+)/([0-9]{4}/[0-9]{2}/[0-9]{2})/[^/]+$"


def _record_columns(account: str, region: str, day: str) -> list[str]:
    """The table's columns from `r` (a json_transform'ed record); partition columns from the
    given expressions when they are not NULL, else from the record."""
    cols = [f"r.{key} AS {name}" for name, key in _STRING_FIELDS.items()]
    cols += [f"CAST(r.{key} AS VARCHAR) AS {name}" for name, key in _JSON_TEXT_FIELDS.items()]
    day_from_record = f"replace(substr({_EVENTTIME}, 1, 10), '-', '/')"
    cols += [
        f"{_EVENTTIME} AS eventtime",
        "r.userIdentity AS useridentity",
        "r.resources AS resources",
        "r.tlsDetails AS tlsdetails",
        "r.addendum AS addendum",
        f"coalesce({account}, r.recipientAccountId) AS account",
        f"coalesce({region}, r.awsRegion) AS region",
        f"coalesce({day}, {day_from_record}) AS \"timestamp\"",
    ]
    return cols


def select_rows(source: str, unit_keys: Mapping[str, str] | None = None, *, file_column: bool = False) -> str:
    """The SELECT that turns raw file objects (`source` yields `json`, `filename`) into table rows.

    Partition columns come from the file's path in the trail layout, else from the record.
    `unit_keys` maps a folder (with a trailing slash) to the unit key stored with its rows;
    `file_column` adds the file's path as `_file`.
    """
    cols = _record_columns(*(f"nullif(regexp_extract(filename, {quote(_LAYOUT)}, {i}), '')" for i in (1, 2, 3)))
    if unit_keys is not None:
        mapping = "MAP {" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in unit_keys.items()) + "}"
        cols.append(f"{mapping}[regexp_replace(filename, '[^/]*$', '')] AS unit_key")
    if file_column:
        cols.append("filename AS _file")
    records = (
        "CASE WHEN json_type(json, '$.Records') = 'ARRAY' THEN CAST(json->'Records' AS JSON[]) "
        "WHEN json_type(json) = 'ARRAY' THEN CAST(json AS JSON[]) "
        "WHEN json_type(json, '$.eventName') IS NOT NULL THEN [json] "
        "ELSE CAST([] AS JSON[]) END"
    )
    return (
        "SELECT " + ",\n  ".join(cols) + f"\nFROM (SELECT json_transform(rec, {quote(_RECORD)}) AS r, filename"
        " FROM (SELECT unnest(" + records + ") AS rec, filename FROM " + source + ")"
        " WHERE json_type(rec) = 'OBJECT')"
    )


_LAYOUT_RE = re.compile(_LAYOUT)


def path_partitions(path: str) -> tuple[str | None, str | None, str | None]:
    """account, region and day of a file in the trail layout (None each when it is not), as `_LAYOUT` in SQL."""
    match = _LAYOUT_RE.search(path)
    return (match.group(1), match.group(2), match.group(3)) if match else (None, None, None)


def select_segments(source: str, *, single: bool) -> str:
    """Table rows (with `_file`) from record segments: `source` yields `seg` (the text of one record
    when `single`, else of several, comma-separated), `filename` and the path's `p_account`,
    `p_region` and `p_day`. The same rows as `select_rows` over the file, for those records."""
    cols = [*_record_columns("p_account", "p_region", "p_day"), "filename AS _file"]
    if single:
        inner = f"SELECT json_transform(seg, {quote(_RECORD)}) AS r, filename, p_account, p_region, p_day FROM {source}"
    else:
        inner = (
            f"SELECT json_transform(rec, {quote(_RECORD)}) AS r, filename, p_account, p_region, p_day FROM ("
            "SELECT unnest(CAST(('[' || seg || ']')::JSON AS JSON[])) AS rec, filename, p_account, p_region, p_day"
            f" FROM {source}) WHERE json_type(rec) = 'OBJECT'"
        )
    return "SELECT " + ",\n  ".join(cols) + f"\nFROM ({inner})"


def json_reader(files: Sequence[Path]) -> str:
    """A source of raw file objects (`json`, `filename`) for `select_rows`: DuckDB's JSON reader over `files`."""
    paths = ", ".join(quote(str(f)) for f in files)
    return (
        f"read_json_objects([{paths}], format='auto', filename=true, "
        f"maximum_object_size={MAX_OBJECT_SIZE})"
    )


#: A source of no file objects, for an empty view or table of the projection's columns.
EMPTY_SOURCE = "(SELECT NULL::JSON AS json, NULL::VARCHAR AS filename WHERE false)"


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be read, and why (reported in `logging_gaps`)."""

    path: str
    reason: str


def unreadable(con: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> dict[Path, str]:
    """The files DuckDB cannot read, with the reason, found by bisection (a few bad files are cheap)."""
    try:
        con.execute(f"SELECT count(*) FROM ({select_rows(json_reader(files))})").fetchall()
    except duckdb.Error as exc:
        if len(files) == 1:
            return {files[0]: str(exc).splitlines()[0][:300]}
        half = len(files) // 2
        return unreadable(con, files[:half]) | unreadable(con, files[half:])
    return {}
