"""The real language server over stdio against stand-ins that copy how vLLM, SGLang and llama.cpp take
fill-in-the-middle: each backend setting sends what that server accepts, and what its model would read is the FIM
prompt of the code around the cursor."""

from __future__ import annotations

from typing import Any

from lsp.session import Session, session

from mercury_lsp.engine.api import fim_templates
from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine_client import AFFINITY_HEADER, EngineClient, EngineError, affinity_key

from standins import KEY, SERVED_MODEL, llamacpp, sglang, vllm

URI = "file:///work/project/stats.py"
SOURCE = "def mean(values):\n    total = sum(values)\n    return \n\n\nprint(mean([1, 2]))\n"
LINE, COLUMN = 2, len("    return ")
BEFORE = SOURCE[: SOURCE.index("return ") + len("return ")]
AFTER = SOURCE[len(BEFORE):]


def settings(url: str, backend: str, **extra: Any) -> dict[str, Any]:
    return {"engineUrl": url, "backend": backend, "remoteModel": SERVED_MODEL, "apiKey": KEY, "minConfidence": 0,
            "debounceMs": 0} | extra


async def suggest(live: Session) -> tuple[list[str], dict[str, Any]]:
    live.open(URI, SOURCE)
    await live.wait_for_state("ready", timeout=30)
    answer, status = await live.inline_with_status(URI, LINE, COLUMN)
    return [item.insert_text for item in answer.items], status


def check_prompt_reads_the_cursor(model_prompt: str, shown: list[str], headers: dict[str, str]) -> None:
    assert model_prompt.endswith(f"<|fim_prefix|># stats.py\n{BEFORE}<|fim_suffix|>{AFTER}<|fim_middle|>")
    assert shown == [f"total + {len(model_prompt)}"], "the server's answer is what the editor shows"
    assert headers[AFFINITY_HEADER] == affinity_key(URI)


async def test_vllm_gets_a_prompt_written_for_the_model_family():
    async with vllm() as stand_in:
        async with session(settings(stand_in.url + "/v1", "openai", fimTemplate="qwen")) as live:
            shown, status = await suggest(live)
    (body,) = stand_in.requests
    assert "suffix" not in body and body["prompt"] == fim_templates.render("qwen", "# stats.py\n" + BEFORE, AFTER)
    assert body["stop"] == [*fim_templates.TEMPLATES["qwen"].stop, "\n"], "the family's stop tokens, one line"
    check_prompt_reads_the_cursor(stand_in.model_prompts[0], shown, stand_in.headers[0])
    assert status["message"] is None and status["tokens"] == 10


async def test_vllm_refusing_suffix_names_the_setting_to_change():
    async with vllm() as stand_in:
        async with session(settings(stand_in.url, "openai")) as live:
            shown, status = await suggest(live)
    assert shown == [] and not stand_in.requests
    assert status["message"] == (
        f"The server at {stand_in.url} does not accept `suffix` (vLLM and llama.cpp's /v1/completions refuse it): "
        "set mercury.fimTemplate to your model's family (qwen, starcoder, codellama, deepseek, codestral), or for "
        "a llama.cpp server set mercury.backend to llamacpp.")


async def test_sglang_with_a_completion_template_wraps_the_suffix_it_is_sent():
    async with sglang() as stand_in:
        async with session(settings(stand_in.url, "openai")) as live:
            shown, _ = await suggest(live)
    (body,) = stand_in.requests
    assert (body["prompt"], body["suffix"], body["stop"]) == ("# stats.py\n" + BEFORE, AFTER, ["\n"])
    check_prompt_reads_the_cursor(stand_in.model_prompts[0], shown, stand_in.headers[0])


async def test_sglang_wraps_nothing_at_the_end_of_a_file():
    """An empty suffix is still sent; SGLang then gives the model the plain prompt, which a base coder model
    continues as it is."""
    async with sglang() as stand_in:
        client = EngineClient(stand_in.url, "openai", remote_model=SERVED_MODEL)
        try:
            result = await client.infill(InfillRequest(prefix=BEFORE, suffix=""))
        finally:
            await client.close()
    assert stand_in.requests[0]["suffix"] == "" and stand_in.model_prompts == [BEFORE]
    assert result.texts == (f"total + {len(BEFORE)}",)


async def test_llamacpp_infill_gets_its_fields_and_our_extra_context():
    async with llamacpp() as stand_in:
        other = "file:///work/project/helpers.py"
        async with session(settings(stand_in.url, "llamacpp", extraContextTokens=200)) as live:
            live.open(other, "def helper(x):\n    return x * 2\n")
            shown, status = await suggest(live)
    (body,) = stand_in.requests
    extra = body.pop("input_extra")
    assert body == {"input_prefix": "# stats.py\n" + BEFORE, "input_suffix": AFTER, "prompt": "", "n_predict": 16,
                    "t_max_predict_ms": 1000, "cache_prompt": True, "temperature": 0.0, "stop": ["\n"]}
    assert extra == [{"filename": "", "text": "# helpers.py\ndef helper(x):\n    return x * 2\n"}]
    check_prompt_reads_the_cursor(stand_in.model_prompts[0], shown, stand_in.headers[0])
    assert status["tokens"] == 5 and status["engineMs"] == 42.5


async def test_llamacpp_openai_route_refusing_suffix_points_to_the_llamacpp_backend():
    async with llamacpp() as stand_in:
        client = EngineClient(stand_in.url, "openai", remote_model=SERVED_MODEL)
        try:
            await client.infill(InfillRequest(prefix=BEFORE, suffix=AFTER))
        except EngineError as error:
            refused = error
        finally:
            await client.close()
    assert refused.status == 400 and "set mercury.backend to llamacpp" in str(refused)


async def test_code_holding_a_template_marker_is_one_sentence():
    client = EngineClient("http://127.0.0.1:9", "openai", fim_template="starcoder")
    try:
        await client.infill(InfillRequest(prefix="s = '<fim_suffix>'\n", suffix=""))
    except EngineError as error:
        assert str(error).startswith("No starcoder FIM prompt can be written here: ") and "\n" not in str(error)
    else:
        raise AssertionError("a marker in the code was sent")
    finally:
        await client.close()
