"""The CLI's commands: each turns parsed arguments into calls on the pipeline and prints results.

stdout carries only results (completion text or JSON); progress and summaries go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from codegeex_lsp.config import DEFAULT_MODEL as DEFAULT_MODEL_NAME
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.context.languages import LanguageInfo, language_for
from codegeex_lsp.errors import InputError
from codegeex_lsp.source_file import SourceCursor, cursor_at, read_source

if TYPE_CHECKING:
    from codegeex_lsp.context import CompletionContext

CURSOR_MARK = "█"
DEFAULT_MAX_TOKENS = {"LINE": 48, "BLOCK": 192}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine_options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        model=args.model,
        dtype=args.dtype,
        quant=getattr(args, "quant", "int4"),
        threads=args.threads,
        cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code,
    )


def completion_options(args: argparse.Namespace, mode: str) -> CompletionOptions:
    return CompletionOptions(
        format=args.format,
        max_tokens=args.max_tokens or DEFAULT_MAX_TOKENS[mode],
        temperature=args.temperature,
        top_p=args.top_p,
        n=args.candidates,
        seed=args.seed,
    )


def _load_service(args: argparse.Namespace, quiet: bool = False):
    from codegeex_lsp.engine.load import quant_label
    from codegeex_lsp.engine.service import CompletionService

    progress = (lambda _m: None) if quiet else (lambda m: _stderr(f"[codegeex-lsp] {m}"))
    # A one-shot command builds only the first int4 rung when none is built (about 2 minutes); the
    # refined rung comes from `model install` or from a running server, in the background.
    options = replace(engine_options(args), int4_build="first")
    service = CompletionService.load(options, args.format, progress)
    if options.quant == "int4" and service.loaded.quant != quant_label("int4"):
        _stderr(  # also under --json: stdout stays the one JSON object
            f"[codegeex-lsp] serving {service.loaded.quant}; `codegeex-lsp model install` (or a running"
            " server, in the background) builds the refined int4 weights once"
        )
    return service


def cursor_context(cursor: SourceCursor, info: LanguageInfo, mode_flag: str) -> CompletionContext:
    """The context at a file cursor, from the same context stage the server uses.

    `auto` takes LINE/BLOCK from the syntax at the cursor; where the server would not ask the
    model at all (NONE), an explicit CLI request still gets a one-line answer.
    """
    from codegeex_lsp.context import Document, build_context

    path = cursor.path
    doc = Document(
        uri=path.resolve().as_uri(), text=cursor.text, language_id=info.language_id, path=str(path)
    )
    ctx = build_context(doc, doc.position_at(cursor.offset))
    mode = ctx.mode if mode_flag == "auto" else mode_flag.upper()
    return replace(ctx, mode="LINE" if mode == "NONE" else mode)


def _complete(service, ctx: CompletionContext, args: argparse.Namespace):
    """The server's path (`complete.complete_request`) on the in-process engine."""
    from codegeex_lsp.complete import complete_request

    opts = completion_options(args, ctx.mode)
    return complete_request(ctx, opts, service, n_context=service.loaded.model.max_seq_len)


def complete(args: argparse.Namespace) -> int:
    path = Path(args.path)
    text = read_source(path)
    info = language_for(args.language, str(path))
    if not text:
        _stderr(f"{path}: empty file, nothing to complete")
        if args.json:
            print(json.dumps({"completion": "", "reason": "empty file"}))
        return 0
    cursor = cursor_at(path, text, args.line, args.character)
    ctx = cursor_context(cursor, info, args.mode)
    service = _load_service(args, quiet=args.json)
    result = _complete(service, ctx, args)
    if args.json:
        out = asdict(result)
        out["language"] = info.language_id
        out["quant"] = service.loaded.quant
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(result.completion)
        t = result.timings
        _stderr(
            f"[{result.model} · {result.format} · {result.mode}] {result.prompt_tokens} prompt tokens, "
            f"{result.generated_tokens} generated; prefill {t['prefill_s'] * 1e3:.0f} ms, "
            f"decode {t['decode_s'] * 1e3:.0f} ms ({t['decode_tok_s']:.1f} tok/s)"
        )
    return 0


def _demo_files(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.files:
        return [(f, Path(f).read_text(encoding="utf-8")) for f in args.files]
    root = resources.files("codegeex_lsp") / "demo"
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.is_file() and CURSOR_MARK in entry.read_text(encoding="utf-8")
    )


def demo(args: argparse.Namespace) -> int:
    """Complete the █ position of each sample file and show the result in place, with timings."""
    files = _demo_files(args)
    service = _load_service(args)
    _stderr(
        f"[codegeex-lsp] model {service.loaded.name} loaded in {service.loaded.load_s:.1f} s, "
        f"format {service.format.name}, dtype {str(service.loaded.dtype).removeprefix('torch.')}"
    )
    for name, marked in files:
        if marked.count(CURSOR_MARK) != 1:
            raise InputError(f"{name}: needs exactly one {CURSOR_MARK} cursor marker")
        offset = marked.index(CURSOR_MARK)
        text = marked.replace(CURSOR_MARK, "")
        cursor = SourceCursor(Path(name), text, offset)
        info = language_for(None, name)
        result = _complete(service, cursor_context(cursor, info, args.mode), args)
        t = result.timings
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        line_end = len(text) if line_end < 0 else line_end
        shown = text[line_start:offset] + "\x1b[32m" + result.completion + "\x1b[0m" + text[offset:line_end]
        if not sys.stdout.isatty():
            shown = shown.replace("\x1b[32m", "").replace("\x1b[0m", "")
        print(f"── {name} ({info.name}, {result.mode}) " + "─" * 20)
        print(shown)
        print(f"   completion: {result.completion!r}")
        print(
            f"   {result.prompt_tokens} prompt tokens → {result.generated_tokens} generated | "
            f"prefill {t['prefill_s'] * 1e3:.0f} ms | decode {t['decode_s'] * 1e3:.0f} ms "
            f"({t['decode_tok_s']:.1f} tok/s) | total {t['total_s'] * 1e3:.0f} ms"
        )
    return 0


def model(args: argparse.Namespace) -> int:
    """`install` assembles, verifies and converts the model once, and builds its int4 checkpoints,
    every rung of `load.INT4_LADDER` (the default `--quant`; `--quant none` skips them); `info`
    shows what is cached."""
    from codegeex_lsp.engine.load import load_model

    loaded = load_model(replace(engine_options(args)), lambda m: _stderr(f"[codegeex-lsp] {m}"))
    from codegeex_lsp.engine.packed_linear import count_parameters

    n_params = count_parameters(loaded.model)
    print(
        json.dumps(
            {
                "model": loaded.name,
                "model_type": loaded.model_type,
                "dir": str(loaded.hf_dir),
                "sha256": loaded.source_sha256,
                "parameters": n_params,
                "quant": loaded.quant,
                "load_s": round(loaded.load_s, 2),
            }
        )
    )
    return 0


def formats(_args: argparse.Namespace) -> int:
    from codegeex_lsp.prompt import get_format, list_formats

    for name in list_formats():
        fmt = get_format(name)
        print(f"{name:16} {getattr(fmt, 'description', '')}")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run the language server; the model loads in the background after `initialized`."""
    from codegeex_lsp.server.app import serve as run_server
    from codegeex_lsp.server.options import ModelOptions
    from codegeex_lsp.telemetry import Telemetry, TelemetryStore

    model = ModelOptions(
        name=args.model,
        format=args.format,
        dtype=args.dtype,
        quant=args.quant,
        threads=args.threads,
        cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code,
    )
    if args.tcp and not args.tcp.rpartition(":")[2].isdigit():
        raise InputError(f"--tcp wants HOST:PORT, not {args.tcp!r}")
    telemetry = Telemetry(None if args.no_telemetry else TelemetryStore())
    return run_server(
        model, tcp=args.tcp, verbose=args.verbose, backend=backend_options(args), telemetry=telemetry
    )


def backend_options(args: argparse.Namespace):
    """`serve`'s backend flags -> BackendOptions (flags that do not fit the backend are errors)."""
    from codegeex_lsp.server.options import BackendOptions

    if args.backend == "openai":
        from codegeex_lsp.remote.openai import OpenAIOptions

        if not args.base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
        if args.in_process:
            raise InputError("--in-process runs a local model; it does not combine with --backend openai")
        explicit_model = args.model if args.model != DEFAULT_MODEL_NAME else None
        remote = OpenAIOptions(
            base_url=args.base_url,
            model=explicit_model,
            fim=args.fim,
            format=args.format,
            api_key_env=args.api_key_env,
            timeout_s=args.timeout,
            retries=max(0, args.retries),
            ca_bundle=args.ca_bundle,
            proxy=args.proxy,
            n_context=args.context_tokens,
        )
        return BackendOptions(kind="openai", openai=remote)
    if args.base_url:
        raise InputError("--base-url is for --backend openai")
    kind = "in-process" if args.in_process else "worker"
    return BackendOptions(kind=kind, worker_mode=args.worker, idle_timeout_s=args.worker_idle_timeout)


def stats(args: argparse.Namespace) -> int:
    """Print the local telemetry: per language, suggestions shown, accepted, dismissed, acceptance."""
    from codegeex_lsp.telemetry import TelemetryStore, format_table

    store = TelemetryStore()
    if args.reset:
        store.reset()
        _stderr(f"[codegeex-lsp] telemetry reset ({store.path})")
        return 0
    totals = store.totals(args.days)
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(store.path),
                    "days": args.days,
                    "languages": [{**asdict(t), "acceptance_rate": t.acceptance_rate} for t in totals],
                }
            )
        )
    else:
        print(format_table(totals))
        _stderr(f"[codegeex-lsp] counted locally in {store.path}; never sent anywhere")
    return 0
