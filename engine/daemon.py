"""The machine's shared engine: find it through its port file, start it detached when none answers, stop it.

Files live in the runtime folder: `engine.json` (pid and URL, written by the engine once its port is bound),
`engine.lock` (held while one caller checks and starts, so racing callers share one engine) and `engine.log`.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mercury_lsp.models import resolve_model_path

PORT_FILE = "engine.json"
LOCK_FILE = "engine.lock"
LOG_FILE = "engine.log"
LOG_ROTATE_BYTES = 5 * 1024 * 1024
START_TIMEOUT_S = 60.0  # interpreter start and imports up to the bound port, on a busy machine
DEFAULT_IDLE_EXIT_MINUTES = 60.0


class DaemonError(Exception):
    """The engine could not be started or reached; the message is one sentence."""


@dataclass(frozen=True)
class EngineEndpoint:
    url: str
    pid: int | None = None


def runtime_dir() -> Path:
    """$MERCURY_RUNTIME_DIR, else $XDG_RUNTIME_DIR/mercury-lsp, else ~/.cache/mercury-lsp (created, private)."""
    if os.environ.get("MERCURY_RUNTIME_DIR"):
        folder = Path(os.environ["MERCURY_RUNTIME_DIR"])
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "mercury-lsp"
    else:
        folder = Path.home() / ".cache" / "mercury-lsp"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def port_file_path() -> Path:
    return runtime_dir() / PORT_FILE


def write_port_file(path: Path, url: str, model: str | None, device: str) -> None:
    """Publish this process's URL atomically (readers never see half a file)."""
    info = {"pid": os.getpid(), "url": url, "model": model, "device": device, "started": time.time()}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(info))
    temporary.replace(path)


def remove_port_file(path: Path) -> None:
    """Remove the port file if it still names this process (a newer engine may have replaced it)."""
    info = read_port_file(path)
    if info is not None and info.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read_port_file(path: Path | None = None) -> dict | None:
    try:
        info = json.loads((path or port_file_path()).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str) or not isinstance(info.get("pid"), int):
        return None
    return info


def probe_health(url: str, timeout: float = 2.0) -> dict | None:
    """The engine's /health object, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (reaping it if it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _is_engine(pid: int) -> bool:
    """Guard against a recycled pid: the process must still be alive and running `serve`."""
    if not _alive(pid):
        return False
    try:
        return b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: trust the port file


def _answering_engine() -> tuple[EngineEndpoint, dict, dict] | None:
    """The engine named by the port file, its /health and the port file's content, if it is alive and answers."""
    path = port_file_path()
    info = read_port_file(path)
    if info is None:
        return None
    if not _is_engine(info["pid"]):
        path.unlink(missing_ok=True)
        return None
    health = probe_health(info["url"])
    if health is None:
        return None
    return EngineEndpoint(info["url"], info["pid"]), health, info


def running_engine() -> EngineEndpoint | None:
    """The engine named by the port file, if it is alive and answers /health."""
    found = _answering_engine()
    return found[0] if found else None


def _open_log() -> int:
    log_path = runtime_dir() / LOG_FILE
    try:
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            log_path.replace(log_path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
    return os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _last_log_line() -> str:
    try:
        lines = (runtime_dir() / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _model_folder(model: str | None) -> str:
    """The folder an engine started for `model` serves, as its port file names it."""
    return str(resolve_model_path(str(Path(model).expanduser().resolve()) if model else None))


def _spawn(model: str | None, device: str, idle_exit_minutes: float) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "mercury_lsp.engine.cli", "serve",
        "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file_path()),
        "--device", device, "--idle-exit", str(idle_exit_minutes),
    ]
    if model:
        command += ["--model", _model_folder(model)]
    log_fd = _open_log()
    try:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            start_new_session=True, close_fds=True, cwd=runtime_dir(),
        )
    finally:
        os.close(log_fd)


def _wait_for_port(process: subprocess.Popen) -> EngineEndpoint:
    """Wait until the new engine has bound its port and answers; raise if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    path = port_file_path()
    while time.monotonic() < deadline:
        info = read_port_file(path)
        if info is not None and info["pid"] == process.pid and probe_health(info["url"]) is not None:
            return EngineEndpoint(info["url"], process.pid)
        if process.poll() is not None:
            detail = _last_log_line()
            raise DaemonError(
                f"The engine exited while starting (exit code {process.returncode})"
                + (f": {detail}" if detail else ".")
            )
        time.sleep(0.05)
    process.kill()  # a half-started engine would hold the next caller's port file hostage
    raise DaemonError(f"The engine did not open its port within {START_TIMEOUT_S:.0f} s (see {path.parent / LOG_FILE}).")


def _wait_until_loaded(endpoint: EngineEndpoint, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        health = probe_health(endpoint.url) or {}
        if health.get("status") == "ok":
            return
        if health.get("status") == "error":
            raise DaemonError(health.get("message") or "The engine failed to load its model.")
        if time.monotonic() > deadline:
            raise DaemonError(f"The engine did not finish loading within {timeout:g} s.")
        time.sleep(0.1)


def ensure_engine(model: str | None = None, device: str = "auto", timeout: float = 0,
                  idle_exit_minutes: float = DEFAULT_IDLE_EXIT_MINUTES) -> EngineEndpoint:
    """The running engine, or a new one started detached; with timeout > 0, also wait that long for its model.

    Racing callers (several editors starting at once) serialise on the lock file and share one engine, whatever
    model it serves. An engine whose model failed to load is replaced when the caller asks for another model or
    device (a fixed setting); asked again for the same, it stays to report its error.
    """
    lock_path = runtime_dir() / LOCK_FILE
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = _answering_engine()
            if found is not None and found[1].get("status") == "error":
                _, _, info = found
                if (info.get("model"), info.get("device")) != (_model_folder(model), device):
                    stop_engine()
                    found = None
            endpoint = found[0] if found else _wait_for_port(_spawn(model, device, idle_exit_minutes))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if timeout > 0:
        _wait_until_loaded(endpoint, timeout)
    return endpoint


def stop_engine(timeout: float = 10.0) -> EngineEndpoint | None:
    """Stop the engine named by the port file (TERM, then KILL after `timeout`); None when none was running."""
    path = port_file_path()
    info = read_port_file(path)
    if info is None or not _is_engine(info["pid"]):
        path.unlink(missing_ok=True)
        return None
    pid = info["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)
    path.unlink(missing_ok=True)
    return EngineEndpoint(info["url"], pid)
