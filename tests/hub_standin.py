"""A loopback stand-in for the Hugging Face hub's HTTP endpoints that `snapshot_download` calls, serving repositories
a test builds: repo info (`/api/models/ORG/NAME[/revision/REV]`), the file tree (`/api/models/ORG/NAME/tree/REV`)
and file resolution (`HEAD`/`GET /ORG/NAME/resolve/REV/PATH`, with `Range`, `ETag` and `X-Repo-Commit` as the hub
sends them). Errors carry the hub's `X-Error-Code` headers, which huggingface_hub turns into its exception types.

It can also misbehave on purpose: cut a file's first download short (the client resumes it with a Range
request), stall a file half-way (a download killed mid-file), pace a file in slices (progress to watch).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TOKEN = "hf_standin_token"  # the one token the stand-in accepts for gated repositories
LFS_SUFFIXES = (".safetensors", ".bin")


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str
    gated: bool = False


@dataclass
class Misbehaviour:
    cut_after: dict[str, int] = field(default_factory=dict)  # file -> bytes sent before the first GET is cut
    stall_after: dict[str, int] = field(default_factory=dict)  # file -> bytes sent before every GET hangs
    pace: dict[str, int] = field(default_factory=dict)  # file -> slices sent 0.2 s apart
    released: threading.Event = field(default_factory=threading.Event)  # ends every stall


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandin:
    """Started on a free loopback port; `url` goes into HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.misbehave = Misbehaviour()
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self._server: ThreadingHTTPServer | None = None

    def add_repo(self, repo_id: str, folder: Path | None = None, files: dict[str, bytes] | None = None,
                 gated: bool = False) -> str:
        """Serve a repository made of a folder's files (and/or given files); returns its commit id."""
        content = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder else {}
        content.update(files or {})
        commit = hashlib.sha1(repo_id.encode() + b"".join(sorted(content.values()))).hexdigest()
        self.repos[repo_id] = Repo(content, commit, gated)
        return commit

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HubStandin:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.misbehave.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def file_requests(self, name: str) -> list[tuple[str, str | None]]:
        """(method, Range) of each request for a file of any repository."""
        return [(method, rng) for method, path, rng in self.requests if "/resolve/" in path and path.endswith("/" + name)]


_INFO = re.compile(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?")
_TREE = re.compile(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?")
_RESOLVE = re.compile(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)")


def _handler(hub: HubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._route(body=False)

        def do_GET(self) -> None:
            self._route(body=True)

        def _route(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            if match := _TREE.fullmatch(path):
                self._tree(*match.groups())
            elif match := _INFO.fullmatch(path):
                self._info(match.group(1), match.group(2) or "main")
            elif match := _RESOLVE.fullmatch(path):
                self._resolve(*match.groups(), body=body)
            else:
                self._error(404, "EntryNotFound", "no such route")

        def _repo(self, repo_id: str, revision: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return None
            if revision not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return None
            return repo

        def _info(self, repo_id: str, revision: str) -> None:
            if repo := self._repo(repo_id, revision):
                self._json({"id": repo_id, "sha": repo.commit, "gated": "auto" if repo.gated else False,
                            "siblings": [{"rfilename": name} for name in repo.files]})

        def _tree(self, repo_id: str, revision: str) -> None:
            if repo := self._repo(repo_id, revision):
                entries = []
                for name, data in repo.files.items():
                    entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
                    if name.endswith(LFS_SUFFIXES):
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                        "pointerSize": 134}
                    entries.append(entry)
                self._json(entries)

        def _resolve(self, repo_id: str, revision: str, name: str, body: bool) -> None:
            repo = self._repo(repo_id, revision)
            if repo is None:
                return
            if repo.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._error(401, "GatedRepo", "Access to this model is restricted.")
                return
            data = repo.files.get(name)
            if data is None:
                self._error(404, "EntryNotFound", "Entry not found")
                return
            etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else git_blob_id(data)
            start = 0
            if (rng := self.headers.get("Range")) and (found := re.fullmatch(r"bytes=(\d+)-", rng)):
                start = int(found.group(1))
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{etag}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                self._send_body(name, data[start:], first=start == 0)

        def _send_body(self, name: str, data: bytes, first: bool) -> None:
            rules = hub.misbehave
            gets = sum(1 for method, rng in hub.file_requests(name) if method == "GET")
            if name in rules.cut_after and gets == 1:
                self.wfile.write(data[: rules.cut_after[name]])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the peer sees the body end early
                return
            if name in rules.stall_after:
                self.wfile.write(data[: rules.stall_after[name]])
                self.wfile.flush()
                rules.released.wait()
                self.close_connection = True
                return
            slices = rules.pace.get(name, 1)
            step = max(1, -(-len(data) // slices))
            for offset in range(0, len(data), step):
                self.wfile.write(data[offset : offset + step])
                self.wfile.flush()
                if slices > 1:
                    time.sleep(0.2)

        def _json(self, payload: object) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(raw)

        def _error(self, status: int, code: str, message: str) -> None:
            raw = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(raw)

    return Handler
