"""Attacker text in Markdown stays text: `keyresponse.markdown`, through a real CommonMark renderer.

The renderer is markdown-it-py (CommonMark, with raw HTML on, GFM tables and strikethrough, and line
breaks as `<br>`, as the Prefect UI's marked has them). For any string, the escaped text renders with
no tag of its own (no link, image, emphasis, heading, list, HTML) and shows exactly the string, made
one printable line. tests/keyresponse/test_markdown_in_prefect_ui.py checks the same against the
Markdown lexer of the Prefect UI itself, in Chromium.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from keyresponse.markdown import Markdown, code, code_block, printable, table, table_cells, text

RENDERER = MarkdownIt("commonmark", {"breaks": True, "html": True}).enable(["table", "strikethrough"])

HOSTILE = [
    "![x](https://attacker.example/p.gif)",
    "<img src=https://attacker.example/p.gif>",
    "[click](javascript:alert(1))",
    "<https://attacker.example>",
    "https://attacker.example/x www.attacker.example ops@attacker.example",
    "key`with`backticks|and|pipes",
    "``` fenced",
    "# heading", "- item", "+ item", "1. item", "> quote", "---", "===", "***", "    indented code",
    "*em* _em_ **strong** ~~del~~",
    "&lt;b&gt; &#58; &amp;",
    "line one\nline two\r\nline three\u2028four",
    "right-to-left \u202eevil\u202c, zero\u200bwidth, bell\x07",
    "cell | break",
    "[ref]: https://attacker.example",
    "trailing backslash \\",
]

#: Text that mixes what Markdown and HTML are made of with anything else.
SOURCES = st.text(alphabet=st.one_of(st.sampled_from(list("\\`*_[]()!<>|~&#+-=.:@/ \n\tw0123456789abch;")),
                                     st.characters()), max_size=60)


class Html(HTMLParser):
    """The tags and the text of rendered HTML (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.data: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    @property
    def text(self) -> str:
        return "".join(self.data)


def shown(value: str) -> str:
    """What the escaped value must show: one printable line (its ends trimmed, as HTML shows them)."""
    return printable(value).strip()


def rendered(markdown: str) -> Html:
    return Html(RENDERER.render(markdown))


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_text_renders_as_itself_and_nothing_else(value: str) -> None:
    for before, after, allowed in (("", "", {"p"}), ("before ", " after", {"p"}), ("- ", "", {"ul", "li"}),
                                   ("> ", "", {"blockquote", "p"})):
        html = rendered(f"{before}{text(value)}{after}")
        assert set(html.tags) <= allowed, (value, before, html.tags)
        prefix = "before " if before == "before " else ""
        assert html.text.strip() == f"{prefix}{shown(value)}{after}".strip(), (value, before)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SOURCES)
@example("![x](https://attacker.example/p.gif)")
@example("a`b|c`d")
def test_any_string_renders_with_no_tag_link_or_image_and_shows_exactly_itself(value: str) -> None:
    alone = rendered(text(value))
    assert set(alone.tags) <= {"p"}, (value, text(value), alone.tags)
    assert alone.text.strip() == shown(value)
    inline = rendered(f"before {text(value)} after")
    assert inline.tags == ["p"], (value, inline.tags)
    assert inline.text.strip() == f"before {printable(value).strip(' ')} after".strip()
    cell = rendered(table(["name"], [[value]]))
    assert set(cell.tags) <= {"table", "thead", "tbody", "tr", "th", "td"}, (value, cell.tags)
    assert cell.tags.count("td") <= 1 and cell.text.replace("\n", "").removeprefix("name").strip() == shown(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SOURCES, min_size=2, max_size=4))
def test_escaped_pieces_side_by_side_stay_text(values: list[str]) -> None:
    """`www` + `.evil.com`, `https` + `://…`, `a` + `@b.com`, `x_` + `y`: a piece cannot complete another."""
    joined = "".join(text(v) for v in values)
    html = rendered(f"x {joined}")
    assert html.tags == ["p"], (values, joined, html.tags)
    assert html.text.strip() == f"x {''.join(printable(v).strip(' ') for v in values)}".strip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SOURCES)
@example("`")
@example(" a ")
@example("a|b")
def test_a_code_span_shows_exactly_the_value(value: str) -> None:
    html = rendered(f"x {code(value)} y")
    assert set(html.tags) <= {"p", "code"} and html.tags.count("code") <= 1, (value, code(value), html.tags)
    assert html.text.strip() == f"x {printable(value).strip(' ') if 'code' not in html.tags else printable(value)} y"


@settings(max_examples=200, deadline=None)
@given(SOURCES)
def test_a_code_block_cannot_be_closed_by_its_content(value: str) -> None:
    html = rendered(f"{code_block(value, 'json')}\n\n**after**")
    assert html.tags[:2] == ["pre", "code"] and html.tags[2:] == ["p", "strong"], (value, html.tags)


def test_ids_stay_readable() -> None:
    for value in ("AKIAIOSFODNN7EXAMPLE", "arn:aws:iam::123456789012:role/ops-admin", "203.0.113.9",
                  "2026-11-19 19:00:22 UTC", "deactivate_access_key", "i-0abc123def456 @us-east-1"):
        assert text(value) == value
    assert code("ops`admin") == "``ops`admin``" and code("`x") == "`` `x ``"
    assert text("ana@example.com") == "ana\\@example.com" and text("https://x") == "https\\://x"


def test_tables_and_artifact_rows_escape_every_string_cell() -> None:
    assert table(["a", "b"], [["x|y", code("k")]]) == "| a | b |\n|---|---|\n| x\\|y | `k` |"
    assert table_cells([{"user": "![x](y)", "age_days": 3, "is_new": True}]) == [
        {"user": "\\!\\[x\\]\\(y\\)", "age_days": 3, "is_new": True}]
    assert isinstance(text("x"), Markdown) and isinstance(code("x"), Markdown)


def test_every_markdown_the_project_builds_goes_through_the_one_home() -> None:
    """No module but keyresponse.markdown escapes Markdown itself: the old helpers are gone."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [p for folder in ("keyresponse", "flows", "tasks") for p in (root / folder).rglob("*.py")]
    offenders = [str(p.relative_to(root)) for p in sources if p.name != "markdown.py"
                 and any(marker in p.read_text() for marker in ('replace("|", "\\\\|")', "def md_escape", "def _cell("))]
    assert offenders == []
