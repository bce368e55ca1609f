"""`mercury-engine serve`, `stop` and `status`: the HTTP engine and the auto-started daemon from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from mercury_lsp.engine import daemon
from mercury_lsp.engine.cli import (
    add_confidence_option,
    add_context_dtype_option,
    add_model_options,
    commit_threshold,
)
from mercury_lsp.engine.errors import UsageError
from mercury_lsp.engine.model_source import parse_model


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise UsageError(f"{name} must be positive (got {value:g}).")


KEY_FILE_BYTES = 4096


def _check_key(key: str, source: str) -> str:
    if not key:
        raise UsageError(f"{source} holds no key.")
    if not all(33 <= ord(c) <= 126 for c in key):
        raise UsageError(f"{source} must be one word of printable ASCII (it travels in an HTTP header).")
    return key


def read_key_file(path: Path) -> str:
    """The key in a file of one line; a file other users can read is used, with a warning."""
    try:
        with open(path, "rb") as file:
            raw = file.read(KEY_FILE_BYTES + 1)
        mode = os.stat(path).st_mode
    except OSError as error:
        raise UsageError(f"cannot read the API key file {path} ({error.strerror}).") from None
    if len(raw) > KEY_FILE_BYTES:
        raise UsageError(f"the API key file {path} is larger than {KEY_FILE_BYTES} bytes; it should hold one key.")
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UsageError(f"the API key file {path} is not ASCII text.") from None
    if mode & 0o077:
        print(f"mercury-engine: warning: the API key file {path} can be read by other users (chmod 600 {path}).",
              file=sys.stderr)
    return _check_key(key, f"the API key file {path}")


def api_key(args: argparse.Namespace) -> str | None:
    """The key clients must send: --api-key-file, else --api-key (with a warning), else $MERCURY_API_KEY."""
    if args.api_key and args.api_key_file:
        raise UsageError("give --api-key-file or --api-key, not both.")
    if args.api_key_file:
        return read_key_file(Path(args.api_key_file))
    if args.api_key:
        print("mercury-engine: warning: a key on the command line is visible to every user of this machine "
              "(ps, /proc); use --api-key-file or MERCURY_API_KEY.", file=sys.stderr)
        return _check_key(args.api_key, "--api-key")
    key = os.environ.get("MERCURY_API_KEY")
    return _check_key(key, "MERCURY_API_KEY") if key else None


def cmd_serve(args: argparse.Namespace) -> int:
    from mercury_lsp.engine.server import ServeConfig, serve

    key = api_key(args)
    if not daemon.is_loopback_host(args.host) and not key:
        raise UsageError(f"refusing to listen on {args.host} without an API key; pass --api-key-file or set "
                         "MERCURY_API_KEY (or listen on 127.0.0.1).")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535 (got {args.port}).")
    for name, value in (("--max-batch", args.max_batch), ("--max-queue", args.max_queue),
                        ("--body-limit", args.body_limit), ("--request-timeout", args.request_timeout)):
        _positive(name, value)
    if args.threads < 0:
        raise UsageError(f"--threads must be 0 (torch's default) or more (got {args.threads}).")
    if args.refresh_every < 0:
        raise UsageError(f"--refresh-every must be 0 (when a canvas changes length) or more (got {args.refresh_every}).")
    if args.idle_exit < 0:
        raise UsageError(f"--idle-exit must be 0 (never) or more minutes (got {args.idle_exit:g}).")
    config = ServeConfig(
        host=args.host,
        port=args.port,
        model=parse_model(args.model).spec,
        device=args.device,
        api_key=key,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        threads=args.threads,
        body_limit=args.body_limit,
        request_timeout_s=args.request_timeout,
        idle_exit_minutes=args.idle_exit,
        port_file=Path(args.port_file) if args.port_file else None,
        engine_options={"cuda_graphs": not args.no_cuda_graphs, "confidence": args.confidence,
                        "filler_threshold": args.filler_threshold, "tail_threshold": args.tail_threshold,
                        "commit_rule": args.commit_rule, "threshold": args.threshold,
                        "refresh_every": args.refresh_every, "reuse_suffix": not args.no_suffix_reuse,
                        "exact_context": args.exact_context, "context_dtype": args.context_dtype},
    )
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(config))
    except OSError as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        info = daemon.read_port_file()
        endpoint = daemon.running_engine()
    except daemon.DaemonError as error:
        raise UsageError(str(error)) from None
    if endpoint is None:
        message = f"no engine is running (runtime folder {daemon.runtime_dir()})"
        print(json.dumps({"running": False}) if args.json else message)
        return 1
    health = daemon.probe_health(endpoint.url, key=endpoint.key) or {}
    if args.json:
        print(json.dumps({"running": True, "url": endpoint.url, "pid": endpoint.pid, "health": health,
                          "model_path": (info or {}).get("model")}))
        return 0
    line = (f"engine running at {endpoint.url} (pid {endpoint.pid}): {health.get('status', 'unknown')}, "
            f"model {health.get('model')} on {health.get('device')}")
    if health.get("message"):
        line += f": {health['message']}"
    print(line)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    try:
        endpoint = daemon.stop_engine(timeout=args.timeout)
    except daemon.DaemonError as error:
        raise UsageError(str(error)) from None
    print(f"stopped the engine at {endpoint.url} (pid {endpoint.pid})" if endpoint else "no engine was running")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add serve, stop and status to the mercury-engine command."""
    serve = subparsers.add_parser("serve", help="serve the HTTP API (one model shared by every editor)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default: 8765)")
    add_model_options(serve)
    serve.add_argument("--api-key-file", metavar="PATH",
                       help="file holding the bearer key clients must send (default: $MERCURY_API_KEY; none on "
                            "loopback)")
    serve.add_argument("--api-key", help="the key itself (visible to other users in ps: prefer --api-key-file)")
    serve.add_argument("--max-batch", type=int, default=16, help="canvases denoised together per step")
    serve.add_argument("--max-queue", type=int, default=64, help="requests waiting beyond the batch before 429")
    serve.add_argument("--threads", type=int, default=0,
                       help="CPU threads for the model (0 = torch's default; 1 suits small models on busy CPUs)")
    serve.add_argument("--body-limit", type=int, default=1024 * 1024, help="largest request body in bytes")
    serve.add_argument("--request-timeout", type=float, default=60.0,
                       help="seconds before a request is cancelled (timeout_ms overrides it per request)")
    serve.add_argument("--idle-exit", type=float, default=0.0, metavar="MINUTES",
                       help="exit after this many minutes without requests (0 = never)")
    serve.add_argument("--port-file", help="write the URL and pid here once listening (auto-start uses this)")
    serve.add_argument("--no-cuda-graphs", action="store_true",
                       help="run each denoising step eagerly instead of replaying graphs captured at start-up")
    add_confidence_option(serve)
    serve.add_argument("--threshold", type=commit_threshold, default=None,
                        help="commit threshold for requests that name none (default: the model's calibrated one, "
                             "else 0.9)")
    serve.add_argument("--refresh-every", type=int, default=0, metavar="N",
                       help="recompute the context's keys/values every N steps (0: when a canvas changes length)")
    serve.add_argument("--no-suffix-reuse", action="store_true",
                       help="recompute the suffix on every request instead of reusing the last keystroke's")
    serve.add_argument("--exact-context", action="store_true",
                       help="full bidirectional attention at every step: no prefix chunks, no cached context (slow)")
    add_context_dtype_option(serve)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=cmd_serve)

    status = subparsers.add_parser("status", help="say whether the auto-started engine runs, and its state")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    stop = subparsers.add_parser("stop", help="stop the auto-started engine")
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds before TERM becomes KILL")
    stop.set_defaults(func=cmd_stop)
