"""Debian's system Chromium driven through Playwright; Playwright never downloads a browser here.

Screenshots land in var/screenshots/ for a human to look at. A test must seed its data BEFORE it asks
for `browser`: with the browser's event loop running, the database work of a fixture that comes later
blocks the PostgreSQL test database's teardown.
"""

import os

import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a thread with
# a running loop unless told the calls are safe, which they are here (one thread, no async code).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
