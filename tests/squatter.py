"""A stranger's HTTP server on a port the engine left: it answers like an engine and records every request.

Run as another user in the security tests (the standard library only, so the system Python can run it):
    python3 squatter.py PORT RECORD_FILE
It prints "ready" once listening. Its /health claims a proof it cannot have.
"""

import http.server
import json
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def _record(self, body: bytes = b"") -> None:
        entry = {"line": self.requestline, "headers": dict(self.headers), "body": body.decode("latin-1")}
        with open(sys.argv[2], "a") as record:
            record.write(json.dumps(entry) + "\n")

    def _answer(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Mercury-Proof", "00" * 32)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record()
        self._answer({"status": "ok", "model": "model", "device": "cpu"})

    def do_POST(self) -> None:
        self._record(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._answer({"text": "stolen", "tokens": 1, "steps": 1, "ms": 1.0})

    def log_message(self, *args: object) -> None:
        pass


socketserver.ThreadingTCPServer.allow_reuse_address = True
with socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Handler) as server:
    print("ready", flush=True)
    server.serve_forever()
