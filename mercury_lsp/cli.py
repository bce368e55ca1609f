"""`mercury-lsp`: serve over stdio or TCP, or run the end-to-end demo."""

from __future__ import annotations

import argparse
import logging
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mercury-lsp",
        description="Code-completion language server backed by a diffusion language model.",
    )
    parser.add_argument("--tcp", action="store_true", help="serve on TCP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
    parser.add_argument("--log-level", default="WARNING", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level on stderr")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser(
        "demo", help="complete at FILE:LINE:COL through a real LSP session and print timings",
    )
    demo.add_argument("location", metavar="FILE:LINE:COL", help="1-based line and column")
    demo.add_argument("--model", help="model folder for the engine (default: the bundled model)")
    demo.add_argument("--engine-url", help="use this engine instead of the local one")
    demo.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    demo.add_argument("--max-tokens", type=int, default=None, help="canvas size (default 64)")
    demo.add_argument("--steps", type=int, default=None, help="denoising steps (default: engine's)")
    demo.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the model to load")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level,
                        format="mercury-lsp %(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from mercury_lsp.demo import run_demo

        return run_demo(args)
    from mercury_lsp import log_bridge
    from mercury_lsp.server import server
    from mercury_lsp.transport import serve_stdio, serve_tcp

    log_bridge.install(server.protocol, args.log_level)

    if args.tcp:
        serve_tcp(server, args.host, args.port)  # the bounded frame reader, as on stdio
    else:
        serve_stdio(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
