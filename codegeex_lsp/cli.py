"""`codegeex-lsp` command line: argument parsing and dispatch only.

Heavy imports (torch, transformers) happen inside the commands, so `--help` and errors are instant.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable

from codegeex_lsp import __version__
from codegeex_lsp.config import DEFAULT_MODEL
from codegeex_lsp.errors import CodegeexError

BENCHMARKS: dict[str, str] = {
    "decode": "codegeex_lsp.bench.decode",
    "kernels": "codegeex_lsp.bench.kernels",
    "quant": "codegeex_lsp.bench.quant",
    "humanevalx": "codegeex_lsp.bench.humaneval_x.run",
    "infill": "codegeex_lsp.bench.infill.run",
    "latency": "codegeex_lsp.bench.latency",
    "sandbox-run": "codegeex_lsp.bench.humaneval_x.sandbox_run",
}


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"embedded model name ({DEFAULT_MODEL}), a .gguf file, or a Hugging Face "
        "directory with safetensors (default: %(default)s)",
    )
    group.add_argument(
        "--format", help="prompt format (default: detected from the tokenizer); see `codegeex-lsp formats`"
    )
    group.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    group.add_argument(
        "--quant",
        default="int4",
        choices=["int4", "none"],
        help="int4 (default): weights quantized once into the cache (GPTQ, group 32; a few minutes, "
        "with a progress bar; `serve` answers with bf16 meanwhile) and run by our int4 kernels "
        "(AVX-512 VNNI, AVX2 or scalar, picked at run time); none: float weights (--dtype)",
    )
    group.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    group.add_argument("--cache-dir", help="where converted models live (env CODEGEEX_LSP_CACHE)")
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model's tokenizer to run its own Python code (off by default)",
    )


def _add_completion_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("completion")
    group.add_argument("--max-tokens", type=int, default=None, help="default: 48 for a line, 192 for a block")
    group.add_argument(
        "--mode",
        choices=["auto", "line", "block"],
        default="auto",
        help="complete one line or a block (auto: from the syntax at the cursor)",
    )
    group.add_argument("--temperature", type=float, default=0.0)
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("-n", "--candidates", type=int, default=1)
    group.add_argument("--seed", type=int)


def _add_backend_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the model runs")
    group.add_argument(
        "--backend",
        choices=["local", "openai"],
        default="local",
        help="local: this machine's model (default); openai: an OpenAI-compatible /v1/completions server",
    )
    group.add_argument(
        "--worker",
        choices=["shared", "private"],
        default="shared",
        help="local model in a worker process shared by this user's servers (default) or private to this one",
    )
    group.add_argument(
        "--in-process", action="store_true", help="run the local model inside the server process (debugging)"
    )
    group.add_argument(
        "--worker-idle-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="a worker without requests for this long exits (default: %(default)s)",
    )
    remote = parser.add_argument_group("remote backend (--backend openai; --model names the served model)")
    remote.add_argument("--base-url", help="e.g. http://team-gpu:8000/v1")
    remote.add_argument(
        "--fim",
        choices=["auto", "prompt", "suffix"],
        default="auto",
        help="prompt: build the FIM prompt with --format; suffix: send the server `suffix` "
        "(auto: prompt when --format is given)",
    )
    remote.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key (default: OPENAI_API_KEY if set)",
    )
    remote.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="connect / between chunks"
    )
    remote.add_argument(
        "--retries", type=int, default=2, help="retries with exponential backoff (default: 2)"
    )
    remote.add_argument("--ca-bundle", metavar="PEM", help="CA certificates for an https base URL")
    remote.add_argument(
        "--proxy", metavar="URL", help="http://[user:pass@]host:port (default: from the environment)"
    )
    remote.add_argument(
        "--context-tokens", type=int, default=4096, help="the served model's context window (default: 4096)"
    )
    parser.add_argument(
        "--no-telemetry",
        action="store_true",
        help="do not record local acceptance counts (codegeex-lsp stats)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegeex-lsp", description="Local code completion with GLM-family fill-in-the-middle prompts."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    complete = sub.add_parser("complete", help="complete a file at a cursor position")
    complete.add_argument("path")
    complete.add_argument("--line", type=int, required=True, help="0-based line (as in LSP)")
    complete.add_argument(
        "--character", type=int, required=True, help="0-based column in UTF-16 code units (as in LSP)"
    )
    complete.add_argument("--language", help="LSP languageId (default: from the file extension)")
    complete.add_argument("--json", action="store_true", help="print one JSON object")
    _add_model_args(complete)
    _add_completion_args(complete)

    demo = sub.add_parser("demo", help="complete cursor positions in the bundled sample files")
    demo.add_argument("--files", nargs="*", help="sample files with a █ cursor marker (default: bundled)")
    _add_model_args(demo)
    _add_completion_args(demo)

    model = sub.add_parser("model", help="install / inspect the model cache")
    model.add_argument("action", choices=["install", "info"])
    _add_model_args(model)

    sub.add_parser("formats", help="list the prompt formats")

    serve = sub.add_parser("serve", help="run the language server on stdio (LSP, inline completion)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio (debugging)")
    _add_model_args(serve)
    _add_backend_args(serve)

    stats = sub.add_parser("stats", help="local telemetry: suggestions shown/accepted/dismissed per language")
    stats.add_argument("--days", type=int, help="only the last N days (default: all)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--reset", action="store_true", help="delete the recorded counts")

    bench = sub.add_parser("bench", help="benchmarks (decode, kernels, humanevalx)", add_help=False)
    bench.add_argument("name", choices=sorted(BENCHMARKS))
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _run_bench(args: argparse.Namespace) -> int:
    import importlib

    try:
        module = importlib.import_module(BENCHMARKS[args.name])
    except ModuleNotFoundError as exc:
        raise CodegeexError(f"benchmark {args.name!r} is not available in this build ({exc.name})") from exc
    return int(module.main(args.args) or 0)


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: `finally` blocks stop the peer servers a benchmark started."""
    raise SystemExit(143)


def _dispatch(args: argparse.Namespace) -> int:
    from codegeex_lsp import commands

    if args.command == "bench":
        signal.signal(signal.SIGTERM, _exit_on_sigterm)

    table: dict[str, Callable[[argparse.Namespace], int]] = {
        "complete": commands.complete,
        "demo": commands.demo,
        "model": commands.model,
        "formats": commands.formats,
        "bench": _run_bench,
        "serve": commands.serve,
        "stats": commands.stats,
    }
    return table[args.command](args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except CodegeexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
