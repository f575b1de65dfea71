"""The query files: load, check, bind.

A query is one file, `queries/<name>.sql`: a YAML header in a leading block comment declares
`name` (= the file stem), `summary`, `params` (name → {type, example}) and `columns` (the output,
in order); the body is Athena (Trino) SQL over one logical table, `cloudtrail`, with `:name`
placeholders. Values are always bound, never formatted into the SQL:

* DuckDB: `for_duckdb(sql)` transpiles with sqlglot (athena → duckdb); `:name` becomes `$name`
  and the engine binds a dict.
* Athena: `for_athena_qmark(sql, params)` swaps each `:name` for `?` in the original text and
  returns the Athena execution parameters, in order, as SQL literal text.

Param types:

    varchar          a string
    array(varchar)   a list of strings (an `ARRAY[...]` literal on Athena)
    day              a partition day, `yyyy/MM/dd` (a `date` or `YYYY-MM-DD` is accepted)
    timestamp        an instant, normalised to CloudTrail's `YYYY-MM-DDTHH:MM:SSZ`, so that a
                     string comparison with `eventtime` is a time comparison
    bigint           an integer
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from keyresponse.errors import InputError, KeyResponseError
from keyresponse.files import data_folder

if TYPE_CHECKING:
    from sqlglot import Token

#: Where the query files live: the top-level `queries/` package (package data in a wheel).
QUERIES_DIR = data_folder("queries", pattern="*.sql")
#: The logical table every query reads.
TABLE = "cloudtrail"

PARAM_TYPES = ("varchar", "array(varchar)", "day", "timestamp", "bigint")
#: Column types; `json` columns hold JSON text in SQL and arrive parsed in Python.
COLUMN_TYPES = ("varchar", "bigint", "boolean", "json")

_HEADER = re.compile(r"\A\s*/\*(?P<header>.*?)\*/", re.DOTALL)
_DAY = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}$", re.ASCII)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class QueryContractError(KeyResponseError):
    """A query file breaks the contract (header, placeholders) or its result does not match it."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    example: Any = None
    description: str = ""
    #: An optional param declares `default:`; a caller may leave it out and gets that value.
    default: Any = None
    optional: bool = False


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "varchar"
    description: str = ""


@dataclass(frozen=True)
class Query:
    """One query file: its declared contract and its Athena SQL body."""

    name: str
    summary: str
    params: Mapping[str, Param]
    columns: tuple[Column, ...]
    body: str
    path: Path | None = None
    adhoc: bool = field(default=False, compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def placeholders(self) -> list[str]:
        """The `:name` placeholders of the body, in textual order (repeats included)."""
        return [name for _, _, name in _placeholder_spans(self.body)]

    def example_params(self) -> dict[str, object]:
        return {p.name: p.example for p in self.params.values()}

    def bind(self, values: Mapping[str, object] | None) -> dict[str, object]:
        """Check `values` against the declared params and normalise them; InputError if they do not fit."""
        values = dict(values or {})
        if self.adhoc:
            missing = sorted(set(self.placeholders) - set(values))
            if missing:
                raise InputError(f"query needs params {missing}")
            return {k: values[k] for k in dict.fromkeys(self.placeholders)}
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise InputError(f"query {self.name!r} has no params {unknown}; it takes {sorted(self.params)}")
        missing = sorted(name for name, param in self.params.items() if name not in values and not param.optional)
        if missing:
            raise InputError(f"query {self.name!r} needs params {missing}")
        return {name: coerce_param(param, values.get(name, param.default))
                for name, param in self.params.items()}


# -- loading -------------------------------------------------------------------------------------


def parse_query(text: str, *, path: Path | None = None) -> Query:
    """Parse a query file's text. QueryContractError if the header is missing or malformed."""
    where = str(path) if path else "query"
    match = _HEADER.match(text)
    if not match:
        raise QueryContractError(f"{where}: no YAML header in a leading /* ... */ comment")
    try:
        header = yaml.safe_load(match.group("header"))
    except yaml.YAMLError as exc:
        raise QueryContractError(f"{where}: the header is not YAML: {exc}") from exc
    if not isinstance(header, dict):
        raise QueryContractError(f"{where}: the header must be a mapping")
    for key in ("name", "summary", "params", "columns"):
        if key not in header:
            raise QueryContractError(f"{where}: the header has no {key!r}")
    name = str(header["name"])
    if not _NAME.match(name):
        raise QueryContractError(f"{where}: name {name!r} is not snake_case")
    params: dict[str, Param] = {}
    for pname, spec in (header["params"] or {}).items():
        spec = spec or {}
        ptype = str(spec.get("type", ""))
        if ptype not in PARAM_TYPES:
            raise QueryContractError(f"{where}: param {pname!r} has type {ptype!r}; expected one of {PARAM_TYPES}")
        params[str(pname)] = Param(str(pname), ptype, spec.get("example"), str(spec.get("description", "")),
                                   spec.get("default"), "default" in spec)
    columns: list[Column] = []
    for cname, spec in (header["columns"] or {}).items():
        spec = spec or {}
        ctype = str(spec.get("type", "varchar"))
        if ctype not in COLUMN_TYPES:
            raise QueryContractError(f"{where}: column {cname!r} has type {ctype!r}; expected one of {COLUMN_TYPES}")
        columns.append(Column(str(cname), ctype, str(spec.get("description", ""))))
    if not columns:
        raise QueryContractError(f"{where}: the header declares no columns")
    body = text[match.end():].strip()
    query = Query(name, str(header["summary"]).strip(), params, tuple(columns), body, path)
    used, declared = set(query.placeholders), set(params)
    if used != declared:
        raise QueryContractError(
            f"{where}: placeholders {sorted(used)} do not match declared params {sorted(declared)}"
        )
    return query


def load_query(path: Path) -> Query:
    query = parse_query(path.read_text(encoding="utf-8"), path=path)
    if query.name != path.stem:
        raise QueryContractError(f"{path}: name {query.name!r} is not the file stem {path.stem!r}")
    return query


@lru_cache(maxsize=8)
def registry(directory: Path = QUERIES_DIR) -> Mapping[str, Query]:
    """Every query file of `directory` (not its subfolders, so not `ddl/`), by name; an empty folder is an error."""
    found = {p.stem: load_query(p) for p in sorted(directory.glob("*.sql"))}
    if not found:
        raise QueryContractError(f"no query files (*.sql) in {directory}")
    return found


def get_query(name_or_sql: str | Query, directory: Path = QUERIES_DIR) -> Query:
    """A registered query by name, a `Query` as is, or ad-hoc SQL text (with or without a header)."""
    if isinstance(name_or_sql, Query):
        return name_or_sql
    queries = registry(directory)
    if name_or_sql in queries:
        return queries[name_or_sql]
    if _NAME.match(name_or_sql):
        raise InputError(f"no query named {name_or_sql!r}; known: {', '.join(sorted(queries))}")
    if _HEADER.match(name_or_sql):
        return parse_query(name_or_sql)
    return Query("adhoc", "ad-hoc SQL", {}, (), name_or_sql.strip(), adhoc=True)


# -- params --------------------------------------------------------------------------------------


def coerce_param(param: Param, value: object) -> str | int | list[str]:
    """The normalised value of one param; InputError when it does not fit the declared type."""
    bad = f"param {param.name!r} ({param.type})"
    if param.type == "varchar":
        if not isinstance(value, str):
            raise InputError(f"{bad} must be a string, got {type(value).__name__}")
        return value
    if param.type == "array(varchar)":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InputError(f"{bad} must be a list of strings, got {type(value).__name__}")
        items = list(value)
        if not all(isinstance(v, str) for v in items):
            raise InputError(f"{bad} must hold only strings")
        return list(dict.fromkeys(items))
    if param.type == "bigint":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{bad} must be an integer")
        return value
    if param.type == "day":
        return _coerce_day(value, bad)
    if param.type == "timestamp":
        return _coerce_timestamp(value, bad)
    raise QueryContractError(f"{bad}: unknown type")  # pragma: no cover - parse_query checks types


def _coerce_day(value: object, bad: str) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value.strftime("%Y/%m/%d")
    if isinstance(value, str):
        text = value.strip().replace("-", "/")
        if _DAY.fullmatch(text):
            try:
                datetime.strptime(text, "%Y/%m/%d")
            except ValueError:
                pass
            else:
                return text
    raise InputError(f"{bad} must be a day like 2024/07/30, got {value!r}")


def _coerce_timestamp(value: object, bad: str) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{bad} must be ISO-8601 like 2024-07-30T21:31:21Z, got {value!r}") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise InputError(f"{bad} must be an ISO-8601 string or a datetime")
    moment: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- rendering for each engine ------------------------------------------------------------------


def _tokens(sql: str) -> list[Token]:
    import sqlglot  # here, not at import: a run that replays its journal never renders SQL (0.6 s)

    try:
        return list(sqlglot.tokenize(sql, read="athena"))
    except sqlglot.errors.TokenError as exc:
        raise QueryContractError(f"the SQL does not tokenize: {exc}") from exc


def _placeholder_spans(sql: str) -> list[tuple[int, int, str]]:
    """(start, end inclusive, name) of each `:name` outside strings and comments."""
    from sqlglot import TokenType

    tokens = _tokens(sql)
    spans = []
    for colon, word in itertools.pairwise(tokens):
        if colon.token_type == TokenType.COLON and word.start == colon.end + 1 and _NAME.match(word.text):
            spans.append((colon.start, word.end, word.text))
    return spans


def sql_literal(value: object) -> str:
    """An Athena SQL literal for a bound value (strings quoted, `'` doubled; lists as ARRAY[...])."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError("a parameter value may not contain a NUL character")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        if not value:
            return "CAST(ARRAY[] AS ARRAY(VARCHAR))"
        return "ARRAY[" + ", ".join(sql_literal(v) for v in value) + "]"
    raise InputError(f"cannot bind a {type(value).__name__}")


def for_athena_qmark(sql: str, params: Mapping[str, object]) -> tuple[str, list[str]]:
    """The SQL with every `:name` swapped for `?` (the rest byte-identical) and the execution parameters."""
    parts: list[str] = []
    values: list[str] = []
    last = 0
    for start, end, name in _placeholder_spans(sql):
        if name not in params:
            raise InputError(f"no value for param {name!r}")
        parts.append(sql[last:start])
        parts.append("?")
        values.append(sql_literal(params[name]))
        last = end + 1
    parts.append(sql[last:])
    return "".join(parts), values


def rename_table(sql: str, table: str) -> str:
    """Point `FROM cloudtrail` / `JOIN cloudtrail` at `table` (e.g. `"security"."cloudtrail_logs"`)."""
    from sqlglot import TokenType

    tokens = _tokens(sql)
    out: list[str] = []
    last = 0
    for prev, tok in itertools.pairwise(tokens):
        if (
            prev.token_type in (TokenType.FROM, TokenType.JOIN)
            and tok.token_type == TokenType.VAR
            and tok.text.lower() == TABLE
        ):
            out.append(sql[last:tok.start])
            out.append(table)
            last = tok.end + 1
    out.append(sql[last:])
    return "".join(out)


@lru_cache(maxsize=256)
def for_duckdb(sql: str) -> str:
    """The SQL transpiled for DuckDB (Trino functions → DuckDB ones, `:name` → `$name`)."""
    import sqlglot

    try:
        return str(sqlglot.transpile(sql, read="athena", write="duckdb")[0])
    except sqlglot.errors.SqlglotError as exc:
        raise QueryContractError(f"the SQL does not transpile to DuckDB: {exc}") from exc


# -- the CloudTrail table DDL --------------------------------------------------------------------

DDL_PATH = QUERIES_DIR / "ddl" / "cloudtrail.sql"
_DDL_CHECKS = {
    "database": re.compile(r"^[a-z0-9_]+$"),
    "table": re.compile(r"^[a-z0-9_]+$"),
    "bucket": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    "logs_prefix": re.compile(r"^([A-Za-z0-9!_.*()-]+/)+$"),
    "accounts": re.compile(r"^[0-9]{12}(,[0-9]{12})*$", re.ASCII),
    "regions": re.compile(r"^[a-z0-9-]+(,[a-z0-9-]+)*$"),
    "start_day": _DAY,
}


def render_ddl(
    *,
    bucket: str,
    accounts: list[str],
    regions: list[str],
    database: str = "security",
    table: str = TABLE,
    logs_prefix: str = "AWSLogs/",
    start_day: str = "2020/01/01",
) -> str:
    """The CREATE EXTERNAL TABLE statement for a trail bucket (DDL takes no parameters; values are checked)."""
    values = {
        "database": database, "table": table, "bucket": bucket, "logs_prefix": logs_prefix,
        "accounts": ",".join(accounts), "regions": ",".join(regions), "start_day": start_day,
    }
    for key, value in values.items():
        if not _DDL_CHECKS[key].fullmatch(value):  # fullmatch: `$` alone lets a trailing newline through
            raise InputError(f"DDL value {key}={value!r} is not valid")
    text = _HEADER.sub("", DDL_PATH.read_text(encoding="utf-8"), count=1).strip() + "\n"
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text
