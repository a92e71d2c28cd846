"""Where the browser tests find Debian's Chromium, how they start it, and how they are marked."""

from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-password"
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"

BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"system Chromium not found at {CHROMIUM}; install it with `bin/system-packages chromium`",
    ),
]


def logged_in_page(browser, base_url: str, *, username: str = "casey"):
    """A desktop-sized page of `browser`, logged in through the login form and landed on the home page."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    return page
