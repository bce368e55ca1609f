"""Models by hub id, end to end against a loopback stand-in of the hub (`HF_ENDPOINT`): the real huggingface_hub
code downloads a tiny checkpoint the test builds into a private HF_HOME, the real engine loads it and answers.
Nothing here reaches the real hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoints import make_tiny_checkpoint
from engine_process import EngineProcess
from hub_standin import TOKEN, HubStandin

CLI = [sys.executable, "-m", "mercury_lsp.engine.cli"]


@pytest.fixture
def hub(tmp_path: Path, tiny_checkpoint: Path) -> Iterator[HubStandin]:
    standin = HubStandin().start()
    standin.add_repo("org/tiny", tiny_checkpoint,
                     files={"README.md": b"# tiny\n", "pytorch_model.bin": b"pickle " * 100})
    yield standin
    standin.stop()


def hub_env(tmp_path: Path, hub: HubStandin, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    return env | {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                  **extra}


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The CLI's refusal: exit code 2, one line on stderr, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("mercury-engine: error: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def get_json(url: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def snapshot(tmp_path: Path, repo: str, commit: str) -> Path:
    return tmp_path / "hf-home" / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / commit


def test_serve_downloads_loads_and_answers_then_works_offline(tmp_path: Path, hub: HubStandin,
                                                               tiny_checkpoint: Path) -> None:
    commit = hub.repos["org/tiny"].commit
    hub.misbehave.pace["model.safetensors"] = 8  # slices 0.2 s apart: the download takes long enough to watch
    folder = tmp_path / "engine"
    folder.mkdir()
    engine = EngineProcess(folder, "org/tiny", [], env=hub_env(tmp_path, hub))
    try:
        messages = []
        deadline = time.monotonic() + 60
        while (health := engine.health())["status"] in ("loading", "warming"):
            messages.append((health.get("message"), health.get("progress")))
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health["status"] == "ok", health
        assert health["model"] == "org/tiny" and health["revision"] == commit
        downloading = [(m, p) for m, p in messages if m and m.startswith("Downloading org/tiny: ")]
        assert downloading and any(p is not None and 0 < p < 1 for _, p in downloading), messages
        models = get_json(engine.url + "/v1/models")["data"]
        assert [(m["id"], m["revision"]) for m in models] == [("org/tiny", commit)]
        answer = get_json(engine.url + "/v1/infill", {"prefix": "def add(a, b):\n    return ", "suffix": "\n",
                                                      "max_tokens": 8, "steps": 4})
        assert isinstance(answer["text"], str) and answer["steps"] >= 1
    finally:
        engine.stop()
    # Only what the engine reads was fetched: no pickle, no README.
    fetched = {path.rsplit("/", 1)[1] for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path}
    assert fetched == {"config.json", "tokenizer.json", "model.safetensors"}
    cached = snapshot(tmp_path, "org/tiny", commit) / "model.safetensors"
    assert cached.read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()

    env = hub_env(tmp_path, hub, HF_HUB_OFFLINE="1")
    hub.stop()  # no hub at all, and offline mode: the cache serves
    folder = tmp_path / "offline"
    folder.mkdir()
    offline = EngineProcess(folder, "org/tiny", [], env=env)
    try:
        offline.wait_ready()
        assert offline.health()["revision"] == commit
    finally:
        offline.stop()


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path: Path, hub: HubStandin) -> None:
    # Larger than huggingface_hub's 10 MiB read size, so bytes are on disk before the cut.
    big = make_tiny_checkpoint(tmp_path / "big", hidden=384, layers=3)
    size = (big / "model.safetensors").stat().st_size
    assert size > 12 * 2**20
    commit = hub.add_repo("org/big", big)
    hub.misbehave.cut_after["model.safetensors"] = 11 * 2**20
    done = run_cli("pull", "org/big", env=hub_env(tmp_path, hub))
    assert done.returncode == 0, done.stderr
    gets = [rng for method, rng in hub.file_requests("model.safetensors") if method == "GET"]
    assert gets[0] is None and gets[1] is not None and gets[1].startswith("bytes=") and gets[1] != "bytes=0-"
    assert (snapshot(tmp_path, "org/big", commit) / "model.safetensors").read_bytes() == \
        (big / "model.safetensors").read_bytes()


def test_a_download_killed_half_way_is_never_used_and_finishes_next_time(tmp_path: Path, hub: HubStandin,
                                                                         tiny_checkpoint: Path) -> None:
    commit = hub.repos["org/tiny"].commit
    hub.misbehave.stall_after["model.safetensors"] = 50_000
    env = hub_env(tmp_path, hub)
    process = subprocess.Popen([*CLI, "pull", "org/tiny"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(method == "GET" for method, _ in hub.file_requests("model.safetensors")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # the first 50 kB arrive
    process.send_signal(signal.SIGKILL)  # as a power cut would: no clean-up
    process.wait()
    assert not (snapshot(tmp_path, "org/tiny", commit) / "model.safetensors").exists()

    (tmp_path / "x.py").write_text("x = 1\n")
    error = one_line_error(run_cli("infill", f"{tmp_path}/x.py:1:1", "--model", "org/tiny", "--device", "cpu",
                                   env={**env, "HF_HUB_OFFLINE": "1"}))
    assert "org/tiny" in error and ("incomplete" in error or "not in the cache" in error), error

    hub.misbehave = type(hub.misbehave)()  # the network is back
    done = run_cli("pull", "org/tiny", env=env)
    assert done.returncode == 0, done.stderr
    assert (snapshot(tmp_path, "org/tiny", commit) / "model.safetensors").read_bytes() == \
        (tiny_checkpoint / "model.safetensors").read_bytes()


def test_a_gated_repo_without_a_token_is_one_line_naming_hf_token(tmp_path: Path, hub: HubStandin,
                                                                  tiny_checkpoint: Path) -> None:
    hub.add_repo("org/gated", tiny_checkpoint, gated=True)
    error = one_line_error(run_cli("pull", "org/gated", env=hub_env(tmp_path, hub)))
    assert "org/gated is gated" in error and "HF_TOKEN" in error
    done = run_cli("pull", "org/gated", env=hub_env(tmp_path, hub, HF_TOKEN=TOKEN))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", ["unknown", "revision", "pickle", "architecture", "offline", "tokenizer"])
def test_each_problem_is_one_line(case: str, tmp_path: Path, hub: HubStandin, tiny_checkpoint: Path) -> None:
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    hub.add_repo("org/pickled", files={"config.json": json.dumps(config).encode(),
                                       "tokenizer.json": (tiny_checkpoint / "tokenizer.json").read_bytes(),
                                       "pytorch_model.bin": b"pickle " * 100})
    hub.add_repo("org/neox", tiny_checkpoint, files={
        "config.json": json.dumps(config | {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"]}).encode()})
    hub.add_repo("org/slow-tokenizer", files={
        "config.json": json.dumps(config).encode(), "vocab.json": b"{}", "merges.txt": b"#version: 0.2\n",
        "model.safetensors": (tiny_checkpoint / "model.safetensors").read_bytes()})
    spec, expected = {
        "unknown": ("org/missing", "there is no model org/missing on the hub"),
        "revision": ("org/tiny@v9", "org/tiny has no revision 'v9'"),
        "pickle": ("org/pickled", "only pickle files (pytorch_model.bin)"),
        "architecture": ("org/neox", "unknown architecture (model_type 'gpt_neox'"),
        "offline": ("org/tiny", "org/tiny is not in the cache"),
        "tokenizer": ("org/slow-tokenizer", "ships its tokenizer as vocab.json + merges.txt"),
    }[case]
    env = hub_env(tmp_path, hub, **({"HF_HUB_OFFLINE": "1"} if case == "offline" else {}))
    error = one_line_error(run_cli("pull", spec, env=env))
    assert expected in error, error
