"""A private code-server (VS Code in the browser) on loopback, with its own settings, extensions and logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# editors/ci.sh installs this version here; MERCURY_CODE_SERVER names another binary.
VERSION = "4.100.3"
CACHED_BINARY = Path.home() / ".cache" / "mercury-ci" / f"code-server-{VERSION}" / "node_modules" / ".bin" / "code-server"

# Quiet, deterministic workbench: no tours, no telemetry, no update checks, no word-based completion popup
# covering the ghost text (the popup hides inline suggestions while it is open), and Enter keeping the line's
# indentation (Python's indent-after-colon rule applies only once its language support has loaded).
BASE_SETTINGS: dict[str, Any] = {
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "editor.wordBasedSuggestions": "off",
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    "editor.suggestOnTriggerCharacters": False,
    "editor.autoIndent": "keep",
}


def find_binary() -> Path | None:
    """MERCURY_CODE_SERVER, else the copy editors/ci.sh installs, else `code-server` on PATH."""
    named = os.environ.get("MERCURY_CODE_SERVER")
    for candidate in (named, str(CACHED_BINARY), shutil.which("code-server")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LogEntry:
    """One entry of a VS Code log file: its level and text (a traced message spans several lines)."""

    level: str
    text: str


_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[(\w+)\] ", re.MULTILINE)


def log_entries(text: str) -> list[LogEntry]:
    starts = list(_ENTRY.finditer(text))
    return [LogEntry(match[1], text[match.end():(starts[i + 1].start() if i + 1 < len(starts) else len(text))].rstrip())
            for i, match in enumerate(starts)]


class CodeServer:
    """code-server bound to 127.0.0.1 without authentication, its user data, extensions and config in `home`."""

    def __init__(self, binary: Path, home: Path, env: dict[str, str]) -> None:
        self.binary = binary
        self.home = home
        self.user_data = home / "user-data"
        self.extensions = home / "extensions"
        self.config = home / "config.yaml"
        self.log_file = home / "code-server.log"
        self.env = env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (self.user_data / "User").mkdir(parents=True, exist_ok=True)
        self.extensions.mkdir(parents=True, exist_ok=True)
        # Its own config file: code-server would otherwise write one into ~/.config/code-server.
        self.config.write_text(f"bind-addr: 127.0.0.1:{self.port}\nauth: none\ncert: false\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self, *args: str) -> list[str]:
        return [str(self.binary), "--config", str(self.config), "--user-data-dir", str(self.user_data),
                "--extensions-dir", str(self.extensions), *args]

    def version(self) -> str:
        done = subprocess.run(self._command("--version"), capture_output=True, text=True, timeout=60, env=self.env)
        return done.stdout.split()[0] if done.stdout else ""

    def install_extension(self, vsix: Path) -> None:
        done = subprocess.run(self._command("--install-extension", str(vsix)), capture_output=True, text=True,
                              timeout=120, env=self.env)
        if done.returncode != 0 or "successfully installed" not in done.stdout:
            raise RuntimeError(f"code-server did not install {vsix}:\n{done.stdout}{done.stderr}")

    def write_user_settings(self, settings: dict[str, Any]) -> None:
        """The User settings.json; a running workbench notices the change and applies it."""
        path = self.user_data / "User" / "settings.json"
        path.write_text(json.dumps({**BASE_SETTINGS, **settings}, indent=2))

    def user_settings(self) -> dict[str, Any]:
        """The User settings.json as it is now; {} while VS Code is halfway through writing it."""
        try:
            return json.loads((self.user_data / "User" / "settings.json").read_text())
        except ValueError:
            return {}

    def start(self, timeout: float = 60.0) -> None:
        args = ["--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
                "--disable-getting-started-override", "--ignore-last-opened"]
        with self.log_file.open("wb") as log:
            # Its own process group, so the extension host and the language server it started stop with it.
            self.process = subprocess.Popen(self._command(*args), stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"code-server exited ({self.process.returncode}):\n{self.log_file.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"code-server did not answer on {self.url} in {timeout:.0f} s:\n{self.log_file.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def extension_log(self, name: str = "Mercury") -> Path | None:
        """The newest log file of the extension's output channel `name` (a LogOutputChannel writes one)."""
        found = sorted(self.user_data.glob(f"logs/*/exthost*/*/{name}.log"), key=lambda path: path.stat().st_mtime)
        return found[-1] if found else None

    def extension_log_entries(self, name: str = "Mercury") -> list[LogEntry]:
        path = self.extension_log(name)
        return log_entries(path.read_text()) if path else []
