"""A real browser signs in through the form (Enter submits), sees the overview, opens the admin
page, and signs out; a wrong password is refused; the re-login cookie opens a new tab signed
in until the user signs out. Screenshots of the sign-in and admin pages."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import PASSWORD, log_in, settle, shot, submit_sign_in


def test_sign_in_see_the_overview_and_sign_out(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{app_url}/")
    expect(page.get_by_label("User name")).to_be_visible(timeout=60_000)
    settle(page)
    expect(page.get_by_role("heading", name="Ward overview")).to_have_count(0)
    shot(page, "sign-in")

    page.get_by_label("User name").fill("dr.e2e")
    page.get_by_label("Password", exact=True).fill("not the password")
    submit_sign_in(page, page.get_by_text("Wrong user name or password."))

    settle(page)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password", exact=True).press("Enter")  # the keyboard alone signs in
    expect(page.get_by_role("heading", name="Ward overview")).to_be_visible(timeout=60_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Signed in as")).to_be_visible()
    expect(sidebar.get_by_text("clinician", exact=False).first).to_be_visible()
    expect(sidebar.get_by_text("Enter data")).to_be_visible()
    expect(sidebar.get_by_text("Users & settings")).to_have_count(0)  # not an admin
    expect(page.get_by_test_id("stException")).to_have_count(0)
    settle(page)

    tab = page.context.new_page()  # the re-login cookie: a new tab opens signed in
    tab.goto(f"{app_url}/alerts")
    expect(tab.get_by_role("heading", name="Alert inbox")).to_be_visible(timeout=60_000)
    expect(tab.get_by_test_id("stSidebar").get_by_text("dr.e2e · clinician")).to_be_visible()
    tab.close()

    page.get_by_role("button", name="Sign out").click()
    notice = page.get_by_text("You are signed out.")
    expect(notice.first).to_be_visible(timeout=30_000)
    counts = []  # the sign-out notice shows once, never twice, even briefly
    for _ in range(60):
        counts.append(notice.count())
        page.wait_for_timeout(25)
    assert max(counts) == 1, counts
    expect(page.get_by_label("User name")).to_be_visible()
    page.goto(f"{app_url}/")  # a reload does not come back signed in
    expect(page.get_by_label("User name")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Ward overview")).to_have_count(0)


def test_admin_page_lists_users(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, app_url, "admin.e2e", "/admin")
    expect(page.get_by_role("heading", name="Users & settings")).to_be_visible(timeout=60_000)
    settle(page)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_role("button", name="Add user")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    page.wait_for_timeout(1500)  # the grid paints on a canvas after the script finishes
    shot(page, "admin-users")


def test_a_nurse_opening_the_admin_page_by_url_is_refused(page: Page, app_url: str) -> None:
    log_in(page, app_url, "nurse.e2e", "/admin")
    expect(page.get_by_text("is not open to a nurse")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Add user")).to_have_count(0)
    # but the nurse's own account page is listed, with the password form
    page.get_by_test_id("stSidebar").get_by_text("My account").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible(timeout=60_000)
    settle(page)
    expect(page.get_by_label("Current password")).to_be_visible()
    expect(page.get_by_role("button", name="Change password")).to_be_visible()
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    shot(page, "my-account")
