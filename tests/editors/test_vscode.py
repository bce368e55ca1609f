"""The VS Code extension in a real VS Code: code-server 4.100.3 (VS Code 1.100.3) in headless Chromium.

The .vsix that `npm run package` built is installed with `code-server --install-extension`; the extension
finds mercury-lsp in the workspace's .venv, the server starts the engine with the bundled model, and
Playwright types into the editor as a user would. editors/ci.sh installs code-server, Chromium and
Playwright first; MERCURY_UPDATE_SCREENSHOTS=1 also copies the pictures to editors/vscode/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from code_server import VERSION, CodeServer, find_binary
from workbench import CHROMIUM, CHROMIUM_ARGS, Workbench, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VSIX = REPO / "editors" / "vscode" / "mercury-lsp.vsix"
SCREENSHOTS = REPO / "editors" / "vscode" / "screenshots"
# The environment whose scripts include mercury-lsp: the workspace's .venv will point at it.
ENVIRONMENT = Path(sys.executable).parent.parent

SOURCE = '''def mean(values):
    total = 0
    for value in values:
        total += value
    return total / len(values)


def count_words(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def read_first_line(path):
    with open(path) as handle:
'''
LAST_LINE = SOURCE.count("\n")  # 16, "    with open(path) as handle:"
BLOCK_INDENT = " " * 8

USER_SETTINGS_PATH = "/nonexistent/user-settings/mercury-lsp"
# A start takes the engine seconds (the model loads), and a loaded 2-core machine makes a first request slow.
GHOST_TIMEOUT = 150.0


def missing_prerequisite() -> str | None:
    """Why this test cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if find_binary() is None:
        return f"no code-server (editors/ci.sh installs code-server@{VERSION}; or set MERCURY_CODE_SERVER)"
    if not VSIX.is_file():
        return f"no {VSIX.relative_to(REPO)} (npm ci && npm run package in editors/vscode)"
    if not (ENVIRONMENT / "bin" / "mercury-lsp").is_file():
        return f"no mercury-lsp in {ENVIRONMENT}"
    return None


@dataclass
class Session:
    code_server: CodeServer
    workbench: Workbench
    workspace: Path
    artifacts: Path
    failed: bool = False

    def log(self) -> list[Any]:
        return self.code_server.extension_log_entries("Mercury")

    def inline_results(self) -> list[list[dict[str, Any]]]:
        """The items of each inlineCompletion response, in order, from the trace in the Mercury log."""
        results = []
        for entry in self.log():
            if entry.text.startswith("Received response 'textDocument/inlineCompletion"):
                body = entry.text.partition("Result: ")[2]
                answer = json.loads(body) if body.strip() not in ("", "No result returned.") else None
                items = answer["items"] if isinstance(answer, dict) else (answer or [])
                results.append(items)
        return results

    def answer_after_ready(self, since: int) -> tuple[list[dict[str, Any]]] | None:
        """The items of the answer to the first inline request VS Code sent after the engine reported ready,
        among the Mercury log's entries from `since` on, as a 1-tuple; None while there is none."""
        ready = False
        asked: str | None = None
        for entry in self.log()[since:]:
            text = entry.text
            if text.startswith("Received notification 'mercury/status'") and '"state": "ready"' in text:
                ready = True
            elif ready and asked is None and text.startswith("Sending request 'textDocument/inlineCompletion"):
                asked = text.split("'")[1]
            elif asked and text.startswith(f"Received response '{asked}'") and "Request failed" not in text:
                answer = json.loads(text.partition("Result: ")[2])
                return (answer["items"] if isinstance(answer, dict) else answer,)
        return None

    def ready_since(self, since: int) -> bool:
        """Whether the server reported `ready` among the Mercury log's entries from `since` on."""
        return any(entry.text.startswith("Received notification 'mercury/status'") and '"state": "ready"' in entry.text
                   for entry in self.log()[since:])

    def warnings(self) -> list[str]:
        return [entry.text for entry in self.log() if entry.level == "warning"]

    def starts(self) -> list[str]:
        """The `Starting mercury-lsp from …` lines of the Mercury log."""
        return [entry.text for entry in self.log() if entry.text.startswith("Starting mercury-lsp from ")]


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    problem = missing_prerequisite()
    if problem is not None:
        if os.environ.get("MERCURY_REQUIRE_VSCODE_TEST") == "1":
            pytest.fail(f"editors/ci.sh installed the real-VS-Code test's prerequisites, yet: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="mercury-code-server-"))
    artifacts = Path(os.environ.get("MERCURY_ARTIFACTS_DIR") or home / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    workspace = home / "project"
    workspace.mkdir()
    (workspace / ".venv").symlink_to(ENVIRONMENT, target_is_directory=True)
    (workspace / "stats.py").write_text(SOURCE)
    # The engine the server starts gets a runtime folder of its own, stopped at the end.
    env = {**os.environ, "MERCURY_RUNTIME_DIR": str(home / "runtime")}
    server = CodeServer(find_binary(), home, env)  # type: ignore[arg-type]
    assert server.version() == VERSION, f"code-server {server.version()} is not the tested {VERSION}"
    # A server path in the User settings of a remote window is ignored from the start (VS Code drops it at
    # the first settings change): were it used, this one would fail every start.
    server.write_user_settings({"mercury.trace.server": "verbose", "mercury.device": "cpu",
                                "mercury.server.path": USER_SETTINGS_PATH})
    server.install_extension(VSIX)
    server.start()
    try:
        with sync_playwright() as playwright:
            # A fresh profile of its own (Playwright passes it as --user-data-dir).
            # XDG_CONFIG_HOME: Chromium's crash reports go there, not into ~/.config/chromium.
            browser = playwright.chromium.launch_persistent_context(
                home / "chromium", executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 800}, env={**env, "XDG_CONFIG_HOME": str(home / "config")})
            workbench = Workbench(browser.pages[0] if browser.pages else browser.new_page(), artifacts)
            workbench.open(f"{server.url}/?folder={workspace}")
            session = Session(server, workbench, workspace, artifacts)
            yield session
            browser.close()
    finally:
        server.stop()
        subprocess.run([str(ENVIRONMENT / "bin" / "mercury-engine"), "stop"], env=env, capture_output=True, timeout=60)
    if not session.failed and artifacts.is_relative_to(home):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def pictures_on_failure(request: pytest.FixtureRequest, session: Session) -> Iterator[None]:
    """On a failure: a screenshot and the Mercury log beside it, and where they are."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        session.failed = True
        name = re.sub(r"\W+", "-", request.node.name)
        session.workbench.screenshot(f"failed-{name}")
        log = session.code_server.extension_log("Mercury")
        if log is not None:
            shutil.copy(log, session.artifacts / "Mercury.log")
        shutil.copy(session.code_server.log_file, session.artifacts / "code-server.log")
        print(f"screenshots and logs in {session.artifacts}")


def publish(session: Session, *names: str) -> None:
    """With MERCURY_UPDATE_SCREENSHOTS=1, copy the good pictures to editors/vscode/screenshots/."""
    if os.environ.get("MERCURY_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        for name in names:
            shutil.copy(session.artifacts / f"{name}.png", SCREENSHOTS / f"{name}.png")


def suggestion_shown(session: Session, ghost: str) -> str:
    """The server's text for the ghost text on screen: the newest non-empty inline answer in the trace."""
    answers = [items for items in session.inline_results() if items]
    assert answers, "the trace shows no inline completion answer with an item"
    text = answers[-1][0]["insertText"]
    first_ghost_line = ghost.split("\n")[0]
    assert text.split("\n")[0] == first_ghost_line, f"ghost text {ghost!r} is not the server's {text!r}"
    return text


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def saved_lines(session: Session) -> list[str]:
    return (session.workspace / "stats.py").read_text().split("\n")


def last_code_line(session: Session) -> int:
    """The 1-based number of the saved file's last line that is not blank."""
    lines = saved_lines(session)
    return max(number for number, line in enumerate(lines, 1) if line.strip())


def new_line_after(session: Session, line: int) -> None:
    """The cursor on a new line after `line`, with that line's indentation (editor.autoIndent keep)."""
    session.workbench.go_to_line(line)
    session.workbench.page.keyboard.press("Enter")


def test_ghost_text_appears_while_typing_and_tab_accepts_it_indented(session: Session) -> None:
    bench = session.workbench
    # The warning about the User settings' server path is tested below; its notification would hide code.
    wait_until("the warning about the User settings", lambda: session.warnings(), 60)
    bench.run_command("Notifications: Clear All Notifications")
    bench.open_file("stats.py")
    new_line_after(session, LAST_LINE)
    # The first keys reach a server whose engine is still loading: the answer is empty, and the extension
    # must ask again when the engine is ready. No key is pressed after these.
    bench.type("    ret")
    status_when_typed = bench.status()
    ghost = bench.wait_for_ghost_text(GHOST_TIMEOUT)
    bench.screenshot("ghost-text")
    text = suggestion_shown(session, ghost)
    assert bench.cursor_position() == f"Ln {LAST_LINE + 1}, Col {len(BLOCK_INDENT) + 4}"

    bench.page.keyboard.press("Tab")
    inserted = f"{BLOCK_INDENT}ret{text}"
    # The accepted text is in the buffer once the cursor stands at its end.
    end = f"Ln {LAST_LINE + 1 + text.count(chr(10))}, Col {len(inserted.split(chr(10))[-1]) + 1}"
    wait_until(f"the cursor at the end of the accepted text ({end})", lambda: bench.cursor_position() == end, 10,
               seen=bench.cursor_position)
    assert bench.ghost_text() == ""
    bench.save(session.workspace / "stats.py")
    bench.screenshot("after-accept")
    assert (session.workspace / "stats.py").read_text() == f"{SOURCE}{inserted}\n"
    for line in inserted.split("\n")[1:]:
        if line.strip():
            assert indentation(line) % 4 == 0 and indentation(line) >= 4, f"badly indented {line!r} in {inserted!r}"

    # The status item followed the engine: loading, ready, then the latency of a completion.
    latency = wait_until("a completion's latency in the status bar",
                         lambda: re.fullmatch(r"codicon-zap\|Mercury · \d+ ms( · [\d.]+ tok/s)?", bench.status()), 30,
                         seen=bench.status_history)
    history = bench.status_history()
    print(f"status when the typing stopped: {status_when_typed!r}; history: {history}")
    assert "codicon-sync|Mercury: loading" in history
    assert "codicon-zap|Mercury" in history
    assert history.index("codicon-sync|Mercury: loading") < history.index("codicon-zap|Mercury") \
        < history.index(latency.group(0))
    bench.screenshot("status-bar", bench.page.locator(".part.statusbar"))
    publish(session, "ghost-text", "after-accept", "status-bar")


def test_partial_accept_takes_the_next_word(session: Session) -> None:
    bench = session.workbench
    line = last_code_line(session)
    new_line_after(session, line)
    bench.type("pri")
    ghost = bench.wait_for_ghost_text(GHOST_TIMEOUT)
    text = suggestion_shown(session, ghost)
    # VS Code's own Accept Next Word (Ctrl+Right while a suggestion shows): the item must allow it.
    before = bench.cursor_position()
    bench.page.keyboard.press("Control+ArrowRight")
    wait_until("the cursor to move past the accepted word", lambda: bench.cursor_position() != before, 10)
    bench.save(session.workspace / "stats.py")
    typed = saved_lines(session)[line].lstrip(" ")
    assert typed.startswith("pri"), f"line {line + 1} is {typed!r}"
    taken = typed[len("pri"):]
    assert taken and text.startswith(taken), f"accepted {taken!r} of {text!r}"
    if taken != text.split("\n")[0]:
        rest = wait_until("the rest of the suggestion", bench.ghost_text, 10)
        assert text.startswith(taken + rest.split("\n")[0]), f"{taken!r} + ghost {rest!r} is not {text!r}"
    bench.page.keyboard.press("Escape")
    bench.save(session.workspace / "stats.py")


def test_the_status_item_switches_completions_off_and_on(session: Session) -> None:
    bench = session.workbench
    bench.status_item.click()
    wait_until("completions off in the status bar", lambda: bench.status() == "codicon-circle-slash|Mercury", 15)
    wait_until("mercury.enabled false in the User settings",
               lambda: session.code_server.user_settings().get("mercury.enabled") is False, 15)
    new_line_after(session, last_code_line(session))
    bench.type("for")
    time.sleep(4)
    assert bench.ghost_text() == "", "a suggestion showed while completions were off"

    # Switched on again with the cursor where it was: with no other key, the extension wakes the engine and,
    # once it is ready, VS Code asks again; what the model answers there is shown.
    since = len(session.log())
    bench.status_item.click()
    wait_until("mercury.enabled true in the User settings",
               lambda: session.code_server.user_settings().get("mercury.enabled") is True, 15)
    (items,) = wait_until("VS Code to ask again once the engine is ready", lambda: session.answer_after_ready(since),
                          GHOST_TIMEOUT)
    if items:
        bench.wait_for_ghost_text(30)
    wait_until("the status bar on again", lambda: bench.status().startswith("codicon-zap|Mercury"), 30,
               seen=bench.status_history)
    bench.page.keyboard.press("Escape")
    bench.save(session.workspace / "stats.py")


def test_the_server_path_from_the_remote_settings_survives_settings_changes_and_restart(session: Session) -> None:
    bench = session.workbench
    executable = ENVIRONMENT / "bin" / "mercury-lsp"
    assert session.starts() == [f"Starting mercury-lsp from the workspace's .venv: {session.workspace}/.venv/bin/mercury-lsp"]
    assert ("mercury.server.path is set in your User settings, which this remote window reads only until a setting "
            "changes; set it in the Remote settings (Preferences: Open Remote Settings) instead. It is ignored until "
            "then.") in session.warnings()
    # Where it belongs in a remote window: set there, it restarts the server with it...
    bench.set_remote_setting("mercury.server.path", "Server: Path", str(executable))
    from_setting = f"Starting mercury-lsp from mercury.server.path: {executable}"
    wait_until("a restart with mercury.server.path", lambda: session.starts()[-1:] == [from_setting], 30,
               seen=session.starts)
    # The status item shows the old server's state until the new one reports: wait for the new one's `ready`.
    started = max(index for index, entry in enumerate(session.log()) if entry.text == from_setting)
    wait_until("the restarted server ready", lambda: session.ready_since(started), GHOST_TIMEOUT)
    # ...and after settings change (here the User settings lost theirs), Restart still finds it.
    # Off, then on again. A click runs the command the item shows (while loading it shows the log), so each click
    # waits until the item shows the state the click turns around: on (zap) before turning off, off before on.
    for wanted, shown in ((False, "codicon-zap|"), (True, "codicon-circle-slash|")):
        wait_until(f"the status item showing {shown}", lambda shown=shown: bench.status().startswith(shown), 60,
                   seen=bench.status_history)
        bench.status_item.click()
        wait_until(f"mercury.enabled {wanted} in the User settings",
                   lambda wanted=wanted: session.code_server.user_settings().get("mercury.enabled") is wanted, 15)
    bench.run_command("Mercury: Restart Language Server")
    wait_until("a second start with mercury.server.path", lambda: session.starts().count(from_setting) == 2, 30,
               seen=session.starts)
    bench.open_file("stats.py")
    new_line_after(session, 9)  # "    counts = {}"
    bench.type("ret")
    bench.wait_for_ghost_text(GHOST_TIMEOUT)
    wait_until("a latency in the status bar", lambda: " ms" in bench.status() or "cached" in bench.status(), 30,
               seen=bench.status_history)
    bench.page.keyboard.press("Escape")


def test_the_output_channel_shows_the_traffic_and_no_errors(session: Session) -> None:
    entries = session.log()
    texts = [entry.text for entry in entries]
    assert any(text.startswith("Sending request 'textDocument/inlineCompletion") for text in texts), \
        "mercury.trace.server shows no inline completion request"
    assert any(text.startswith("Received notification 'mercury/status'") for text in texts)
    errors = [entry.text for entry in entries if entry.level == "error"]
    assert errors == [], "error lines in the Mercury output channel:\n" + "\n".join(errors)
    # The server's own records keep their level: pygls' warnings (a cancel that crossed its answer) are warnings.
    pygls = [entry for entry in entries if entry.text.startswith("pygls.")]
    assert all(entry.level in ("warning", "info", "debug") for entry in pygls), pygls
