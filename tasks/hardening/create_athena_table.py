"""Create the Athena CloudTrail table from queries/ddl/cloudtrail.sql, through the Glue Data Catalog.

Target: `Target(kind="glue_table", id="<database>.<table>", region=<home>, data={"bucket": …,
"accounts": [...], "regions": [...], "logs_prefix": "AWSLogs/", "start_day": "yyyy/MM/dd"})`.
The DDL is rendered by `keyresponse.queries.render_ddl` and turned into a Glue `TableInput`
(`glue_table_input`): the same columns, partition projection and location Athena's CREATE EXTERNAL
TABLE would store, written with glue:CreateTable so the result can be read back and verified (an
Athena DDL query leaves nothing to verify in the sandbox). The database is created when missing.
Undo deletes what was created, or puts the previous table definition back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from keyresponse.errors import InputError
from keyresponse.queries import render_ddl
from tasks.actions import Action, ActionContext, Target, error_code

_CREATE = re.compile(r"CREATE\s+EXTERNAL\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s*\(", re.IGNORECASE)
_QUOTED = {
    "Description": re.compile(r"\bCOMMENT\s+'([^']*)'", re.IGNORECASE),
    "serde": re.compile(r"ROW\s+FORMAT\s+SERDE\s+'([^']+)'", re.IGNORECASE),
    "input": re.compile(r"\bINPUTFORMAT\s+'([^']+)'", re.IGNORECASE),
    "output": re.compile(r"\bOUTPUTFORMAT\s+'([^']+)'", re.IGNORECASE),
    "location": re.compile(r"\bLOCATION\s+'([^']+)'", re.IGNORECASE),
}
_PROPERTY = re.compile(r"'([^']+)'\s*=\s*'([^']*)'")
#: What Glue answers beyond the TableInput we send (read back, then dropped for comparison).
_TABLE_INPUT_KEYS = ("Name", "Description", "TableType", "Parameters", "PartitionKeys", "StorageDescriptor")


def _parenthesized(text: str, open_at: int) -> tuple[str, int]:
    """The text inside the parenthesis opening at `open_at`, and the index after its closing one."""
    depth = 0
    for index in range(open_at, len(text)):
        if text[index] in "(<":
            depth += 1
        elif text[index] in ")>":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:index], index + 1
    raise InputError("unbalanced parentheses in the CloudTrail DDL")


def _top_level(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(body):
        if char in "(<":
            depth += 1
        elif char in ")>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return [p.strip() for p in parts if p.strip()]


def _columns(body: str) -> list[dict[str, str]]:
    columns = []
    for definition in _top_level(body):
        name, hive_type = definition.split(None, 1)
        columns.append({"Name": name.strip("`").lower(), "Type": re.sub(r"\s+", "", hive_type).lower()})
    return columns


def glue_table_input(ddl: str) -> tuple[str, dict[str, Any]]:
    """(database, Glue TableInput) of a CREATE EXTERNAL TABLE statement like queries/ddl/cloudtrail.sql."""
    head = _CREATE.search(ddl)
    if head is None:
        raise InputError("the DDL is not a CREATE EXTERNAL TABLE IF NOT EXISTS db.table (...) statement")
    body, end = _parenthesized(ddl, head.end() - 1)
    rest = ddl[end:]
    found = {key: pattern.search(rest) for key, pattern in _QUOTED.items()}
    missing = [key for key, match in found.items() if match is None]
    if missing:
        raise InputError(f"the DDL lacks {', '.join(missing)}")
    values = {key: match.group(1) for key, match in found.items() if match is not None}
    partitioned = re.search(r"PARTITIONED\s+BY\s*\(", rest, re.IGNORECASE)
    partitions = _columns(_parenthesized(rest, partitioned.end() - 1)[0]) if partitioned else []
    properties = re.search(r"TBLPROPERTIES\s*\(", rest, re.IGNORECASE)
    parameters = dict(_PROPERTY.findall(_parenthesized(rest, properties.end() - 1)[0])) if properties else {}
    return head.group(1), {
        "Name": head.group(2), "Description": values["Description"], "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", **parameters},
        "PartitionKeys": partitions,
        "StorageDescriptor": {
            "Columns": _columns(body), "Location": values["location"], "InputFormat": values["input"],
            "OutputFormat": values["output"], "SerdeInfo": {"SerializationLibrary": values["serde"]}},
    }


def table_input_for(target: Target) -> dict[str, Any]:
    database, table = target.id.split(".", 1)
    ddl = render_ddl(bucket=str(target.data["bucket"]), accounts=list(target.data["accounts"]),
                     regions=list(target.data["regions"]), database=database, table=table,
                     logs_prefix=str(target.data.get("logs_prefix") or "AWSLogs/"),
                     start_day=str(target.data.get("start_day") or "2020/01/01"))
    return glue_table_input(ddl)[1]


class CreateAthenaTable(Action):
    name: ClassVar[str] = "create_athena_table"
    summary: ClassVar[str] = "Create the CloudTrail table (partition projection) from queries/ddl in the Glue catalog."
    permissions: ClassVar[tuple[str, ...]] = (
        "glue:GetDatabase", "glue:CreateDatabase", "glue:DeleteDatabase",
        "glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("glue_table",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        glue = ctx.client("glue", target.region)
        database, table = target.id.split(".", 1)
        try:
            glue.get_database(Name=database)
        except ClientError as exc:
            if error_code(exc) == "EntityNotFoundException":
                return {"database_exists": False, "table": None}
            raise
        try:
            found = glue.get_table(DatabaseName=database, Name=table)["Table"]
        except ClientError as exc:
            if error_code(exc) == "EntityNotFoundException":
                return {"database_exists": True, "table": None}
            raise
        return {"database_exists": True, "table": {k: found[k] for k in _TABLE_INPUT_KEYS if k in found}}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        table = state["table"]
        if not table:
            return False
        wanted = table_input_for(target)
        return bool((table.get("Parameters") or {}).get("projection.enabled") == "true"
                    and table.get("StorageDescriptor", {}).get("Location") == wanted["StorageDescriptor"]["Location"])

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        verb = "replace the definition of" if before["table"] else "create"
        db = "" if before["database_exists"] else " (and its database)"
        return (f"{verb} table {target.id}{db} over s3://{target.data['bucket']}/, partition projection on "
                f"{len(target.data['regions'])} region(s)")

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        glue = ctx.client("glue", target.region)
        database = target.id.split(".", 1)[0]
        if not before["database_exists"]:
            glue.create_database(DatabaseInput={"Name": database, "Description": "Security logs (keyresponse)"})
        if before["table"]:
            glue.update_table(DatabaseName=database, TableInput=table_input_for(target))
        else:
            glue.create_table(DatabaseName=database, TableInput=table_input_for(target))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        glue = ctx.client("glue", target.region)
        database, table = target.id.split(".", 1)
        if before["table"]:
            glue.update_table(DatabaseName=database, TableInput=dict(before["table"]))
            return
        glue.delete_table(DatabaseName=database, Name=table)
        if not before["database_exists"]:
            glue.delete_database(Name=database)


ACTION = CreateAthenaTable()
