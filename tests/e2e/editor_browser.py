"""The browser under the editor tests: Debian's Chromium, driven by Python Playwright, and one Chromium shared by
many editors (:class:`SharedBrowser`). Nothing is downloaded at run time (``playwright install`` is never run)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
INSTALL_HINT = "run `bash scripts/install_services.sh` (apt chromium + pip playwright into .venv)"


def browser_available() -> str | None:
    """Return None when Chromium and Playwright are installed, else a message with the install hint."""
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is missing: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"Python playwright is not importable ({err}): {INSTALL_HINT}"
    return None


class SharedBrowser:
    """One headless Chromium for many :class:`Editor` s (``Editor.start(shared)``), each in a context of its own (its
    cookies, storage and cache), so a test starts from a clean browser state without a launch and a login.

    Attributes:
        login_states: Playwright storage states (the session cookie) by ``(ls_url, username)``, from the first login.
    """

    def __init__(self, headless: bool = True) -> None:
        self.headless = headless
        self.login_states: dict[tuple[str, str], dict] = {}
        self._pw = self._browser = None

    def browser(self) -> Any:
        """The running Chromium; launched on first use, and again if it went away (a crashed test)."""
        if self._browser is None or not self._browser.is_connected():
            if self._pw is None:
                from playwright.sync_api import sync_playwright

                self._pw = sync_playwright().start()
            self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=self.headless,
                                                     args=CHROMIUM_ARGS)
        return self._browser

    def close(self) -> None:
        """Close the browser and stop Playwright (idempotent)."""
        for stop in (self._browser and self._browser.close, self._pw and self._pw.stop):
            try:
                if stop:
                    stop()
            except Exception:  # noqa: BLE001, S110  (already gone)
                pass
        self._browser = self._pw = None
