"""Attacker text in Markdown stays text in the Prefect UI's own Markdown lexer, run in Chromium.

The Prefect UI turns Markdown into tokens with marked (GFM, line breaks on) in a web worker whose
source is a string in the UI's bundle, and draws each token as a Vue node: `image` as `<img src>`,
`link` as `<a href>`, `html` as sanitised HTML, `text`/`escape`/`codespan` as text after decoding
`&lt; &gt; &quot; &#39; &amp;`. This test takes that worker's source from the installed Prefect,
runs it in headless Chromium (Debian's, as the other browser tests) and checks, for any string,
that `keyresponse.markdown.text` lexes to text tokens only and that the UI would show exactly the
string, made one printable line; and that `code` gives one code span showing it whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyresponse.markdown import code, printable, table, text

CHROMIUM = "/usr/bin/chromium"
SOURCES = st.text(alphabet=st.one_of(st.sampled_from(list("\\`*_[]()!<>|~&#+-=.:@/ \n\tw0123456789abch;")),
                                     st.characters()), max_size=60)
#: Token types the UI draws as text (their children, or their decoded `text`).
TEXT_TYPES = {"paragraph", "text", "escape", "space"}


def ui_lexer_source() -> str:
    """The Markdown worker of the Prefect UI bundle: a JS string literal holding marked and its options."""
    import prefect

    for bundle in sorted(Path(prefect.__ui_static_path__).glob("assets/*.js")):
        source = bundle.read_text(encoding="utf-8", errors="replace")
        if "self.onmessage=" not in source:
            continue
        for literal in re.finditer(r"'((?:[^'\\]|\\.)*?self\.onmessage=(?:[^'\\]|\\.)*?)'", source, re.DOTALL):
            if ".lexer(" in literal.group(1):
                return _js_string(literal.group(1))
    raise AssertionError(f"no Markdown worker in the Prefect UI bundle under {prefect.__ui_static_path__}")


def _js_string(body: str) -> str:
    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}

    def unescape(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped[0] in "ux":
            return chr(int(escaped[1:], 16))
        return simple.get(escaped, escaped)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", unescape, body, flags=re.DOTALL)


@pytest.fixture(scope="module")
def lex() -> Iterator[Any]:
    """`lex([markdown, …])` → the UI's tokens of each, from its own worker code in Chromium."""
    from playwright.sync_api import sync_playwright

    worker = ui_lexer_source()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        try:
            page = browser.new_page()
            page.evaluate("""(source) => {
                const sent = [];
                const self = {postMessage: (message) => sent.push(message), onmessage: null};
                new Function("self", source)(self);
                window.__lex = (texts) => texts.map((text) => {
                    self.onmessage({data: {id: 1, text}});
                    return sent.pop().tokens;
                });
            }""", worker)
            yield lambda texts: page.evaluate("(texts) => window.__lex(texts)", texts)
        finally:
            browser.close()


def _decoded(value: str) -> str:
    """What the UI shows of a token's text (its `f_` helper)."""
    return (value.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&#39;", "'")
            .replace("&amp;", "&"))


def shown(tokens: list[dict[str, Any]], kinds: set[str]) -> str:
    """The text the UI draws for `tokens`; every token's type goes into `kinds`."""
    out = []
    for token in tokens:
        kinds.add(token["type"])
        if token["type"] == "table":
            for cell in [*token["header"], *[c for row in token["rows"] for c in row]]:
                out.append(shown(cell["tokens"], kinds) + "\n")
        elif token.get("tokens"):
            out.append(shown(token["tokens"], kinds))
        elif token["type"] != "space":
            out.append(_decoded(token.get("text", "")))
    return "".join(out)


def test_the_raw_names_of_the_old_approval_form_were_images_and_links_in_the_ui(lex: Any) -> None:
    """What the escaping prevents, in the UI's own lexer: the same names, unescaped."""
    kinds: set[str] = set()
    for tokens in lex(["![x](https://attacker.example/p.gif)", "<img src=https://attacker.example/p.gif>",
                       "[x](javascript:alert(1))", "see www.attacker.example"]):
        shown(tokens, kinds)
    assert {"image", "html", "link"} <= kinds


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(SOURCES)
@example("![x](https://attacker.example/p.gif)")
@example("<img src=https://attacker.example/p.gif>")
@example("[x](javascript:alert(1)) www.attacker.example ops@attacker.example https://attacker.example")
@example("key`with`backticks|and|pipes")
@example("&lt;b&gt; &#58;")
def test_escaped_text_is_text_in_the_prefect_ui_lexer(lex: Any, value: str) -> None:
    alone, inline, cell, span = lex([text(value), f"before {text(value)} after", table(["name"], [[value]]),
                                     f"x {code(value)} y"])
    for tokens, expected, allowed in ((alone, printable(value).strip(), TEXT_TYPES),
                                      (inline, f"before {printable(value).strip(' ')} after", TEXT_TYPES),
                                      (cell, f"name\n{printable(value).strip()}\n", TEXT_TYPES | {"table"})):
        kinds: set[str] = set()
        assert shown(tokens, kinds).strip() == expected.strip(), (value, tokens)
        assert kinds <= allowed, (value, kinds)
    kinds = set()
    drawn = shown(span, kinds)
    assert kinds <= TEXT_TYPES | {"codespan"}, (value, kinds)
    if "codespan" in kinds:
        assert drawn == f"x {printable(value)} y", (value, span)
    else:
        assert drawn.strip() == f"x {printable(value).strip(' ')} y", (value, span)
