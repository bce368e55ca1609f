"""/metrics as prometheus_client's own parser reads it: every metric name the engine has always published, with its
type, cumulative buckets, escaped labels and the windowed token rate."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiohttp
import torch
from prometheus_client.parser import text_string_to_metric_families

from mercury_lsp.engine.commit_probe import FEATURES, CommitProbe
from mercury_lsp.engine.metrics import EngineMetrics, TokenRate

from engine_process import metric

# name -> type: the names dashboards were built on before prometheus_client rendered them
FAMILIES = {
    "mercury_requests": "counter",
    "mercury_cancellations": "counter",
    "mercury_generated_tokens": "counter",
    "mercury_steps": "counter",
    "mercury_queue_depth": "gauge",
    "mercury_active_requests": "gauge",
    "mercury_tokens_per_second": "gauge",
    "mercury_batch_size": "histogram",
    "mercury_step_seconds": "histogram",
    "mercury_request_seconds": "histogram",
    "mercury_model_info": "gauge",  # the text format (0.0.4) writes prometheus_client's Info as a gauge
    "mercury_cuda_graph_captures": "gauge",
    "mercury_request_steps": "histogram",
    "mercury_answer_tokens": "counter",
    "mercury_tokens_per_step": "gauge",
    "mercury_context_cache_bytes": "gauge",
    "mercury_context_cache_limit_bytes": "gauge",
    # prometheus_client's process collector (Linux)
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_cpu_seconds": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}
SAMPLES = {
    "mercury_requests_total", "mercury_generated_tokens_total", "mercury_steps_total", "mercury_queue_depth",
    "mercury_active_requests", "mercury_tokens_per_second", "mercury_batch_size_bucket", "mercury_batch_size_sum",
    "mercury_batch_size_count", "mercury_step_seconds_bucket", "mercury_request_seconds_count", "mercury_model_info",
}


def families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


async def test_the_engines_metrics_parse_and_keep_every_name(shared_engine):
    async with aiohttp.ClientSession() as session:
        async with session.post(shared_engine.url + "/v1/infill", json={"prefix": "x = ", "max_tokens": 4}) as done:
            assert done.status == 200
        async with session.get(shared_engine.url + "/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
    assert families(text) == FAMILIES
    names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    assert SAMPLES <= names, SAMPLES - names
    assert not any(name.endswith("_created") for name in names)
    assert metric(text, "mercury_model_info", 'device="cpu",model="model",state="ok"') == 1
    assert metric(text, "mercury_requests_total", 'endpoint="/v1/infill",status="200"') >= 1
    assert metric(text, "mercury_steps_total") > 0
    assert metric(text, "mercury_cuda_graph_captures") == 0  # a CPU engine captures none
    # Tokens per step beside the steps: the answers' tokens over the steps the finished requests took.
    steps = metric(text, "mercury_request_steps_sum")
    assert steps >= 1 and metric(text, "mercury_request_steps_count") >= 1
    assert metric(text, "mercury_tokens_per_step") == round(metric(text, "mercury_answer_tokens_total") / steps, 4)


def test_tokens_per_step_counts_each_answer_against_its_steps() -> None:
    metrics = EngineMetrics()
    metrics.record_finished(tokens=9, seconds=0.1, answer_tokens=6, steps=2)  # 9: three candidates' tokens
    metrics.record_finished(tokens=1, seconds=0.1, answer_tokens=1, steps=4)
    text = metrics.render().decode()
    assert metric(text, "mercury_tokens_per_step") == round(7 / 6, 4)
    assert metric(text, "mercury_request_steps_bucket", 'le="2.0"') == 1
    assert metric(text, "mercury_generated_tokens_total") == 10


def resident_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024


async def test_metrics_report_the_processes_memory_and_the_caches_bounds(shared_engine):
    async with aiohttp.ClientSession() as session:
        for typed in ("def area(radius", "def area(radius)", "def area(radius):"):
            body = {"prefix": "import math\n" * 40 + typed, "suffix": "\n\nprint(area(2))\n", "max_tokens": 4}
            async with session.post(shared_engine.url + "/v1/infill", json=body) as done:
                assert done.status == 200
        async with session.get(shared_engine.url + "/metrics") as response:
            text = await response.text()
        async with session.get(shared_engine.url + "/health") as response:
            memory = (await response.json())["memory"]
    rss = metric(text, "process_resident_memory_bytes")
    assert 0.8 < rss / resident_bytes(shared_engine.process.pid) < 1.25  # the engine's own RSS, read at the scrape
    for cache in ("prefix", "suffix"):
        held = metric(text, "mercury_context_cache_bytes", f'cache="{cache}"')
        limit = metric(text, "mercury_context_cache_limit_bytes", f'cache="{cache}"')
        assert 0 < held <= limit
        assert memory[f"{cache}_cache"]["max_mb"] == round(limit / 2**20, 1)
    assert memory["context_slots"]["slots"] == 16 and memory["context_slots"]["mb_per_slot"] > 0
    assert "mercury_cuda_memory_allocated_bytes" not in text  # a CPU engine has no device memory to report


async def test_health_says_how_tokens_are_committed(start_engine, tiny_checkpoint, tmp_path):
    # A model folder with a commit probe: the engine commits by it unless told --commit-rule threshold.
    probed = tmp_path / "probed"
    shutil.copytree(tiny_checkpoint, probed)
    features = len(FEATURES)
    CommitProbe(torch.zeros(features), torch.ones(features), torch.zeros(4, features), torch.zeros(4),
                torch.zeros(4), torch.tensor([2.0]), threshold=0.6).save(probed)
    answers = {}
    for rule in ("probe", "threshold"):
        engine = start_engine("--commit-rule", rule, model=probed)
        engine.wait_ready()
        async with aiohttp.ClientSession() as session:
            async with session.get(engine.url + "/health") as response:
                answers[rule] = (await response.json())["sampler"]
            async with session.post(engine.url + "/v1/infill", json={"prefix": "x = ", "max_tokens": 4}) as done:
                assert done.status == 200
    assert answers["probe"] == {"commit_rule": "probe", "threshold": 0.9, "tail_threshold": 0.9,
                                "confidence": "probability", "probe_threshold": 0.6}
    assert answers["threshold"] == {"commit_rule": "threshold", "threshold": 0.9, "tail_threshold": 0.9,
                                    "confidence": "probability"}


async def test_serve_takes_the_engines_step_options(start_engine):
    engine = start_engine("--no-cuda-graphs", "--confidence", "margin", "--refresh-every", "2", "--no-suffix-reuse")
    engine.wait_ready()
    async with aiohttp.ClientSession() as session:
        async with session.post(engine.url + "/v1/infill", json={"prefix": "x = ", "max_tokens": 4}) as done:
            assert done.status == 200 and all(0 <= s["confidence"] <= 1 for s in (await done.json())["spans"])


def test_buckets_are_cumulative_and_labels_escaped():
    metrics = EngineMetrics()
    metrics.set_model("ok", 'we"ird\\name\n', "cpu")
    metrics.count_request("/v1/infill", 200)
    metrics.count_request("/v1/infill", 200)
    metrics.count_cancellation("disconnect")
    for batch in (3, 1, 40):
        metrics.record_step(batch=batch, seconds=0.02)
    text = metrics.render().decode()
    assert metric(text, "mercury_requests_total", 'endpoint="/v1/infill",status="200"') == 2
    assert metric(text, "mercury_cancellations_total", 'reason="disconnect"') == 1
    assert metric(text, "mercury_batch_size_bucket", 'le="2.0"') == 1
    assert metric(text, "mercury_batch_size_bucket", 'le="4.0"') == 2
    assert metric(text, "mercury_batch_size_bucket", 'le="+Inf"') == 3
    assert metric(text, "mercury_batch_size_sum") == 44
    info = [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "mercury_model_info"]
    assert [s.labels for s in info] == [{"model": 'we"ird\\name\n', "device": "cpu", "state": "ok"}]


def test_token_rate_forgets_old_requests():
    rate = TokenRate(window_s=10)
    rate.add(100, now=0.0)
    rate.add(50, now=5.0)
    assert rate.rate(now=5.0) == 150 / 5.0
    assert rate.rate(now=14.0) == 50 / 9.0
    assert rate.rate(now=100.0) == 0.0


def test_token_rate_holds_only_its_window_when_nobody_reads_it():
    """An engine nobody scrapes still finishes requests: their events must not pile up (issue 21's soak found
    one kept per request, forever)."""
    rate = TokenRate(window_s=10)
    for second in range(1000):
        rate.add(1, now=float(second))
    assert len(rate.events) == 11  # seconds 989..999
    assert rate.rate(now=999.0) == 11 / 10
