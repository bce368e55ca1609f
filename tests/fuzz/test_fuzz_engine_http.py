"""Raw HTTP at the real engine: odd request lines, headers and bodies, and JSON bodies whose every field may be of
the wrong type, out of range, non-finite, huge or nested past any limit. Nothing gets a 500, every error is the
JSON shape, and the engine keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercury_lsp.engine.api.infill import FIELD_NAMES

EXAMPLES = int(os.environ.get("MERCURY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
# The routes that take a JSON body, infill routes first (each queues work on the model).
ROUTES = ["/v1/infill", "/v1/completions", "/v1/fim/completions", "/api/generate", "/infill", "/v1/cancel",
          "/api/show"]
INFILL_ROUTES = ROUTES[:5]
EXPECTED = {200, 400, 401, 404, 405, 413, 417, 429, 503, 504}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["\ud800", "x" * 5000, "\u202e", "NaN", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=6)
# Fields of every route, and values that are valid but cheap (the tiny model still runs them).
names = st.sampled_from(sorted(FIELD_NAMES | {"prompt", "model", "stop", "stream", "stream_options", "logprobs",
                                              "echo", "best_of", "top_p", "top_k", "presence_penalty", "n",
                                              "options", "raw", "format", "images", "input_prefix", "input_suffix",
                                              "input_extra", "n_predict", "response_fields", "t_max_predict_ms"}))
cheap = {"max_tokens": st.integers(1, 8), "steps": st.integers(1, 8), "n": st.integers(1, 2),
         "prefix": st.text(max_size=60), "prompt": st.text(max_size=60), "stream": st.booleans(),
         "timeout_ms": st.sampled_from([1, 50, 5000]), "input_prefix": st.text(max_size=60),
         "n_predict": st.integers(-1, 8), "options": st.fixed_dictionaries({"num_predict": st.integers(1, 8)}),
         "input_extra": st.lists(st.fixed_dictionaries({"text": st.text(max_size=20),
                                                        "filename": st.text(max_size=10)}), max_size=2),
         "response_fields": st.lists(st.sampled_from(["content", "timings/predicted_n", "", "a/b/c"]), max_size=3)}


@st.composite
def json_bodies(draw) -> bytes:
    body = {name: draw(cheap.get(name, values) if draw(st.booleans()) else values)
            for name in draw(st.lists(names, max_size=6, unique=True))}
    text = json.dumps(body)
    spoil = draw(st.sampled_from(["none", "none", "nan", "deep", "bigint", "truncate"]))
    if spoil == "nan":
        text = text[:-1] + (', "seed": NaN}' if len(text) > 2 else '"seed": NaN}')
    elif spoil == "deep":
        text = "[" * 100_000 + "]" * 100_000
    elif spoil == "bigint":
        text = '{"prefix": "x", "seed": ' + "7" * 5000 + "}"
    elif spoil == "truncate":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    return text.encode("utf-8", "surrogatepass")


header_values = st.one_of(st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
                          st.sampled_from([b"Bearer \xff\xfe", "Bearer ключ".encode(), b"chunked", b"-1",
                                           b"99999999999999999999", b"gzip", b"a" * 10_000]))


@st.composite
def raw_requests(draw) -> bytes:
    method = draw(st.sampled_from([b"POST", b"POST", b"GET", b"PUT", b"DELETE", b"BREW", b"G\x00T", b""]))
    path = draw(st.sampled_from([r.encode() for r in ROUTES] + [b"/health", b"/metrics", b"/v1/models", b"/",
                                                                  b"/api/tags", b"/api/version",
                                                                  b"/v1/infill?key=x", b"/%ff%00", b"*",
                                                                  b"/" + b"a" * 9000]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"FOO"]))
    body = draw(json_bodies() | st.binary(max_size=200))
    headers = [(b"Host", b"x"), (b"Connection", b"close")]
    framing = draw(st.sampled_from(["length", "length", "chunked", "bad-chunked", "lying-length", "none"]))
    if framing == "length":
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "lying-length":
        headers.append((b"Content-Length", str(max(len(body) - draw(st.integers(1, 10)), 0)).encode()))
    elif framing in ("chunked", "bad-chunked"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if framing == "chunked" else b"zz\r\n" + body
    for _ in range(draw(st.integers(0, 3))):
        headers.append((draw(st.sampled_from([b"Authorization", b"Content-Type", b"X-Mercury-Challenge",
                                              b"Expect", b"Bad Name", b""])), draw(header_values)))
    head = method + b" " + path + b" " + version + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return head + b"\r\n" + body


async def exchange(url: str, data: bytes) -> bytes:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), 30)
    finally:
        writer.close()


def check_answer(answer: bytes) -> int:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].split()
    assert status_line[0].startswith(b"HTTP/1."), answer[:200]
    status = int(status_line[1])
    assert status in EXPECTED, answer[:500]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])}
    if status >= 400:
        assert headers[b"content-type"].startswith(b"application/json"), answer[:300]
        error = json.loads(body)["error"]
        assert isinstance(error["message"], str) and error["message"].endswith(".") and error["type"]
    return status


@FUZZ
@given(data=raw_requests())
def test_raw_http_never_gets_a_500(engine, data: bytes) -> None:
    answer = asyncio.run(exchange(engine.url, data))
    if answer:  # aiohttp may close a connection whose request line it cannot even split
        check_answer(answer)
    assert engine.health()["status"] == "ok"


@FUZZ
@given(route=st.sampled_from(INFILL_ROUTES), body=json_bodies())
def test_json_bodies_are_checked_before_they_are_queued(engine, route: str, body: bytes) -> None:
    request = (f"POST {route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    status = check_answer(asyncio.run(exchange(engine.url, request)))
    assert status in (200, 400, 504), status
