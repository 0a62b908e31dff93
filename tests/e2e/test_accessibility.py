"""Every page passes axe (WCAG 2.1 A and AA rules) with no serious or critical violation,
signed in as each role that may open it, plus the sign-in page and the huddle wall on a
display token. axe-core runs offline, bundled with axe-playwright-python."""

from __future__ import annotations

import ast
import re

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Page, expect

from core.access.permissions import allowed
from core.access.users import create_user
from core.store.db import make_engine
from tests.e2e.conftest import DISPLAY_TOKEN, PASSWORD, ROOT, USERS, log_in, settle

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = {"serious", "critical"}
VIEWER = "viewer.e2e"
ROLES = {"viewer": VIEWER, **{role: name for name, role in USERS.items()}}

# Each exclusion is one rule on one element of Streamlit's own frontend; the rule still runs
# everywhere else. (rule id, CSS selector of the element, why)
EXCLUSIONS: list[tuple[str, str, str]] = [
    # st.navigation with sections: Streamlit's sidebar nav puts each section's header <div>
    # and a <ul> per section as direct children of one <ul data-testid="stSidebarNavItems">,
    # so that list has non-<li> children and the <li>s inside it lack a list parent. The
    # markup is Streamlit's; the app only passes the sections.
    ("list", '[data-testid="stSidebarNavItems"]', "Streamlit's sectioned sidebar nav"),
    ("listitem", '[data-testid="stSidebarNavItems"] li', "Streamlit's sectioned sidebar nav"),
]

# what shows once a page has rendered, where it is not a heading with the page's title
READY = {"patient": lambda page: page.get_by_role("tab", name="Timeline")}


def registry() -> list[tuple[str, ...]]:
    """dashboard/app.py's REGISTRY, read without running Streamlit."""
    tree = ast.parse((ROOT / "dashboard" / "app.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["REGISTRY"]):
            rows = ast.literal_eval(node.value)
            return [r for r in rows if (ROOT / "dashboard" / "pages" / r[1]).exists()]
    raise AssertionError("REGISTRY not found in dashboard/app.py")


RUN_AXE = """async ([options, exclusions]) => {
  const results = await axe.run(document, options);
  const excluded = (rule, node) => node.target.length === 1 && exclusions.some(
    ([id, selector]) => id === rule && document.querySelector(node.target[0])?.closest(selector));
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.filter(n => !excluded(v.id, n)).map(n => ({
      target: n.target.flat().join(" "), html: n.html, summary: n.failureSummary || ""}))}));
}"""


def blocking_violations(page: Page, where: str) -> list[str]:
    """Run axe on `page`'s document; one line per serious or critical violation."""
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    # The top document only: the app's iframes are Streamlit's own frames (st.html with
    # script: the re-login cookie, zero height, no content), which reload and detach while a
    # page reruns, so axe's cross-frame messages time out on a busy machine (seen in CI).
    if not page.evaluate("typeof axe !== 'undefined'"):  # kept across page switches
        page.evaluate(AXE_SCRIPT)
    options = {"runOnly": {"type": "tag", "values": TAGS}, "resultTypes": ["violations"],
               "iframes": False}
    violations = page.evaluate(RUN_AXE, [options, [[rule, sel] for rule, sel, _ in EXCLUSIONS]])
    return [f"{where}: {v['id']} ({v['impact']}) {n['target']} -- {v['help']}\n"
            f"    {n['html'][:200]}\n    {' '.join(n['summary'].split())[:300]}"
            for v in violations if v["impact"] in BLOCKING for n in v["nodes"]]


def check(page: Page, where: str, found: list[str]) -> None:
    lines = blocking_violations(page, where)
    print("\n".join(lines) or f"{where}: no serious or critical violation")
    found.extend(lines)


@pytest.fixture(scope="module")
def viewer_account(e2e_db: str) -> str:
    engine = make_engine(e2e_db)
    create_user(engine, VIEWER, "viewer", PASSWORD, display_name="Viewer")
    engine.dispose()
    return VIEWER


def test_sign_in_page_and_huddle_wall_pass_axe(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    found: list[str] = []
    page.goto(f"{app_url}/")
    expect(page.get_by_label("User name")).to_be_visible(timeout=60_000)
    check(page, "sign-in (signed out)", found)
    for theme in ("dark", "light"):
        page.goto(f"{app_url}/huddle?display={DISPLAY_TOKEN}&theme={theme}&interval=600")
        expect(page.locator(".tile").first).to_be_visible(timeout=60_000)
        check(page, f"huddle wall, display token, {theme}", found)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("role", list(ROLES))
def test_every_page_a_role_may_open_passes_axe(
        page: Page, app_url: str, viewer_account: str, role: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    pages = [r for r in registry() if allowed(role, r[5])]
    pages.sort(key=lambda r: r[4] == "huddle")  # the wall has no sidebar: visit it last
    log_in(page, app_url, ROLES[role])
    found: list[str] = []
    nav = page.get_by_test_id("stSidebarNav")
    for _section, _file, title, _icon, url, _action in pages:
        if url == "huddle":
            page.goto(f"{app_url}/huddle")
            expect(page.locator(".tile").first).to_be_visible(timeout=60_000)
        else:
            more = nav.get_by_test_id("stSidebarNavViewButton")
            if more.count() and "more" in more.inner_text():
                more.click()  # the sidebar lists the first few pages until asked for all
            nav.get_by_role("link", name=re.compile(rf"{re.escape(title)}$")).click()
            if url != pages[0][4]:  # the first page is the default, served at "/"
                expect(page).to_have_url(re.compile(rf"/{url}(\?|$)"))
            ready = READY[url](page) if url in READY else page.get_by_role("heading", name=title)
            expect(ready.first).to_be_visible(timeout=60_000)
        check(page, f"{title} ({role})", found)
    assert found == [], "\n".join(found)
