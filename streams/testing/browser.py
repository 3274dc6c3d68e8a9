"""Debian's Chromium for the page's browser tests and benchmark: never a downloaded browser.

``apt-get install chromium fonts-wqy-microhei`` provides it; playwright drives it by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
#: No sandbox (containers run as root), no GPU, and nothing that reaches the network by itself.
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)


def launch(playwright: Any) -> Any:
    """A headless Chromium browser from a started ``sync_playwright()``."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(ARGS))
