"""Raw bytes at the language server: the frame reader on its own (any bytes, any chunking), then the real server
process over stdio fed malformed frames of every class between well-formed requests. Every request with an id gets
exactly one answer, the server never dies, and a request after the junk is still served."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercury_lsp.transport import Frame, FrameReader, Malformed

SERVER = [sys.executable, "-m", "mercury_lsp.cli"]


def frame(body: bytes, name: bytes = b"Content-Length") -> bytes:
    return name + b": %d\r\n\r\n" % len(body) + body


def message(**fields: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


bodies = st.binary(max_size=300).filter(lambda b: b"content-length" not in b.lower())


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


# -- the reader alone -----------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=4000), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_any_bytes_in_any_chunks_never_break_the_reader(data: bytes, cuts: list[int]) -> None:
    reader = FrameReader(max_header_bytes=256, max_body_bytes=1000)
    for piece in chunked(data, cuts):
        events = reader.feed(piece)
        assert all(isinstance(e, (Frame, Malformed)) for e in events)
        assert all(len(e.body) <= 1000 for e in events if isinstance(e, Frame))
    assert len(reader._buffer) <= 256 + 1000 + len(data), "nothing grows beyond a header section and a body"


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(bodies, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 3000), max_size=10),
       names=st.lists(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]), min_size=6,
                      max_size=6))
def test_frames_come_out_whole_however_the_stream_is_cut(payloads, cuts, names) -> None:
    data = b"".join(frame(p, n) for p, n in zip(payloads, names))
    reader = FrameReader()
    events = [e for piece in chunked(data, cuts) for e in reader.feed(piece)]
    assert events == [Frame(p) for p in payloads]


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(min_size=1, max_size=2000).filter(
           lambda b: b"content-length" not in b.lower() and b"\r\n\r\n" not in b and b"\r\n\r" not in b[-3:]),
       payloads=st.lists(bodies, min_size=1, max_size=3), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_after_junk_the_reader_reports_once_and_finds_the_next_frames(junk, payloads, cuts) -> None:
    data = junk + b"\r\n\r\n" + b"".join(frame(p) for p in payloads)
    reader = FrameReader(max_header_bytes=4096)
    events = [e for piece in chunked(data, cuts) for e in reader.feed(piece)]
    assert isinstance(events[0], Malformed)
    assert events[1:] == [Frame(p) for p in payloads]


# -- the real server ----------------------------------------------------------------------------------------------

class RawServer:
    """The real `mercury-lsp` over pipes, with its answers (messages that carry an id) collected by a thread."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        self.answers: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        reader = FrameReader()
        while chunk := self.process.stdout.read1(65536):
            for event in reader.feed(chunk):
                assert isinstance(event, Frame), event
                answer = json.loads(event.body)
                if "id" in answer:
                    self.answers.put(answer)

    def send(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def until(self, last_id: str, timeout: float = 30.0) -> list[dict]:
        """Every answer up to (and with) the one for `last_id`."""
        got, deadline = [], time.monotonic() + timeout
        while not got or got[-1].get("id") != last_id:
            got.append(self.answers.get(timeout=max(deadline - time.monotonic(), 0.01)))
        return got

    def close(self) -> int:
        self.send(frame(message(id="bye", method="shutdown")) + frame(message(method="exit")))
        self.process.stdin.close()
        return self.process.wait(30)


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    live = RawServer()
    live.send(frame(message(id="init", method="initialize", params={"capabilities": {}, "initializationOptions": {
        "mercury": {"engineUrl": "http://127.0.0.1:9", "debounceMs": 0}}})))
    live.until("init")
    live.send(frame(message(method="initialized", params={})))
    yield live
    assert live.close() == 0


REQUESTS = {  # requests that are cheap to answer, with a result or an error
    "unknown": ("mercury/noSuchMethod", {}),
    "bad params": ("textDocument/inlineCompletion", {"textDocument": 5}),
    "completion": ("textDocument/completion", {"textDocument": {"uri": "file:///nowhere.py"},
                                               "position": {"line": 0, "character": 0}}),
}
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=10)
malformed = st.one_of(
    st.binary(max_size=200).map(frame),  # a body that is not JSON (or is, by chance)
    json_values.map(lambda v: frame(json.dumps(v).encode())),  # JSON that is not a JSON-RPC message
    st.builds(lambda id_, method: frame(json.dumps({"jsonrpc": "1.0", "id": id_, "method": method}).encode()),
              st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2)),
              st.one_of(st.integers(), st.none(), st.text(max_size=5))),
    st.integers(1000, 200_000).map(lambda n: b"X-Long: " + b"a" * n + b"\r\n\r\n"),  # one endless header line
    st.integers(2, 200).map(lambda n: frame(b"[" * n * 500 + b"]" * n * 500)),  # nested past any recursion limit
    st.binary(min_size=1, max_size=50).filter(lambda b: not b.strip().isdigit())
    .map(lambda b: b"Content-Length: " + b + b"\r\n\r\n"),  # a length that is no number
    st.builds(lambda body, cut: b"Content-Length: %d\r\n\r\n" % max(len(body) - cut, 0) + body,  # too short
              json_values.map(lambda v: json.dumps({"jsonrpc": "2.0", "method": "x", "params": v}).encode()),
              st.integers(1, 30)),
    st.binary(max_size=100).filter(lambda b: b"content-length" not in b.lower()),  # bytes between frames
)
items = st.lists(st.one_of(malformed.map(lambda b: ("junk", b)),
                           st.sampled_from(sorted(REQUESTS)).map(lambda k: ("request", k))), min_size=1, max_size=8)
_counter = iter(range(10**9))


@settings(max_examples=int(os.environ.get("MERCURY_FUZZ_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(script=items)
def test_the_server_answers_every_request_between_malformed_frames(server: RawServer, script) -> None:
    asked = []
    data = b""
    for kind, value in script:
        if kind == "junk":
            data += value
        else:
            request_id = f"r{next(_counter)}"
            method, params = REQUESTS[value]
            # A header section ends the junk before it, so that no request is swallowed as part of a bad frame.
            data += b"\r\n\r\n" + frame(message(id=request_id, method=method, params=params))
            asked.append(request_id)
    last = f"check{next(_counter)}"
    data += b"\r\n\r\n" + frame(message(id=last, method="textDocument/completion",
                                        params=REQUESTS["completion"][1]))
    server.send(data)
    answers = server.until(last)
    assert server.process.poll() is None, "the server is alive"
    assert answers[-1]["result"] == {"isIncomplete": True, "items": []}
    answered = [a["id"] for a in answers if a["id"] is not None]
    # Junk cannot swallow a request that follows a blank line; the ones junk itself contains (by chance) may be
    # answered too. Every one we sent is answered exactly once.
    for request_id in asked:
        assert answered.count(request_id) == 1, (request_id, answers)
    assert all("error" in a or "result" in a for a in answers)
    assert {a["error"]["code"] for a in answers if "error" in a} <= {-32700, -32600, -32601, -32602}
