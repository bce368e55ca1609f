"""End to end: the real `mercury-lsp` process, which auto-starts the real engine on a tiny checkpoint.

Expected texts come from the engine itself: the request the language server should send, written out here
field by field and sent straight to /v1/infill, then cut and filtered the same way, must give what the
language server answered (the engine is seeded).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from session import Session, session

from mercury_lsp.engine import daemon
from mercury_lsp.engine.api.infill import Completion, parse_spans
from mercury_lsp.positions import index_to_column
from mercury_lsp.postprocess import CursorView, suggestion

ROOT = "/work/project"
URI = f"file://{ROOT}/pkg/calc.py"
SOURCE = '''def add(a, b):
    return a + b


def total(items):
    result = []
    for item in items:
        result.append(item)
    return sum(result)
'''


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[dict[str, Any]]:
    """A private runtime folder for the auto-started engine, stopped after the module."""
    folder = tmp_path_factory.mktemp("runtime")
    previous = os.environ.get("MERCURY_RUNTIME_DIR")
    os.environ["MERCURY_RUNTIME_DIR"] = str(folder)
    env = {**os.environ, "MERCURY_RUNTIME_DIR": str(folder)}
    try:
        yield {"env": env, "model": str(tiny_checkpoint), "folder": folder}
    finally:
        daemon.stop_engine()
        if previous is None:
            os.environ.pop("MERCURY_RUNTIME_DIR", None)
        else:
            os.environ["MERCURY_RUNTIME_DIR"] = previous


def engine_url() -> str:
    info = daemon.read_port_file()
    assert info is not None, "no engine port file"
    return info["url"]


def http_json(path: str, body: dict[str, Any] | None = None) -> Any:
    """A call to the auto-started engine, with the runtime folder's secret as the language server sends it."""
    key = daemon.read_secret()
    request = urllib.request.Request(
        engine_url() + path, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {}),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if path != "/metrics" else raw.decode()


def metric(name: str, labels: str = "") -> float:
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in http_json("/metrics").splitlines():
        if not line.startswith("#") and line.rsplit(" ", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def infill_requests() -> float:
    return metric("mercury_requests_total", 'endpoint="/v1/infill",status="200"')


def infill_body(before: str, after: str, path: str = "pkg/calc.py", steps: int | None = 8, extra: str = "",
                single_line: bool | None = None) -> dict[str, Any]:
    """The /v1/infill body the language server should send for a small file: the whole text on both sides,
    the file's path as the header, a 16-token canvas for one line (mid-line), 64 for a block."""
    if single_line is None:
        single_line = bool(after.split("\n", 1)[0].strip())
    body = {"prefix": before, "suffix": after, "header": f"# {path}\n",
            "max_tokens": 16 if single_line else 64, "single_line": single_line}
    if extra:
        body["extra_context"] = extra
    if steps is not None:
        body["steps"] = steps
    return body


def shown(answer: dict[str, Any], before: str, after: str, min_confidence: float = 0.0,
          max_lines: int | None = None) -> str:
    """What the language server shows for an engine answer: cut at the confidence, then filtered."""
    completion = Completion(answer["text"], answer["tokens"], parse_spans(answer.get("spans"), answer["text"]))
    return suggestion(completion, CursorView.around(before, after), min_confidence, max_lines)


def expected(before: str, after: str, **fields: Any) -> str:
    """What the server should show: the engine's answer to the same request, through the same filters."""
    return shown(http_json("/v1/infill", infill_body(before, after, **fields)), before, after)


def offset(text: str, line: int, character: int) -> int:
    lines = text.split("\n")
    return sum(len(row) + 1 for row in lines[:line]) + character


def settings_for(runtime: dict[str, Any], **extra: Any) -> dict[str, Any]:
    # A random model is sure of nothing: no confidence cut, and blocks allowed, unless a test asks.
    return {"model": runtime["model"], "device": "cpu", "steps": 8, "debounceMs": 30,
            "debounceMaxMs": 60, "minConfidence": 0, "maxLines": None, **extra}


def engine_session(runtime: dict[str, Any], **extra: Any) -> Any:
    """A language server session whose engine is the module's auto-started one."""
    return session(settings_for(runtime, **extra), env=runtime["env"])


async def open_ready(live: Session, text: str = SOURCE, uri: str = URI) -> None:
    live.open(uri, text)
    await live.wait_for_state("ready", timeout=90)


async def first_suggestion(live: Session) -> str:
    """The suggestion at the end of `    result = []`, with its status already received."""
    answer, _ = await live.inline_with_status(URI, 5, 15)
    assert answer.items, "the tiny model's text was filtered to nothing; pick another cursor"
    return answer.items[0].insert_text


async def test_first_request_starts_the_engine_and_answers_nothing_while_it_loads(runtime) -> None:
    async with engine_session(runtime) as live:
        live.open(URI, SOURCE)
        started = time.perf_counter()
        early = await live.inline(URI, 7, 8)
        assert list(early.items) == [] and time.perf_counter() - started < 1.0
        await live.wait_for_state("ready", timeout=90)
        def progress_kinds() -> list[str]:
            return [report.kind for reports in live.client.progress_reports.values() for report in reports]

        deadline = time.monotonic() + 5  # $/progress end follows the ready status
        while progress_kinds()[-1:] != ["end"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert progress_kinds()[0] == "begin" and progress_kinds()[-1] == "end"
        answer = await live.inline(URI, 7, 8)
        assert answer.items, "the tiny model's text was filtered to nothing; pick another cursor"


async def test_inline_completion_is_the_engines_infill_at_the_cursor(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        cursor = offset(SOURCE, 5, 15)  # "    result = []|"
        want = expected(SOURCE[:cursor], SOURCE[cursor:])
        answer, status = await live.inline_with_status(URI, 5, 15)
        assert want and [item.insert_text for item in answer.items] == [want]
        # An insertion at the cursor, on one line: what VS Code needs to accept it word by word or line by line.
        here = types.Position(line=5, character=15)
        assert answer.items[0].range == types.Range(start=here, end=here)
        assert status["state"] == "ready" and status["tokens"] and status["steps"] and status["latencyMs"] > 0


async def test_completion_returns_the_item_from_the_word_start(runtime) -> None:
    async with engine_session(runtime) as live:
        text = SOURCE.replace("    return sum(result)", "    return su")
        await open_ready(live, text)
        cursor = offset(text, 8, 13)
        want = expected(text[:cursor], text[cursor:])
        result = await live.client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=8, character=13),
        ))
        assert result.is_incomplete
        item = result.items[0]
        assert want and item.text_edit.new_text == "su" + want and item.filter_text == "su" + want
        assert item.text_edit.range.start == types.Position(line=8, character=11)


async def test_did_change_then_a_request_at_the_new_position(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        live.insert(URI, 2, 7, 8, "total = ")  # "        total = result.append(item)"
        text = SOURCE.replace("        result.append(item)", "        total = result.append(item)")
        cursor = offset(text, 7, 16)
        want = expected(text[:cursor], text[cursor:])
        answer = await live.inline(URI, 7, 16)
        assert want and [item.insert_text for item in answer.items] == [want]


async def test_fill_code_action_and_command_regenerate_the_selection(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        selection = types.Range(start=types.Position(line=1, character=11),
                                end=types.Position(line=1, character=16))  # "a + b"
        actions = await live.client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=URI), range=selection,
            context=types.CodeActionContext(diagnostics=[]),
        ))
        assert [action.title for action in actions] == ["Regenerate selection"]
        resolved = await live.client.code_action_resolve_async(actions[0])
        edit = resolved.edit.changes[URI][0]
        assert edit.range == selection
        start, end = offset(SOURCE, 1, 11), offset(SOURCE, 1, 16)
        direct = http_json("/v1/infill", infill_body(SOURCE[:start], SOURCE[end:], single_line=True)
                           | {"max_tokens": 64})
        assert edit.new_text == direct["text"]
        result = await live.client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="mercury.fill", arguments=[URI, {"start": {"line": 1, "character": 11},
                                                     "end": {"line": 1, "character": 16}}],
        ))
        assert result is not None
        assert live.applied_edits and live.applied_edits[-1].changes[URI][0].new_text == direct["text"]


async def test_cancelled_request_gets_32800_and_the_engine_stops_it(runtime) -> None:
    # A long request: a 256-token canvas with one commit per step.
    async with engine_session(runtime, maxTokens=256, steps=1024, threshold=1.0) as live:
        await open_ready(live)
        before = metric("mercury_cancellations_total", 'reason="disconnect"')
        request_id = "slow-one"
        pending = live.client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=URI),
                position=types.Position(line=5, character=15),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            ),
            msg_id=request_id,
        )
        deadline = time.monotonic() + 10
        while metric("mercury_active_requests") < 1:
            assert time.monotonic() < deadline, "the request never reached the engine"
            await asyncio.sleep(0.02)
        live.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=request_id))
        with pytest.raises(JsonRpcException) as cancelled:
            await asyncio.wait_for(asyncio.wrap_future(pending), 10)
        assert cancelled.value.code == -32800
        while metric("mercury_cancellations_total", 'reason="disconnect"') < before + 1:
            assert time.monotonic() < deadline + 10, "the engine did not record the cancellation"
            await asyncio.sleep(0.05)
        assert metric("mercury_active_requests") == 0


async def test_rapid_typing_makes_one_engine_request(runtime) -> None:
    async with engine_session(runtime, debounceMs=150, debounceMaxMs=300) as live:
        await open_ready(live, SOURCE + "\n")
        before = infill_requests()
        futures = []
        typed = "print(total([1, 2, 3]))"[:20]
        for index, char in enumerate(typed):
            live.insert(URI, index + 2, 10, index, char)
            futures.append(live.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=URI),
                    position=types.Position(line=10, character=index + 1),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                ),
            ))
        answers = await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, futures)), 30)
        assert all(list(answer.items) == [] for answer in answers[:-1])
        assert infill_requests() == before + 1


async def test_type_through_is_served_from_the_cache(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        shown = await first_suggestion(live)
        assert len(shown) >= 2 and "\n" not in shown[:1]
        before = infill_requests()
        live.insert(URI, 2, 5, 15, shown[0])
        second, status = await live.inline_with_status(URI, 5, 16)
        assert [item.insert_text for item in second.items] == [shown[1:]]
        assert infill_requests() == before
        assert status["source"] == "cache"


@pytest.mark.parametrize(("encoding", "column"), [("utf-16", 7), ("utf-8", 9)])
async def test_emoji_and_cjk_split_at_the_right_place(runtime, encoding: str, column: int) -> None:
    line = 's = "😀漢字" + name'
    text = f"def greet(name):\n    {line}\n"
    async with session(settings_for(runtime), encodings=[encoding], env=runtime["env"]) as live:
        assert live.init.capabilities.position_encoding == encoding
        await open_ready(live, text)
        # The cursor sits after the emoji: UTF-16 column 4 + 7 (the emoji is 2 units), UTF-8 4 + 9 bytes.
        cursor = len("def greet(name):\n    ") + line.index("漢")
        want = expected(text[:cursor], text[cursor:])
        answer = await live.inline(URI, 1, 4 + column)
        assert want and [item.insert_text for item in answer.items] == [want]
        # A fill of 漢字 comes back with the same range in the client's units.
        width = 2 if encoding == "utf-16" else 6
        selection = types.Range(start=types.Position(line=1, character=4 + column),
                                end=types.Position(line=1, character=4 + column + width))
        edit = await live.client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="mercury.fill", arguments=[URI, {
                "start": {"line": 1, "character": 4 + column},
                "end": {"line": 1, "character": 4 + column + width}}],
        ))
        assert edit["changes"][URI][0]["range"] == {
            "start": {"line": 1, "character": selection.start.character},
            "end": {"line": 1, "character": selection.end.character},
        }


async def test_a_dead_engine_is_restarted(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        answer, _ = await live.inline_with_status(URI, 5, 15)
        assert answer.items
        old = daemon.read_port_file()
        os.kill(old["pid"], signal.SIGKILL)
        live.statuses.clear()
        lost = await live.inline(URI, 4, 17)  # the connection fails: nothing, and a restart begins
        assert list(lost.items) == []
        await live.wait_for_state("ready", timeout=90)
        assert daemon.read_port_file()["pid"] != old["pid"]
        assert (await live.inline(URI, 5, 15)).items


async def test_openai_backend_against_our_engine(runtime) -> None:
    """The remote path: any OpenAI-compatible /v1/completions with `suffix`, here our own engine."""
    async with engine_session(runtime) as live:
        await open_ready(live)  # the module's engine is up
    settings = {"engineUrl": engine_url(), "backend": "openai", "remoteModel": "tiny", "steps": 8,
                "apiKey": daemon.read_secret(), "maxLines": None, "minConfidence": 0}
    async with session(settings, env=runtime["env"]) as live:
        await open_ready(live)
        cursor = offset(SOURCE, 5, 15)
        # Other servers know no header field: it goes before the prefix, as our engine lays it out.
        direct = http_json("/v1/completions", {"model": "tiny", "prompt": "# pkg/calc.py\n" + SOURCE[:cursor],
                                               "suffix": SOURCE[cursor:], "max_tokens": 64, "n": 1, "temperature": 0})
        want = shown({"text": direct["choices"][0]["text"], "tokens": 0}, SOURCE[:cursor], SOURCE[cursor:])
        answer = await live.inline(URI, 5, 15)
        assert want and [item.insert_text for item in answer.items] == [want]


def test_demo_prints_the_completion_and_timings(runtime, tmp_path: Path) -> None:
    source = tmp_path / "calc.py"
    source.write_text(SOURCE)
    command = [sys.executable, "-m", "mercury_lsp.cli", "demo", f"{source}:6:16", "--model", runtime["model"],
               "--device", "cpu", "--steps", "8", "--json"]
    done = subprocess.run(command, env=runtime["env"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # With the default minConfidence a random model's text is cut to nothing: the engine still did the work.
    assert report["state"] == "ready" and isinstance(report["text"], str)
    assert report["latencyMs"] > 0 and report["engineMs"] > 0 and report["tokens"] > 0
    human = subprocess.run(command[:-1], env=runtime["env"], capture_output=True, text=True, timeout=120)
    assert human.returncode == 0 and "tokens/s" in human.stdout and "server overhead" in human.stdout


def test_demo_refuses_a_bad_location_in_one_sentence(tmp_path: Path) -> None:
    source = tmp_path / "calc.py"
    source.write_text(SOURCE)
    for location in (f"{source}:99:1", f"{tmp_path}/missing.py:1:1", "no-colons"):
        done = subprocess.run([sys.executable, "-m", "mercury_lsp.cli", "demo", location],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.startswith("mercury-lsp demo: ") and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr


async def test_accepting_a_suggestion_precomputes_the_next_one(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        shown = await first_suggestion(live)
        before = infill_requests()
        live.insert(URI, 2, 5, 15, shown)  # the editor inserts the accepted suggestion
        column = 15 + index_to_column(shown, len(shown), "utf-16")
        answer, status = await live.inline_with_status(URI, 5, column, automatic=True)
        assert infill_requests() == before + 1  # the pre-computation, which this request waited for
        assert status["source"] == "cache"
        accepted = SOURCE[: offset(SOURCE, 5, 15)] + shown
        assert [item.insert_text for item in answer.items] == [
            t for t in [expected(accepted, SOURCE[offset(SOURCE, 5, 15):])] if t]


async def test_extra_context_from_another_open_document_goes_before_the_prefix(runtime) -> None:
    helper = "def scale(value, factor):\n    return value * factor\n"
    async with engine_session(runtime, extraContextTokens=200) as live:
        live.open(f"file://{ROOT}/pkg/helpers.py", helper)
        await open_ready(live)
        cursor = offset(SOURCE, 5, 15)
        want = expected(SOURCE[:cursor], SOURCE[cursor:], extra="# pkg/helpers.py\n" + helper)
        answer = await live.inline(URI, 5, 15)
        assert want and [item.insert_text for item in answer.items] == [want]
        assert want != expected(SOURCE[:cursor], SOURCE[cursor:])  # the extra context changed the answer


async def test_a_missing_model_is_shown_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(tmp_path / "runtime"))
    settings = {"model": str(tmp_path / "no-such-model"), "device": "cpu"}
    try:
        async with session(settings, env={**os.environ}) as live:
            live.open(URI, SOURCE)
            failed = await live.wait_for_state("error", timeout=60)
            assert "no-such-model" in failed["message"]
            for _ in range(3):
                assert list((await live.inline(URI, 5, 15)).items) == []
            assert [m.message for m in live.client.messages] == [f"Mercury: {failed['message']}"]
    finally:
        daemon.stop_engine()


async def change_settings(live: Session, **changes: Any) -> None:
    """workspace/didChangeConfiguration with a `mercury` object, as VS Code and Neovim send it."""
    live.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"mercury": changes}))
    await asyncio.sleep(0.2)  # a notification has no answer to wait for


async def test_a_lone_surrogate_in_the_document_does_not_break_completion(runtime) -> None:
    # A UTF-16 editor half-way through typing an emoji sends its high surrogate alone.
    text = "s = '\ud83d'\n" + SOURCE
    async with engine_session(runtime) as live:
        await open_ready(live, text)
        cursor = offset(text, 6, 15)  # "    result = []|"
        before, after = text[:cursor], text[cursor:]
        answer, status = await live.inline_with_status(URI, 6, 15)
        assert status["message"] is None and status["source"] == "engine"
        clean = infill_body(before.replace("\ud83d", "\ufffd"), after)
        want = shown(http_json("/v1/infill", clean), before, after)
        assert want and [item.insert_text for item in answer.items] == [want]


async def test_a_configuration_change_clears_the_cache(runtime) -> None:
    async with engine_session(runtime) as live:
        await open_ready(live)
        await first_suggestion(live)
        _, status = await live.inline_with_status(URI, 5, 15)
        assert status["source"] == "cache"
        before = infill_requests()
        await change_settings(live, **settings_for(runtime, maxTokens=48))
        _, status = await live.inline_with_status(URI, 5, 15)
        assert status["source"] == "engine" and infill_requests() == before + 1


async def test_suggestions_are_cut_where_the_engines_confidence_drops(runtime) -> None:
    cursor = offset(SOURCE, 5, 15)
    before, after = SOURCE[:cursor], SOURCE[cursor:]
    async with engine_session(runtime) as live:
        await open_ready(live)
        answer = http_json("/v1/infill", infill_body(before, after))
        spans = parse_spans(answer["spans"], answer["text"])
        assert spans, "the engine sent no confidence spans"
        # Between the first span's confidence and the lowest one: the first word stays, a later one goes.
        confidences = sorted({round(span.confidence, 4) for span in spans[1:]})
        minimum = next((c for c in confidences if c > spans[-1].confidence), None) or confidences[-1]
        want = shown(answer, before, after, min_confidence=minimum)
        await change_settings(live, **settings_for(runtime, minConfidence=minimum))
        answer_items = (await live.inline(URI, 5, 15)).items
        assert [item.insert_text for item in answer_items] == [t for t in [want] if t]
        assert want != shown(answer, before, after)  # the cut took something away
        await change_settings(live, **settings_for(runtime, minConfidence=1.0))
        assert list((await live.inline(URI, 4, 17)).items) == []  # nothing is that sure: nothing shown


async def test_trigger_kinds_and_comments_decide_before_the_engine_is_asked(runtime) -> None:
    text = SOURCE + "# the total of \n"
    async with engine_session(runtime, triggerKinds=["invoked"], disableInComments=True) as live:
        await open_ready(live, text)
        before = infill_requests()
        assert list((await live.inline(URI, 5, 15, automatic=True)).items) == []
        assert list((await live.inline(URI, 9, 15)).items) == []  # inside the comment
        assert infill_requests() == before
        assert (await live.inline(URI, 5, 15)).items  # asked for, in code
        assert infill_requests() == before + 1


async def test_max_lines_one_asks_for_a_single_line(runtime) -> None:
    cursor = offset(SOURCE, 2, 0)  # the blank line after add(): a block would be allowed
    before, after = SOURCE[:cursor], SOURCE[cursor:]
    async with engine_session(runtime, maxLines=1) as live:
        await open_ready(live)
        want = shown(http_json("/v1/infill", infill_body(before, after, single_line=True)), before, after)
        answer = await live.inline(URI, 2, 0)
        assert [item.insert_text for item in answer.items] == [t for t in [want] if t]
        assert all("\n" not in item.insert_text for item in answer.items)
