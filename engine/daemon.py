"""The machine's shared engine for one user: find it through its port file, start it detached when none answers,
stop it.

Files live in the runtime folder, which must belong to the user and be closed to everyone else (0700):
`engine.json` (pid and URL, written by the engine once its port is bound), `engine.lock` (held while one caller
checks and starts, so racing callers share one engine), `engine.secret` (the key the engine and the language server
share: the engine's bearer key, and what it proves it holds before a client sends it text) and `engine.log`. Every
runtime file is opened without following symbolic links.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mercury_lsp.engine.api import identity as engine_identity
from mercury_lsp.engine.model_source import parse_model

PORT_FILE = "engine.json"
LOCK_FILE = "engine.lock"
LOG_FILE = "engine.log"
SECRET_FILE = "engine.secret"
LOG_ROTATE_BYTES = 5 * 1024 * 1024
PORT_FILE_BYTES = 64 * 1024  # a port file is a few hundred bytes; anything larger is not one
START_TIMEOUT_S = 60.0  # interpreter start and imports up to the bound port, on a busy machine
HUNG_PROBE_S = 5.0  # a second, longer look before an engine that did not answer is called hung
HUNG_STOP_S = 3.0  # how long a hung engine gets to exit on TERM before KILL
DEFAULT_IDLE_EXIT_MINUTES = 60.0
_SECRET = re.compile(r"[0-9a-f]{64}")


class DaemonError(Exception):
    """The engine could not be started or reached, or the runtime folder is unsafe; the message is one sentence."""


@dataclass(frozen=True)
class EngineEndpoint:
    url: str
    pid: int | None = None
    key: str | None = field(default=None, repr=False)  # the shared secret; never printed

    def headers(self) -> dict[str, str]:
        """What a client sends the auto-started engine with each request."""
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


# -- the runtime folder and its files -----------------------------------------------------------------------------

def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """An `http://<loopback address>:<port>` URL and nothing more (no user, path, query or fragment)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or port is None or parts.username is not None or parts.password is not None:
        return False
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.hostname is None:
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback  # an address: no name resolution to trust
    except ValueError:
        return False


def check_private_folder(folder: Path, what: str = "runtime folder") -> Path:
    """The folder's real path, once it is a directory of this user's that no one else can change.

    Refused (DaemonError) when it belongs to someone else, is writable by group or others, or sits below a folder
    anyone may rename things in. Read access for others is ours to take away, so it is.
    """
    real = Path(os.path.realpath(folder))
    try:
        info = os.lstat(real)
    except OSError as error:
        raise DaemonError(f"The {what} {folder} cannot be read ({error.strerror}).") from None
    if not stat.S_ISDIR(info.st_mode):
        raise DaemonError(f"The {what} {folder} is not a folder.")
    if info.st_uid != os.getuid():
        raise DaemonError(f"The {what} {folder} belongs to another user (uid {info.st_uid}); set "
                          "MERCURY_RUNTIME_DIR to a folder of your own.")
    if info.st_mode & 0o022:
        raise DaemonError(f"The {what} {folder} is writable by other users; make it private (chmod 700 {folder}) "
                          "or set MERCURY_RUNTIME_DIR to a private folder.")
    if info.st_mode & 0o077:
        os.chmod(real, 0o700)
    for parent in real.parents:
        above = os.stat(parent)
        shared = above.st_mode & stat.S_IWOTH and not above.st_mode & stat.S_ISVTX  # /tmp is sticky: fine
        if above.st_uid not in (0, os.getuid()) or shared:
            raise DaemonError(f"The {what} {folder} is inside {parent}, which other users can change; set "
                              "MERCURY_RUNTIME_DIR to a folder under your home.")
    return real


def runtime_dir() -> Path:
    """$MERCURY_RUNTIME_DIR, else $XDG_RUNTIME_DIR/mercury-lsp, else ~/.cache/mercury-lsp: created 0700, checked."""
    if os.environ.get("MERCURY_RUNTIME_DIR"):
        folder = Path(os.environ["MERCURY_RUNTIME_DIR"])
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "mercury-lsp"
    else:
        folder = Path.home() / ".cache" / "mercury-lsp"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise DaemonError(f"Cannot create the runtime folder {folder} ({error.strerror}).") from None
    return check_private_folder(folder)


def open_private(path: Path, flags: int) -> int:
    """A file descriptor for a runtime file: never through a symbolic link, only a regular file of this user's,
    created 0600 (an older, more open file is tightened)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DaemonError(f"{path} is a symbolic link; remove it (runtime files are not followed through "
                              "links).") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise DaemonError(f"{path} is not a regular file of this user's; remove it.")
    if info.st_mode & 0o077:
        os.fchmod(fd, 0o600)
    os.set_blocking(fd, True)
    return fd


def _read_private(path: Path, limit: int) -> bytes:
    fd = open_private(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as file:
        return file.read(limit)


def _write_private(path: Path, data: bytes) -> None:
    """Replace a runtime file atomically (readers never see half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def port_file_path() -> Path:
    return runtime_dir() / PORT_FILE


def write_port_file(path: Path, url: str, model: str | None, device: str) -> None:
    """Publish this process's URL in a private folder."""
    check_private_folder(path.parent, "port file's folder")
    info = {"pid": os.getpid(), "url": url, "model": model, "device": device, "started": time.time()}
    _write_private(path, json.dumps(info).encode())


def remove_port_file(path: Path) -> None:
    """Remove the port file if it still names this process (a newer engine may have replaced it)."""
    info = read_port_file(path)
    if info is not None and info.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read_port_file(path: Path | None = None) -> dict | None:
    """The port file's content, or None when there is none or it is not a valid one (its URL must be loopback)."""
    try:
        info = json.loads(_read_private(path or port_file_path(), PORT_FILE_BYTES))
    except (OSError, ValueError, DaemonError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str) or not isinstance(info.get("pid"), int):
        return None
    return info if is_loopback_url(info["url"]) else None


def read_secret(folder: Path | None = None) -> str | None:
    """The key the auto-started engine and its clients share, or None when there is none yet."""
    try:
        value = _read_private((folder or runtime_dir()) / SECRET_FILE, 1024).decode("ascii").strip()
    except (OSError, UnicodeDecodeError, DaemonError):
        return None
    return value if _SECRET.fullmatch(value) else None


def _new_secret(folder: Path) -> str:
    """A fresh key for the engine about to start (an engine that exited takes its key with it)."""
    value = secrets.token_hex(32)
    _write_private(folder / SECRET_FILE, value.encode("ascii") + b"\n")
    return value


# -- engines ------------------------------------------------------------------------------------------------------

def probe_health(url: str, timeout: float = 2.0, key: str | None = None) -> dict | None:
    """The engine's /health object, or None when nothing answers there, or (with `key`) when what answers cannot
    prove it holds the key."""
    challenge = engine_identity.new_challenge()
    headers = {engine_identity.CHALLENGE_HEADER: challenge} if key else {}
    request = urllib.request.Request(url.rstrip("/") + "/health", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            proof = response.headers.get(engine_identity.PROOF_HEADER)
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if key and not engine_identity.verify(key, challenge, proof):
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
    """Guard against a recycled pid: the process must still be alive and be `mercury-engine serve`."""
    if not _alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc here: trust the port file
    return b"serve" in args and any(b"mercury" in arg for arg in args[:args.index(b"serve")])


def _answering_engine() -> tuple[EngineEndpoint, dict, dict] | None:
    """The engine named by the port file, its /health and the port file's content, if it is alive and proves it
    holds the runtime secret."""
    path = port_file_path()
    info = read_port_file(path)
    if info is None:
        return None
    if not _is_engine(info["pid"]):
        path.unlink(missing_ok=True)
        return None
    key = read_secret(path.parent)
    health = probe_health(info["url"], key=key) if key else None
    if health is None:
        return None
    return EngineEndpoint(info["url"], info["pid"], key), health, info


def _answering_or_stop_hung() -> tuple[EngineEndpoint, dict, dict] | None:
    """The answering engine, as `_answering_engine`; an engine of ours that is alive but silent (frozen, hung)
    is stopped instead, so that the one about to start is the machine's only one: a second 7B model does not
    fit beside the first."""
    found = _answering_engine()
    if found is not None:
        return found
    path = port_file_path()
    info, key = read_port_file(path), read_secret(path.parent)
    if info is None or key is None or not _is_engine(info["pid"]):
        return None
    health = probe_health(info["url"], timeout=HUNG_PROBE_S, key=key)  # busy, not hung: it is kept
    if health is not None:
        return EngineEndpoint(info["url"], info["pid"], key), health, info
    _terminate(info["pid"], HUNG_STOP_S)
    if (read_port_file(path) or {}).get("pid") == info["pid"]:
        path.unlink(missing_ok=True)
    return None


def port_file_names_another(path: Path) -> bool:
    """Whether the port file now names another process: a newer engine replaced this one."""
    info = read_port_file(path)
    return info is not None and info["pid"] != os.getpid()


def running_engine() -> EngineEndpoint | None:
    """The engine named by the port file, if it is alive and proves it is ours."""
    found = _answering_engine()
    return found[0] if found else None


def _open_log() -> int:
    log_path = runtime_dir() / LOG_FILE
    try:
        if os.lstat(log_path).st_size > LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
    return open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def _last_log_line() -> str:
    try:
        text = _read_private(runtime_dir() / LOG_FILE, LOG_ROTATE_BYTES * 2).decode(errors="replace")
    except (OSError, DaemonError):
        return ""
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _model_spec(model: str | None) -> str:
    """What an engine started for `model` serves, as its port file names it (a folder's absolute path, or a hub
    id)."""
    return parse_model(model).spec


def _spawn(model: str | None, device: str, idle_exit_minutes: float) -> tuple[subprocess.Popen, str]:
    """A new engine process, and the secret it was given."""
    folder = runtime_dir()
    key = _new_secret(folder)
    command = [
        sys.executable, "-m", "mercury_lsp.engine.cli", "serve",
        "--host", "127.0.0.1", "--port", "0", "--port-file", str(folder / PORT_FILE),
        "--api-key-file", str(folder / SECRET_FILE),
        "--device", device, "--idle-exit", str(idle_exit_minutes),
    ]
    if model:
        command += ["--model", _model_spec(model)]
    log_fd = _open_log()
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            start_new_session=True, close_fds=True, cwd=folder,
        )
    finally:
        os.close(log_fd)
    return process, key


def _wait_for_port(process: subprocess.Popen, key: str) -> EngineEndpoint:
    """Wait until the new engine has bound its port and proves it holds `key`; raise if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    path = port_file_path()
    while time.monotonic() < deadline:
        info = read_port_file(path)
        if info is not None and info["pid"] == process.pid and probe_health(info["url"], key=key) is not None:
            return EngineEndpoint(info["url"], process.pid, key)
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
        health = probe_health(endpoint.url, key=endpoint.key) or {}
        if health.get("status") == "ok":
            return
        if health.get("status") == "error":
            raise DaemonError(health.get("message") or "The engine failed to load its model.")
        if time.monotonic() > deadline:
            raise DaemonError(f"The engine did not finish loading within {timeout:g} s.")
        time.sleep(0.1)


@contextmanager
def _locked() -> Iterator[None]:
    """Hold the runtime folder's lock (racing callers take turns)."""
    fd = open_private(runtime_dir() / LOCK_FILE, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def ensure_engine(model: str | None = None, device: str = "auto", timeout: float = 0,
                  idle_exit_minutes: float = DEFAULT_IDLE_EXIT_MINUTES) -> EngineEndpoint:
    """The running engine, or a new one started detached; with timeout > 0, also wait that long for its model.

    Racing callers (several editors starting at once) serialise on the lock file and share one engine, whatever
    model it serves. An engine whose model failed to load is replaced when the caller asks for another model or
    device (a fixed setting); asked again for the same, it stays to report its error.
    """
    with _locked():
        found = _answering_or_stop_hung()
        if found is not None and found[1].get("status") == "error":
            _, _, info = found
            if (info.get("model"), info.get("device")) != (_model_spec(model), device):
                stop_engine()
                found = None
        endpoint = found[0] if found else _wait_for_port(*_spawn(model, device, idle_exit_minutes))
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
    _terminate(info["pid"], timeout)
    path.unlink(missing_ok=True)
    return EngineEndpoint(info["url"], info["pid"])


def _terminate(pid: int, timeout: float) -> None:
    """TERM (and CONT, so a stopped process can act on it), then KILL after `timeout`; returns once it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
        time.sleep(0.05)
