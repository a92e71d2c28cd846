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
