"""The auto-started engine is bound to its user: a private runtime folder, runtime files never followed through
links, a port file that must name loopback, a shared secret the engine proves it holds before it is sent text, and
a second local user (nobody, through setpriv) who can neither read the secret, use the engine, nor squat its port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mercury_lsp.engine import daemon
from mercury_lsp.engine.api import identity as engine_identity
from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine_client import EngineClient, EngineError

from other_user import SYSTEM_PYTHON, as_other_user, other_uid, squatter

PREFIX = "def total(items):\n    secret_variable_name = "


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "runtime"
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(folder))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield folder
    with contextlib.suppress(daemon.DaemonError):  # the tests that make the folder unsafe started nothing
        daemon.stop_engine(timeout=5)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mercury_lsp.engine.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


# -- the runtime folder -----------------------------------------------------------------------------------------

def test_the_runtime_folder_is_created_private(runtime):
    assert daemon.runtime_dir() == runtime.resolve()
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700


def test_a_folder_of_ours_readable_by_others_is_closed(runtime):
    runtime.mkdir(mode=0o755)
    runtime.chmod(0o755)
    daemon.runtime_dir()
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700


def test_a_folder_others_can_write_is_refused(runtime):
    runtime.mkdir()
    runtime.chmod(0o777)
    with pytest.raises(daemon.DaemonError, match="is writable by other users; make it private"):
        daemon.runtime_dir()
    done = cli("status")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mercury-engine: error: The runtime folder {runtime} is writable by other users; make it private "
        f"(chmod 700 {runtime}) or set MERCURY_RUNTIME_DIR to a private folder."]


def test_a_folder_of_another_user_is_refused(runtime):
    runtime.mkdir(mode=0o700)
    os.chown(runtime, other_uid(), -1)
    with pytest.raises(daemon.DaemonError, match=rf"belongs to another user \(uid {other_uid()}\)"):
        daemon.runtime_dir()
    with pytest.raises(daemon.DaemonError):
        daemon.ensure_engine(None, "cpu")


def test_a_folder_inside_a_shared_folder_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # world-writable without the sticky bit: anyone may rename what is inside
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(shared / "mine"))
    with pytest.raises(daemon.DaemonError, match="which other users can change"):
        daemon.runtime_dir()


# -- runtime files ----------------------------------------------------------------------------------------------

def test_runtime_files_are_private_and_the_secret_is_closed_to_others(runtime, tiny_checkpoint):
    endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
    for name in (daemon.PORT_FILE, daemon.SECRET_FILE, daemon.LOCK_FILE, daemon.LOG_FILE):
        info = (runtime / name).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, os.getuid()), name
    assert endpoint.key == daemon.read_secret() and endpoint.key not in repr(endpoint)
    runtime.parent.chmod(0o755)  # let the other user reach the runtime folder itself, as a home folder would
    peek = subprocess.run(as_other_user("cat", str(runtime / daemon.SECRET_FILE)), capture_output=True, timeout=30)
    assert peek.returncode != 0 and b"Permission denied" in peek.stderr


def test_a_symlinked_log_is_not_followed(runtime, tiny_checkpoint, tmp_path):
    runtime.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    (runtime / daemon.LOG_FILE).symlink_to(victim)
    with pytest.raises(daemon.DaemonError, match="engine.log is a symbolic link; remove it"):
        daemon.ensure_engine(str(tiny_checkpoint), "cpu")
    assert victim.read_text() == "untouched\n"


def test_symlinked_port_and_secret_files_are_not_read(runtime, tmp_path):
    runtime.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"pid": 1, "url": "http://127.0.0.1:9"}))
    (runtime / daemon.PORT_FILE).symlink_to(elsewhere)
    secret = tmp_path / "secret"
    secret.write_text("a" * 64)
    (runtime / daemon.SECRET_FILE).symlink_to(secret)
    assert daemon.read_port_file() is None
    assert daemon.read_secret() is None


@pytest.mark.parametrize("url", ["http://10.1.2.3:8765", "http://example.com:80", "https://127.0.0.1:8765",
                                 "http://user:pw@127.0.0.1:8765", "http://127.0.0.1:8765/elsewhere",
                                 "http://localhost:8765", "http://127.0.0.1"])
def test_a_port_file_must_name_a_loopback_address(runtime, url):
    runtime.mkdir(mode=0o700)
    init = 1  # alive, and no engine: nothing is stopped when the test ends
    (runtime / daemon.PORT_FILE).write_text(json.dumps({"pid": init, "url": url}))
    assert daemon.read_port_file() is None
    (runtime / daemon.PORT_FILE).write_text(json.dumps({"pid": init, "url": "http://[::1]:8765"}))
    assert daemon.read_port_file()["url"] == "http://[::1]:8765"


# -- the engine proves itself; strangers get nothing ------------------------------------------------------------------

def test_the_engine_proves_it_holds_the_key_and_strangers_cannot_use_it(runtime, tiny_checkpoint):
    endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
    challenge = engine_identity.new_challenge()
    assert daemon.probe_health(endpoint.url, key=endpoint.key)["status"] == "ok"
    assert daemon.probe_health(endpoint.url, key="0" * 64) is None, "a proof under another key is refused"
    runtime.parent.chmod(0o755)
    stranger = subprocess.run(as_other_user(
        SYSTEM_PYTHON, "-c",
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    urllib.request.urlopen(urllib.request.Request('{endpoint.url}/v1/infill', data=b'{{\"prefix\": \"x\"}}'))\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
        f"r = urllib.request.urlopen(urllib.request.Request('{endpoint.url}/health', "
        f"headers={{'X-Mercury-Challenge': '{challenge}'}}))\n"
        "print(r.headers.get('X-Mercury-Proof'))\n"), capture_output=True, text=True, timeout=30)
    code, proof = stranger.stdout.split()
    assert code == "401", stranger.stderr
    assert engine_identity.verify(endpoint.key, challenge, proof), "anyone may check the proof; only we can make it"


async def test_a_stranger_on_the_port_of_an_engine_that_exited_gets_no_text(runtime, tiny_checkpoint):
    endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
    client = EngineClient(endpoint.url, "mercury", endpoint.key, identity_key=endpoint.key)
    try:
        first = await client.infill(InfillRequest(prefix=PREFIX, max_tokens=4))
        assert first.texts and first.steps
        os.kill(endpoint.pid, signal.SIGKILL)
        while daemon._alive(endpoint.pid):
            time.sleep(0.02)
        with squatter(int(endpoint.url.rsplit(":", 1)[1])) as record:
            with pytest.raises(EngineError, match="cannot prove it is this user's engine") as refused:
                await client.infill(InfillRequest(prefix=PREFIX, max_tokens=4))
            assert refused.value.unreachable, "the language server treats it as a lost engine and restarts"
            recorded = record.read_text()
    finally:
        await client.close()
    seen = [json.loads(line) for line in recorded.splitlines()]
    assert [entry["line"].split()[:2] for entry in seen] == [["GET", "/health"]]
    assert "secret_variable_name" not in recorded
    assert all("Authorization" not in entry["headers"] for entry in seen), "the key never reached the stranger"
    assert endpoint.key not in recorded


def test_the_auto_started_engine_does_not_idle_out_between_a_proof_and_a_request(runtime, tiny_checkpoint):
    """Proofs count as activity: the engine that just proved itself is the one the text goes to."""
    endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60, idle_exit_minutes=0.05)
    deadline = time.monotonic() + 6  # three idle periods
    while time.monotonic() < deadline:
        assert daemon.probe_health(endpoint.url, key=endpoint.key) is not None
        time.sleep(0.5)
    assert daemon._alive(endpoint.pid)
    time.sleep(9)
    assert not daemon._alive(endpoint.pid), "left alone, it exits"
