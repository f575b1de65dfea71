"""Driving the real Prefect UI in headless Chromium (Debian's, `make browser`; Playwright never
downloads one): the browser's settings, keeping every request on 127.0.0.1, and answering an
approval in the Resume Flow Run dialog as a person would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
# --disable-3d-apis: no WebGL, so the run page's timeline graph is not drawn (it logs "Unable to auto-detect
# a suitable renderer" and stays blank). Drawn in software it costs seconds of CPU per action on a busy
# machine and plays no part in the approval.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-3d-apis"]
#: Playwright's default wait for every action and assertion (ms); the page is local, so this is generous.
UI_TIMEOUT_MS = 15_000
APPROVAL = {"approver": "ana@example.com", "decision": "approve", "reason": "SEC-42 approved in the browser"}


@contextmanager
def local_page(foreign: list[str]) -> Iterator[Any]:
    """A page of headless Chromium (1280×900, UI_TIMEOUT_MS for every action) whose requests to any host
    but 127.0.0.1 are aborted and listed in `foreign`; the browser is closed on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            keep_traffic_local(context, foreign)
            yield context.new_page()
        finally:
            browser.close()


def keep_traffic_local(context: Any, foreign: list[str]) -> None:
    """Abort (and remember) every request the page makes to a host other than 127.0.0.1."""

    def route(route: Any) -> None:
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", route)



def sign_in(page: Any, ui_url: str, auth_string: str | None) -> None:
    """Sign in to the Prefect UI of a server with PREFECT_SERVER_API_AUTH_STRING, as a person would: its
    home page asks for the auth string (a deep link opened before signing in shows a 404 page instead).
    Once signed in, the UI keeps it for the browser session, so a second call does nothing."""
    from playwright.sync_api import expect

    if not auth_string or (page.url.startswith(ui_url) and page.evaluate("localStorage.getItem('prefect-password')")):
        return
    page.goto(f"{ui_url}/")
    password = page.get_by_placeholder("admin:pass")
    password.fill(auth_string)
    page.get_by_role("button", name="Login", exact=True).click()
    expect(password).to_be_hidden(timeout=UI_TIMEOUT_MS)


def approve_in_resume_dialog(page: Any, ui_url: str, run_id: str, key: str, *, state: str = "Paused",
                             auth_string: str | None = None) -> dict[str, Any]:
    """Open the paused run (its badge shows `state`: Paused, or Suspended for a deployment run), signing
    in first with `auth_string` when the server has one, fill the Resume Flow Run form and submit it;
    returns the resume response."""
    from playwright.sync_api import expect

    resumes: list[str] = []
    page.on("request", lambda r: resumes.append(r.url) if r.method == "POST" and r.url.endswith("/resume") else None)
    sign_in(page, ui_url, auth_string)
    page.goto(f"{ui_url}/runs/flow-run/{run_id}")
    expect(page.locator(".state-badge").first).to_have_text(state, timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="Resume", exact=True).click()

    dialog = page.get_by_role("dialog").filter(has_text="Resume Flow Run")
    expect(dialog).to_be_visible(timeout=UI_TIMEOUT_MS)
    # The plan (our Markdown description) is shown above the form.
    expect(dialog.get_by_role("cell", name="deactivate_access_key", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(dialog.get_by_text(key).first).to_be_visible(timeout=UI_TIMEOUT_MS)

    def field(label: str) -> Any:
        """One property of the JSON-schema form, found by its visible label."""
        return dialog.locator(".schema-form-property").filter(has=page.get_by_text(label, exact=True))

    field("Approver").get_by_role("textbox").fill(APPROVAL["approver"])
    # The decision is a Literal, rendered as a custom select (a button + a listbox of role=option).
    # A mouse click on the closed select does not open it in headless Chromium; the keyboard does.
    decision = field("Decision").locator(".p-select-button__control")
    decision.focus()
    decision.press("ArrowDown")
    page.get_by_role("option", name=APPROVAL["decision"], exact=True).click()
    expect(decision).to_have_text(APPROVAL["decision"], timeout=UI_TIMEOUT_MS)
    field("Reason").get_by_role("textbox").fill(APPROVAL["reason"])

    clicks = 0
    for _ in range(3):
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and r.url.endswith(f"/flow_runs/{run_id}/resume")) as resumed:
            dialog.get_by_role("button", name="Submit", exact=True).click()
            clicks += 1
        response = resumed.value
        if response.status != 503:
            break
        # The SQLite-backed server answers 503 "retry" when its database is busy (SQLITE_BUSY_SNAPSHOT
        # fails at once, without waiting): the UI shows the error and the person submits again.
        page.wait_for_timeout(1000)
    body: dict[str, Any] = response.json()
    assert response.ok and body.get("status") == "ACCEPT", f"resume rejected: {response.status} {body}"
    expect(page.get_by_text("Flow run resumed", exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(dialog).to_be_hidden(timeout=UI_TIMEOUT_MS)
    assert len(resumes) == clicks, f"the form was submitted {len(resumes)} times for {clicks} click(s)"
    return body
