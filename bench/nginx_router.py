"""The README's router recipe (`docs/router/nginx.conf`) run for given replicas: their addresses written into its
two upstream groups, a free loopback port for it to listen on, and nginx started in a private folder.

Used by `bench/engine_load.py --replicas` and by the router tests, so both run the file the README documents.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

RECIPE = Path(__file__).resolve().parent.parent / "docs" / "router" / "nginx.conf"
# One upstream group's replica lines: the first one's indent and options, then any more.
SERVER_LINES = re.compile(r"^([ \t]*)server 127\.0\.0\.1:\d+ (max_fails[^\n]*)\n(?:[ \t]*server 127\.0\.0\.1:\d+ [^\n]*\n)*",
                          re.MULTILINE)
LISTEN_LINE = re.compile(r"listen 127\.0\.0\.1:\d+;")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def render(replica_urls: list[str], port: int) -> str:
    """The recipe with its sample replicas replaced by these, in each upstream group, listening on `port`."""
    text = RECIPE.read_text()
    addresses = [urllib.parse.urlsplit(url).netloc for url in replica_urls]

    def replicas(match: re.Match) -> str:
        indent, options = match.group(1), match.group(2)
        return "".join(f"{indent}server {address} {options}\n" for address in addresses)

    text = SERVER_LINES.sub(replicas, text)
    return LISTEN_LINE.sub(f"listen 127.0.0.1:{port};", text)


class NginxRouter:
    """nginx running the recipe in `folder` (its pid, log and temporary files there), in the foreground."""

    def __init__(self, folder: Path, replica_urls: list[str]) -> None:
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light).")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "nginx.conf"
        config.write_text(render(replica_urls, self.port))
        self.process = subprocess.Popen([binary, "-p", str(folder), "-c", str(config), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not listen") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
