"""Run a process as a second local user (root drops to `nobody` with setpriv), for the local security tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SQUATTER = Path(__file__).with_name("squatter.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the other user cannot read root's virtual environment


def _unavailable() -> str | None:
    if os.getuid() != 0:
        return "only root can run a process as another user here"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "there is no user nobody"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    return None


def as_other_user(*command: str) -> list[str]:
    """The command line that runs `command` as nobody (skips the test where that is impossible)."""
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


def other_uid() -> int:
    """nobody's uid, for files handed to another user (skips the test where that is impossible)."""
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)
    return pwd.getpwnam("nobody").pw_uid


@contextmanager
def squatter(port: int) -> Iterator[Path]:
    """A stranger's server on `port`, run as nobody; yields the file where it records what it was sent."""
    folder = Path(tempfile.mkdtemp(prefix="squatter-"))
    folder.chmod(0o777)
    record = folder / "record.jsonl"
    process = subprocess.Popen(as_other_user(SYSTEM_PYTHON, str(SQUATTER), str(port), str(record)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.strip() == "ready", process.stderr.read()
        yield record
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)
