"""The HTML report renders in a real browser: headless Chromium draws a page that is not blank.

Needs the system Chromium (`make test` installs Debian's `chromium`) and the `playwright` package. The PNG is decoded with zlib and struct only (no Pillow).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from keyresponse.report import load_incident, render_html

CHROMIUM = "/usr/bin/chromium"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "incidents"


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw pixel bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, "unsupported PNG layout"
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytes] = []
    prior = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prior[i], prior[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        prior = line
    return width, height, [bytes(r) for r in rows] if bpp == 3 else [_rgb(r) for r in rows]


def _rgb(row: bytes) -> bytes:
    return b"".join(row[i:i + 3] for i in range(0, len(row), 4))


def test_html_report_renders_a_page_that_is_not_blank(tmp_path: Path) -> None:
    from playwright import sync_api

    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(load_incident(FIXTURES / "pivot_chain_incident.json")), encoding="utf-8")
    shot = tmp_path / "report.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800}, java_script_enabled=False)
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(page_file.as_uri())
            page.screenshot(path=str(shot))
            chart_box = page.locator("#activity svg").bounding_box()
        finally:
            browser.close()
    assert failed == []
    assert chart_box and chart_box["width"] > 600 and chart_box["height"] > 200
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 800)
    colours = {row[i:i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    ink = sum(1 for row in rows[::4] for i in range(0, len(row), 12) if row[i:i + 3] != b"\xff\xff\xff")
    assert len(colours) > 20, f"only {len(colours)} colours: the page looks blank"
    assert ink / (len(rows[::4]) * (width // 4)) > 0.05
