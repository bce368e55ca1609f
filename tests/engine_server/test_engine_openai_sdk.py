"""The official OpenAI SDK for Python, pointed at our engine with a base URL: /v1/completions and
/v1/fim/completions, whole and streamed, with a key, and its error types for our errors."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai.types import Completion

from checkpoints import SAMPLE_CODE
from engine_process import EngineProcess
from standins import KEY

PREFIX = SAMPLE_CODE[:250]
SUFFIX = SAMPLE_CODE[250:310]
# One token per step: the canvas settles from the left in pieces, so the stream has more than one.
FIELDS = {"max_tokens": 24, "seed": 1}
EXTRA = {"steps": 24, "threshold": 1.0}


@pytest.fixture
def engine(keyed_engine: EngineProcess) -> EngineProcess:
    return keyed_engine


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=engine.url + "/v1", api_key=KEY, max_retries=0, timeout=60) as sdk:
        yield sdk


def test_completions_whole_and_streamed(client):
    whole = client.completions.create(model="tiny", prompt=PREFIX, suffix=SUFFIX, extra_body=EXTRA, **FIELDS)
    assert isinstance(whole, Completion)
    (choice,) = whole.choices
    assert choice.finish_reason in ("stop", "length")
    assert "".join(choice.logprobs.tokens) == choice.text and len(choice.logprobs.text_offset) == len(
        choice.logprobs.tokens)
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    chunks = list(client.completions.create(model="tiny", prompt=PREFIX, suffix=SUFFIX, stream=True,
                                            stream_options={"include_usage": True}, extra_body=EXTRA, **FIELDS))
    pieces = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(pieces) == choice.text
    assert len([p for p in pieces if p]) >= 2
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_fim_completions_whole_and_streamed(client):
    body = {"model": "mercury-edit-2", "prompt": PREFIX, "suffix": SUFFIX, **FIELDS, **EXTRA}
    whole = client.post("/fim/completions", body=body, cast_to=Completion)
    assert isinstance(whole, Completion) and whole.object == "text_completion"
    assert whole.usage.completion_tokens > 0
    stream = client.post("/fim/completions", body={**body, "stream": True}, cast_to=Completion, stream=True,
                         stream_cls=openai.Stream[Completion])
    pieces = [chunk.choices[0].text for chunk in stream]
    assert "".join(pieces) == whole.choices[0].text
    assert len([p for p in pieces if p]) >= 2


def test_our_errors_become_the_sdks_errors(engine, client):
    with pytest.raises(openai.BadRequestError, match="'max_tokens' must be an integer from 1 to 256"):
        client.completions.create(model="tiny", prompt=PREFIX, max_tokens=1000)
    with pytest.raises(openai.AuthenticationError, match="A valid bearer API key is required"):
        with openai.OpenAI(base_url=engine.url + "/v1", api_key="wrong", max_retries=0) as stranger:
            stranger.completions.create(model="tiny", prompt=PREFIX, max_tokens=4)
