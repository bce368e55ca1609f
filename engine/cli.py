"""`mercury-engine`: infill at a cursor from the command line, and the engine's other entry points."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mercury_lsp.engine.api.validation import RequestError
from mercury_lsp.engine.errors import CheckpointError, UsageError


def parse_location(spec: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL (1-based line and column) -> parts."""
    parts = spec.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise UsageError(f"location {spec!r} must look like FILE:LINE:COL with 1-based numbers.")
    return Path(parts[0]), int(parts[1]), int(parts[2])


def split_at_cursor(text: str, line: int, col: int) -> tuple[str, str]:
    """Prefix and suffix around a 1-based line and column (columns count characters; col may be past the end
    of the line by one, to put the cursor there)."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise UsageError(f"line {line} is outside the file (it has {len(lines)} lines).")
    if not 1 <= col <= len(lines[line - 1]) + 1:
        raise UsageError(f"column {col} is outside line {line} (it has {len(lines[line - 1])} characters).")
    offset = sum(len(s) + 1 for s in lines[: line - 1]) + col - 1
    return text[:offset], text[offset:]


def read_source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"file {path} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"file {path} cannot be read ({exc.strerror}).") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"file {path} is not valid UTF-8 (bad byte at offset {exc.start}).") from None


def add_confidence_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confidence", choices=["probability", "margin", "entropy"], default="probability",
                        help="what the commit threshold applies to (default: the token's probability)")
    parser.add_argument("--filler-threshold", type=filler_threshold, default=0.7,
                        help="confidence a position needs to join the filler at the canvas end, capped by the "
                             "threshold; 'none' uses the threshold (default: 0.7)")
    parser.add_argument("--tail-threshold", type=filler_threshold, default=0.9,
                        help="length first: commit the canvas end as filler where the chance that the answer "
                             "already ended passes this; 'none' turns it off, the rule before (default: 0.9)")
    parser.add_argument("--commit-rule", choices=["probe", "threshold"], default="probe",
                        help="probe: commit the answer's tokens by the learned probe in the model's folder "
                             "(commit_probe.safetensors, from `mercury-engine train-probe`; the bundled model "
                             "has none), where no threshold is named; threshold: by their probability "
                             "(default: probe, which is the threshold rule for a model without one)")


def add_context_dtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context-dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="on a CPU, what cached context keys/values are kept in (default: the weights' dtype; "
                             "bfloat16 halves a float32 model's context at some CPU); a GPU keeps the weights' dtype")


def filler_threshold(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'none': {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def commit_threshold(text: str) -> float:
    """--threshold: a number in (0, 1]."""
    value = filler_threshold(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model folder, a short name from `mercury-engine models`, or a hub id "
                                        "org/name[@revision] (default: the bundled model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")


def cmd_infill(args: argparse.Namespace) -> int:
    import torch

    from mercury_lsp.engine.api.infill import InfillRequest
    from mercury_lsp.engine.infill import EngineSettings, InfillEngine
    from mercury_lsp.engine.model_loading import load_model

    if args.threads < 0:
        raise UsageError(f"--threads must be 0 (torch's default) or more (got {args.threads}).")
    if args.threads:
        torch.set_num_threads(args.threads)
    path, line, col = parse_location(args.location)
    prefix, suffix = split_at_cursor(read_source(path), line, col)
    request = InfillRequest(
        prefix=prefix,
        suffix=suffix,
        max_tokens=args.max_tokens,
        steps=args.steps,
        threshold=args.threshold,
        temperature=args.temperature,
        n=args.n,
        seed=args.seed,
        single_line=args.single_line,
        length_mode=args.length_mode,
        refine=args.refine,
    )
    # One request: capturing the step graphs would cost more than it saves.
    settings = EngineSettings(max_batch=max(args.n, 1), confidence=args.confidence,
                              filler_threshold=args.filler_threshold, tail_threshold=args.tail_threshold,
                              commit_rule=args.commit_rule, context_dtype=args.context_dtype, cuda_graphs=False)
    loaded, _ = load_model(args.model, args.device, settings)
    engine = InfillEngine(loaded, settings)
    result = engine.infill(request)
    if args.json:
        out = {
            "text": result.text,
            "tokens": result.tokens,
            "steps": result.steps,
            "ms": round(result.ms, 2),
            "model": loaded.name,
            "device": str(loaded.device),
        }
        if args.n > 1:
            out["candidates"] = result.candidates
        print(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(result.text + ("\n" if not result.text.endswith("\n") else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from mercury_lsp.engine.catalogue import render_table

    print(render_table())
    print("\nAny name works as --model; so does any hub id org/name[@revision] or folder whose layout the engine "
          "supports.\n'run here': answered completions in this project; 'layout only': weights of the same shapes "
          "match the authors' code, the real checkpoint was not run here.")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from mercury_lsp.engine.checkpoint import read_layout
    from mercury_lsp.engine.model_source import fetch, parse_model

    source = parse_model(args.model)
    if source.repo_id is None:
        raise UsageError(f"{args.model} is a folder on this machine, not a model on the hub.")
    resolved = fetch(source)
    read_layout(resolved.folder)  # the layout must be one the engine runs
    print(f"{source.repo_id} at commit {resolved.commit} is in {resolved.folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mercury-engine", description="Diffusion code-completion engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    infill = sub.add_parser("infill", help="fill the gap at FILE:LINE:COL and print the text to insert")
    infill.add_argument("location", help="FILE:LINE:COL, 1-based")
    add_model_options(infill)
    infill.add_argument("--max-tokens", type=int, default=64)
    infill.add_argument("--steps", type=int, default=None, help="step budget (default: max tokens / 2)")
    infill.add_argument("--threshold", type=float, default=None,
                        help="commit threshold (default: the model's calibrated one, else 0.9)")
    infill.add_argument("--temperature", type=float, default=0.0)
    infill.add_argument("--n", type=int, default=1, help="number of candidates")
    infill.add_argument("--seed", type=int, default=0)
    infill.add_argument("--single-line", action="store_true")
    infill.add_argument("--length-mode", choices=["auto", "filler", "expand"], default="auto")
    infill.add_argument("--refine", action="store_true", help="draft, then re-predict the least confident tokens")
    add_confidence_option(infill)
    add_context_dtype_option(infill)
    infill.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    infill.add_argument("--json", action="store_true")
    infill.set_defaults(func=cmd_infill)
    models = sub.add_parser("models", help="list the checkpoints we know by name, what they cost and suit")
    models.set_defaults(func=cmd_models)
    pull = sub.add_parser("pull", help="download a model from the hub ahead of time (into $HF_HOME)")
    pull.add_argument("model", help="a short name from `mercury-engine models` or a hub id org/name[@revision]")
    pull.set_defaults(func=cmd_pull)
    for register in _subcommand_modules():
        register(sub)
    return parser


def _subcommand_modules() -> list:
    """Entry points that live beside their code (serve, train, ...), registered when present."""
    registrars = []
    for module_name in ("mercury_lsp.engine.server_cli", "mercury_lsp.engine.training.cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if not (exc.name and (module_name + ".").startswith(exc.name + ".")):
                raise  # a module the entry point itself imports is missing: a real error
            continue
        registrars.append(module.register)
    return registrars


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        return args.func(args)
    except (UsageError, CheckpointError, RequestError) as exc:
        print(f"mercury-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mercury-engine: interrupted after {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mercury-engine models | head`): stop quietly, as other tools do; point stdout at
        # /dev/null so the interpreter's last flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    # Run the package's copy of this module, so subcommands registered from other modules share its classes.
    from mercury_lsp.engine.cli import main as package_main

    sys.exit(package_main())
