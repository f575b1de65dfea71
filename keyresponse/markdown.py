"""The one home for Markdown built from text we do not control.

The attacker controls every CloudTrail string (user agents, resource names, role names, error
messages…), and the Prefect UI renders Markdown in the approval's Resume dialog (the pause's
description), in markdown artifacts, in every string cell of a table artifact and in artifact
descriptions. It renders with marked (GFM, line breaks on): an image is fetched from wherever it
points, a link is clickable, raw HTML is shown after DOMPurify (which keeps `<img src=…>`), and GFM
turns bare `https://…`, `www.…` and e-mail addresses into links. So an EC2 key pair named
`![x](https://attacker/p.gif)` would make the approver's browser fetch the attacker's pixel and
hide the real name.

Every attacker-controlled string that goes into Markdown goes through this module:

    text(value)         inert Markdown text: shows exactly `printable(value)`, never a tag, link or image
    code(value)         an inline code span (ids stay readable); plain `text` when a span cannot hold it
    code_block(value)   a fenced block its content cannot close
    table(header, rows) a GFM table; every cell through `text` unless it is already `Markdown`
    table_cells(rows)   the rows of a Prefect table artifact, each string cell through `text`

How `text` works: the value is made one printable line first (`printable`: line breaks and tabs
become spaces; other control and invisible format characters, such as bidirectional overrides and
zero-width spaces, become U+FFFD so that nothing hides in a name). Then `& < >` become `&amp;
&lt; &gt;` (no tag, autolink or entity of the attacker's can form; these three and `&quot; &#39;`
are the only entities the Prefect UI decodes in text, so no other is used), and each character
that can start Markdown is backslash-escaped, which CommonMark, GFM and marked all read as the
literal character: ``\\ ` * [ ] ( ) ! | ~`` everywhere, ``_`` but between two letters or digits
(where it cannot emphasise); ``# + - = . :`` and a list number's
``.`` at the start (where they would start a heading, list or rule); ``:`` before ``//``, ``.``
after ``www`` and the ``@`` of an e-mail address (GFM's bare links). Everything else, letters,
digits and readable punctuation such as ``/ , ; ' " ? % - . : @`` elsewhere, stays as it is, so
ids, ARNs, addresses and times read as they are.

The results are `Markdown` strings: already safe, passed through as they are by `table` and by the
report's Jinja environment (keyresponse.report.render).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from pydantic import JsonValue

__all__ = ["Markdown", "code", "code_block", "printable", "table", "table_cells", "text"]


class Markdown(str):
    """Text that is already safe Markdown (built by this module, or a constant of ours)."""

    __slots__ = ()


#: Line breaks and tabs: a space (a value is one line; a table cell cannot hold a line break).
_BREAKS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
#: Unicode categories shown as U+FFFD: control, format (bidi overrides, zero-width, tags), surrogate.
_HIDDEN = frozenset({"Cc", "Cf", "Cs"})
REPLACEMENT = "\ufffd"

#: Always escaped; `_` unless between two letters or digits, where it cannot emphasise (`deactivate_access_key`).
_ALWAYS = re.compile(r"[\\`*\[\]()!|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: GFM's bare links: `www.`, `scheme://` and an e-mail address's `@` (after a character of its local part).
_BARE_LINK = re.compile(r"(?<=www)\.|:(?=//)|(?:^|(?<=[A-Za-z0-9._+\-]))@", re.IGNORECASE)
#: What would start a block at the beginning of a line: a heading, a bullet, a rule or setext line, or
#: (the digits kept) an ordered list's number; and `.`/`:` that a `www`/`https` just before would join.
_LEADING = re.compile(r"^(?:[#+\-=.:]|\d{1,9}(?=\.(?: |$)))")


def _visible(char: str, keep: frozenset[str] = frozenset()) -> str:
    if char in keep:
        return char
    if char in _BREAKS:
        return " "
    return REPLACEMENT if unicodedata.category(char) in _HIDDEN else char


def printable(value: object) -> str:
    """`value` as one line of visible text: what `text(value)` shows (its ends stripped of spaces)."""
    return "".join(_visible(c) for c in str(value).replace("\r\n", "\n"))


def text(value: object) -> Markdown:
    """`value` as inert Markdown text: rendered, it is exactly `printable(value).strip(" ")`, with no
    tag, link, image, emphasis, heading, list or table cell of its own. The one escaping function."""
    line = printable(value).strip(" ")
    escaped = re.sub(r"[&<>]", lambda m: _ENTITIES[m.group(0)], line)
    escaped = _ALWAYS.sub(r"\\\g<0>", escaped)
    escaped = _BARE_LINK.sub(r"\\\g<0>", escaped)
    if start := _LEADING.match(escaped):  # a heading, list item, rule or setext line would start here
        marker = start.group(0)
        cut = len(marker) if marker.isdigit() else 0  # `1.` starts an ordered list: escape its dot
        escaped = escaped[:cut] + "\\" + escaped[cut:]
    return Markdown(escaped)


def code(value: object) -> Markdown:
    """`value` as an inline code span (ids, names, commands to copy: no escaping shows inside it).

    The span is delimited by a backtick run longer than any in the value, padded with a space where
    the value begins or ends with a backtick (or with spaces at both ends), as CommonMark and marked
    strip exactly one. A value with `|` (a table would split the span) or with nothing visible is
    given as `text` instead: still literal, only not monospace."""
    content = printable(value)
    if not content.strip(" ") or "|" in content:
        return text(value)
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if content[0] == "`" or content[-1] == "`" or (content[0] == " " and content[-1] == " ") else ""
    return Markdown(f"{fence}{pad}{content}{pad}{fence}")


def code_block(value: object, language: str = "") -> Markdown:
    """`value` as a fenced code block: the fence is longer than any backtick run in it, so no line
    of it can close the block. Line breaks are kept; other control characters become U+FFFD."""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n")
    content = "".join(_visible(c, keep=frozenset("\n\t")) for c in lines)
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * max(3, longest + 1)
    info = re.sub(r"[^A-Za-z0-9_+-]", "", language)
    return Markdown(f"{fence}{info}\n{content}\n{fence}")


def _cell(value: object) -> Markdown:
    return value if isinstance(value, Markdown) else text("" if value is None else value)


def table(header: Sequence[object], rows: Iterable[Sequence[object]], *, align: Sequence[str] | None = None) -> Markdown:
    """A GFM table. Each cell is `text(cell)` unless it is `Markdown` already (`code(…)`, a constant
    wrapped in `Markdown`); `align` gives each column's delimiter (`---`, `--:`…)."""
    delimiters = list(align) if align is not None else ["---"] * len(header)
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(delimiters) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def table_cells(rows: Iterable[Mapping[str, JsonValue]]) -> list[dict[str, JsonValue]]:
    """Rows for `create_table_artifact`: the Prefect UI renders every string cell as Markdown, so each
    goes through `text`; numbers, booleans and None are shown as they are."""
    return [{key: text(value) if isinstance(value, str) else value for key, value in row.items()} for row in rows]
