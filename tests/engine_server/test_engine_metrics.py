"""The Prometheus text the engine renders: cumulative buckets, escaped labels, windowed token rate."""

from __future__ import annotations

from engine_process import metric

from mercury_lsp.engine.metrics import EngineMetrics, Histogram, TokenRate


def test_histogram_buckets_are_cumulative():
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.5, 0.7, 3.0):
        histogram.observe(value)
    lines = histogram.lines("x")
    assert lines == ['x_bucket{le="0.1"} 1', 'x_bucket{le="1"} 3', 'x_bucket{le="+Inf"} 4', "x_sum 4.25",
                     "x_count 4"]


def test_labels_are_escaped_and_counts_add_up():
    metrics = EngineMetrics()
    metrics.set_model("ok", 'we"ird\\name\n', "cpu")
    metrics.count_request("/v1/infill", 200)
    metrics.count_request("/v1/infill", 200)
    metrics.count_cancellation("disconnect")
    metrics.record_step(batch=3, seconds=0.02)
    text = metrics.render()
    assert 'mercury_model_info{model="we\\"ird\\\\name\\n",device="cpu",state="ok"} 1' in text
    assert metric(text, "mercury_requests_total", 'endpoint="/v1/infill",status="200"') == 2
    assert metric(text, "mercury_cancellations_total", 'reason="disconnect"') == 1
    assert metric(text, "mercury_batch_size_bucket", 'le="2"') == 0
    assert metric(text, "mercury_batch_size_bucket", 'le="4"') == 1
    assert text.endswith("\n")


def test_token_rate_forgets_old_requests():
    rate = TokenRate(window_s=10)
    rate.add(100, now=0.0)
    rate.add(50, now=5.0)
    assert rate.rate(now=5.0) == 150 / 5.0
    assert rate.rate(now=14.0) == 50 / 9.0
    assert rate.rate(now=100.0) == 0.0
