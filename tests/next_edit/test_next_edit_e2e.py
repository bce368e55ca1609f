"""End to end: the real `mercury-lsp` over stdio answers `textDocument/copilotInlineEdit` after a rename, from the
real engine HTTP server (its batcher, /v1/edit/completions, next-edit method and infill) running a scripted
model that knows the renamed file; and from a loopback stand-in of Inception's own edit route."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mercury_lsp.engine.batcher import Batcher
from mercury_lsp.engine.metrics import EngineMetrics
from mercury_lsp.engine.server import ServeConfig, build_app

sys.path.insert(0, str(Path(__file__).parent.parent / "lsp"))
from scripted_rename import BEFORE, scripted_loaded  # noqa: E402
from session import session  # noqa: E402

URI = "file:///work/project/pkg/calc.py"
INCEPTION_KEY = "sk-test-inception"


class LoopbackServer:
    """An aiohttp application served on 127.0.0.1 from a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.url = ""
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextlib.contextmanager
def scripted_rename_server() -> Iterator[str]:
    """The engine's HTTP app and batcher on a loopback port, serving the scripted model that knows RENAMED."""
    metrics = EngineMetrics()
    batcher = Batcher(Path("scripted-rename"), "cpu", metrics, max_batch=4, loaded=scripted_loaded(),
                      engine_options={"reuse_suffix": False, "cuda_graphs": False})
    server = LoopbackServer(build_app(ServeConfig(model="scripted-rename", port=0), batcher, metrics))
    batcher.start()
    try:
        yield server.url
    finally:
        batcher.stop()
        server.stop()


@pytest.fixture(scope="module")
def scripted_engine_url() -> Iterator[str]:
    with scripted_rename_server() as url:
        yield url


def rename_on_line_1(live: Any) -> None:
    """The user renames `result` to `item` where it is assigned (line 1, columns 4-10)."""
    from lsprotocol import types

    live.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=1, character=4), end=types.Position(line=1, character=10)),
            text="item")],
    ))


async def inline_edit(live: Any, line: int = 1, character: int = 8) -> dict[str, Any]:
    answer = await live.raw_request("textDocument/copilotInlineEdit", {
        "textDocument": {"uri": URI, "version": 2}, "position": {"line": line, "character": character},
    })
    return answer if isinstance(answer, dict) else answer._asdict()


def plain(value: Any) -> Any:
    """pygls hands unknown results back as named tuples: plain dicts, recursively."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def test_a_rename_on_one_line_yields_an_inline_edit_on_another(scripted_engine_url: str, tmp_path) -> None:
    settings = {"engineUrl": scripted_engine_url, "nextEdit": True, "autoStart": False}
    async with session(settings, env={"MERCURY_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}) as live:
        live.open(URI, BEFORE)
        await live.wait_for_state("ready")
        assert plain(await inline_edit(live)) == {"edits": []}  # nothing edited yet: nothing to follow
        rename_on_line_1(live)
        answer = plain(await inline_edit(live))
    assert answer["edits"] == [{
        "range": {"start": {"line": 2, "character": 11}, "end": {"line": 2, "character": 17}},
        "text": "item", "textDocument": {"uri": URI, "version": 2},
    }]


async def test_next_edits_are_off_by_default(scripted_engine_url: str, tmp_path) -> None:
    settings = {"engineUrl": scripted_engine_url, "autoStart": False}
    async with session(settings, env={"MERCURY_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}) as live:
        live.open(URI, BEFORE)
        await live.wait_for_state("ready")
        rename_on_line_1(live)
        assert plain(await inline_edit(live)) == {"edits": []}


@pytest.fixture(scope="module")
def inception_standin() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Inception's /v1/edit/completions as documented: one user message, no streaming, the answer is the code to
    edit rewritten in triple backticks in a chat completion. Its 'model' renames what the history renamed."""
    seen: list[dict[str, Any]] = []

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "mercury-edit-2", "object": "model"}]})

    async def edit(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {INCEPTION_KEY}":
            return web.json_response({"error": {"message": "Invalid API key", "type": "auth"}}, status=401)
        body = await request.json()
        seen.append(body)
        if set(body) - {"model", "messages", "max_tokens", "temperature"} or len(body["messages"]) != 1:
            return web.json_response({"error": {"message": "Unexpected fields", "type": "invalid"}}, status=400)
        content = body["messages"][0]["content"]
        region = content.split("<|code_to_edit|>\n", 1)[1].split("<|/code_to_edit|>", 1)[0]
        rewritten = region.replace("<|cursor|>", "").replace("result", "item")
        return web.json_response({
            "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"```\n{rewritten}```"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/edit/completions", edit)
    server = LoopbackServer(app)
    yield server.url, seen
    server.stop()


async def test_the_inception_backend_consumes_its_edit_route(inception_standin, tmp_path) -> None:
    url, seen = inception_standin
    settings = {"engineUrl": url + "/v1", "backend": "inception", "apiKey": INCEPTION_KEY, "nextEdit": True,
                "autoStart": False}
    async with session(settings, env={"MERCURY_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}) as live:
        live.open(URI, BEFORE)
        await live.wait_for_state("ready")
        rename_on_line_1(live)
        answer = plain(await inline_edit(live))
    assert answer["edits"][0]["range"] == {"start": {"line": 2, "character": 11}, "end": {"line": 2, "character": 17}}
    assert answer["edits"][0]["text"] == "item"
    prompt = seen[-1]["messages"][0]["content"]
    assert seen[-1]["model"] == "mercury-edit-2" and seen[-1]["messages"][0]["role"] == "user"
    assert prompt.startswith("<|recently_viewed_code_snippets|>\n")
    assert "<|current_file_content|>\ncurrent_file_path: pkg/calc.py\n" in prompt
    assert "    item<|cursor|> = a + b\n" in prompt
    assert "<|edit_diff_history|>\n--- pkg/calc.py\n+++ pkg/calc.py\n@@ -2,1 +2,1 @@\n-    result = a + b\n" \
           "+    item = a + b\n" in prompt
