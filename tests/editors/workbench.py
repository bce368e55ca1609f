"""Drive VS Code's workbench in a browser page as a user would: keys, clicks, and what the screen shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from playwright.sync_api import Locator, Page

T = TypeVar("T")

# Debian's Chromium, headless and offline (its background services cannot reach the network here).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Monaco draws the first line of an inline suggestion as decorations on the cursor's line (one span per
# colored token) and its later lines in a view zone below it.
_GHOST_TEXT = """
() => {
  const lines = [];
  const inline = [...document.querySelectorAll('.monaco-editor .view-line .ghost-text-decoration')];
  if (inline.length) lines.push(inline.map((span) => span.textContent).join(''));
  for (const zone of document.querySelectorAll('.monaco-editor .view-zones .ghost-text')) {
    const rows = zone.querySelectorAll('.view-line');
    if (rows.length) rows.forEach((row) => lines.push(row.textContent));
    else lines.push(...zone.innerText.split('\\n'));
  }
  return lines.join('\\n').replace(/\\u00a0/g, ' ');
}
"""

# Records every text the Mercury status bar item shows, with its icon, so that short-lived states count.
_RECORD_STATUS = """
() => {
  window.__mercuryStatus = [];
  const record = () => {
    const item = document.getElementById('mercury-lsp.mercury-lsp.mercury.status');
    if (!item) return;
    const icon = item.querySelector('.codicon');
    const shown = `${icon ? icon.className.replace(/codicon-modifier-spin|codicon /g, '').trim() : ''}|${item.innerText.trim()}`;
    if (window.__mercuryStatus.at(-1) !== shown) window.__mercuryStatus.push(shown);
  };
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true,
    attributes: true, attributeFilter: ['class'] });
  record();
}
"""


def wait_until(what: str, check: Callable[[], T], timeout: float, seen: Callable[[], object] | None = None) -> T:
    """Poll `check` until it returns something true; fail naming `what` (and what `seen` shows) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"; saw {seen()!r}" if seen else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(0.1)


class Workbench:
    """One VS Code window in `page`."""

    def __init__(self, page: Page, screenshots: Path) -> None:
        self.page = page
        self.screenshots = screenshots

    def open(self, url: str, timeout: float = 120.0) -> None:
        self.page.goto(url)
        self.page.wait_for_selector(".monaco-workbench .part.statusbar", timeout=timeout * 1000)
        self.page.evaluate(_RECORD_STATUS)

    # The Mercury status bar item --------------------------------------------------------------------

    @property
    def status_item(self) -> Locator:
        return self.page.locator("[id='mercury-lsp.mercury-lsp.mercury.status']")

    def status(self) -> str:
        """The status item as `icon|text`, e.g. `codicon-zap|Mercury · 42 ms · 577 tok/s`; '' before it shows."""
        history = self.status_history()
        return history[-1] if history else ""

    def status_history(self) -> list[str]:
        return list(self.page.evaluate("() => window.__mercuryStatus || []"))

    # The editor ---------------------------------------------------------------------------------------

    def open_file(self, name: str) -> None:
        """Click the file in the Explorer and wait for its editor to take the keyboard."""
        self.page.get_by_role("treeitem", name=name).click(timeout=60_000)
        self.page.locator(f".tab[data-resource-name='{name}']").wait_for(timeout=30_000)
        self.page.locator(".monaco-editor .view-lines").first.click()

    def go_to_line(self, line: int) -> None:
        """Ctrl+G LINE Enter, then End: the cursor at the end of that line."""
        self.page.keyboard.press("Control+g")
        self.page.locator(".quick-input-widget input").wait_for(timeout=10_000)
        self.page.keyboard.type(str(line))
        self.page.keyboard.press("Enter")
        self.page.keyboard.press("End")

    def type(self, text: str) -> None:
        """Type as a person does, a key every 80 ms: every key may ask for a suggestion."""
        self.page.keyboard.type(text, delay=80)

    def ghost_text(self) -> str:
        """The inline suggestion shown now ('' when none), lines joined with newlines."""
        return str(self.page.evaluate(_GHOST_TEXT))

    def wait_for_ghost_text(self, timeout: float) -> str:
        return wait_until("ghost text in the editor", self.ghost_text, timeout)

    def cursor_position(self) -> str:
        """The status bar's `Ln 17, Col 9`."""
        return self.page.locator("[id='status.editor.selection']").inner_text().strip()

    def save(self, path: Path) -> None:
        """Ctrl+S, and wait until `path`, the file in the editor, has been written."""
        before = path.stat().st_mtime_ns
        self.page.keyboard.press("Control+s")
        wait_until(f"{path.name} to be saved", lambda: path.stat().st_mtime_ns != before, 30)

    # Commands and pictures ----------------------------------------------------------------------------

    def run_command(self, title: str) -> None:
        """Run a command by its title from the Command Palette (F1)."""
        self.page.keyboard.press("F1")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(timeout=10_000)
        box.fill(f">{title}")
        self.page.locator(".quick-input-list .monaco-list-row", has_text=title).first.wait_for(timeout=10_000)
        self.page.keyboard.press("Enter")

    def set_remote_setting(self, key: str, title: str, value: str) -> None:
        """Type `value` into setting `key` (shown as `title`, e.g. "Server: Path") on the Settings editor's
        Remote tab, then close the editor."""
        self.run_command("Preferences: Open Settings (UI)")
        self.page.locator(".settings-editor").wait_for(timeout=30_000)
        self.page.locator(".settings-tabs-widget .action-label", has_text="Remote [").click()
        self.page.keyboard.press("Control+f")  # the settings search box
        self.page.keyboard.type(key)
        box = self.page.locator(".settings-editor .setting-item", has_text=title).locator("input").first
        box.wait_for(timeout=10_000)
        box.fill(value)
        self.page.keyboard.press("Tab")  # leaving the box writes the setting at once
        self.page.keyboard.press("Control+w")

    def screenshot(self, name: str, element: Locator | None = None) -> Path:
        path = self.screenshots / f"{name}.png"
        (element or self.page).screenshot(path=str(path))
        return path
