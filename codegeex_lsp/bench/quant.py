"""`codegeex-lsp bench quant`: what int4 costs in perplexity, per quantization mode, in one run.

Held-out text is real code the model never calibrates on: standard-library files after the ones
`stdlib_calibration_texts` hands to calibration (same deterministic order, disjoint files). The
reference is the fp32 model as loaded (for the embedded GGUF: its dequantized weights), so the
ratios isolate our int4 step.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time

DEFAULT_MODES = ("asym:32", "sym:32", "asym:128", "rowwise:0", "awq:32", "gptq:32", "gptq-act:32", "engine")
CALIBRATION_TEXTS = 48  # the calibration set's size (engine.load): held-out texts start after it
AWQ_TEXTS = 16  # AWQ keeps raw activations, not Hessians: the first 16 of those texts bound its memory
ENGINE_INT4 = "engine"  # the row of what `--quant int4` runs (engine.load INT4_RECIPE): its cached checkpoint


def held_out_texts(n_texts: int, max_chars: int) -> list[str]:
    from codegeex_lsp.quant.calibration import stdlib_calibration_texts

    return stdlib_calibration_texts(n_texts=n_texts, max_chars=max_chars, skip_first=CALIBRATION_TEXTS)


def perplexity(model, tokenizer, texts: list[str], max_tokens: int) -> float:
    """exp(mean next-token NLL) over all texts, each truncated to `max_tokens` tokens."""
    import torch

    nll, count = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer.encode(text, add_special_tokens=False)[:max_tokens]
            if len(ids) < 2:
                continue
            logits = model(torch.tensor([ids]), 0, model.new_cache(max_len=len(ids)), last_only=False)[0]
            logp = torch.log_softmax(logits[:-1].float(), dim=-1)  # [S-1, V]
            target = torch.tensor(ids[1:]).unsqueeze(1)
            nll -= logp.gather(1, target).sum().item()
            count += len(ids) - 1
    return math.exp(nll / count)


def held_out_fim(tokenizer, model_type: str, n_texts: int, max_tokens: int) -> list[tuple[list[int], int]]:
    from codegeex_lsp.engine.load import fim_calibration_ids

    return fim_calibration_ids(tokenizer, model_type, n_texts, max_tokens, skip_first=CALIBRATION_TEXTS)


def fim_perplexity(model, sequences: list[tuple[list[int], int]]) -> float | None:
    """exp(mean NLL) of the tokens after each prompt (the middle and its end token); None if none."""
    import torch

    nll, count = 0.0, 0
    with torch.inference_mode():
        for ids, n_prompt in sequences:
            logits = model(torch.tensor([ids]), 0, model.new_cache(max_len=len(ids)), last_only=False)[0]
            logp = torch.log_softmax(logits[n_prompt - 1 : -1].float(), dim=-1)
            target = torch.tensor(ids[n_prompt:]).unsqueeze(1)
            nll -= logp.gather(1, target).sum().item()
            count += len(ids) - n_prompt
    return math.exp(nll / count) if count else None


def calibrate(model, tokenizer, mode: str, model_type: str) -> dict:
    """What `mode` calibrates on, from the same stdlib texts the engine's int4 cache uses."""
    from codegeex_lsp.engine.load import calibration_forward, calibration_hessians, calibration_texts
    from codegeex_lsp.quant.calibration import collect_linear_inputs

    if mode == "gptq":
        return calibration_hessians(model, tokenizer, model_type=model_type)
    return collect_linear_inputs(model, calibration_texts(AWQ_TEXTS), forward=calibration_forward(tokenizer))


def run(model: str, modes: list[str], n_texts: int, max_tokens: int, threads: int, log) -> dict:
    import torch

    from codegeex_lsp.config import EngineOptions
    from codegeex_lsp.engine.load import load_model
    from codegeex_lsp.quant import quantize_model_

    torch.set_num_threads(threads)
    loaded = load_model(EngineOptions(model=model, dtype="float32", quant="none", threads=threads), progress=log)
    texts = held_out_texts(n_texts, max_chars=4 * max_tokens)
    started = time.perf_counter()
    fim = held_out_fim(loaded.tokenizer, loaded.model_type, n_texts, max_tokens)
    reference = perplexity(loaded.model, loaded.tokenizer, texts, max_tokens)
    fim_reference = fim_perplexity(loaded.model, fim)
    log(f"fp32: perplexity {reference:.4f}, FIM {fim_reference} ({time.perf_counter() - started:.0f} s)")
    rows = [{"mode": "fp32", "group_size": None, "perplexity": reference, "delta_pct": 0.0}]
    rows[0].update(_fim_columns(fim_reference, fim_reference))
    calibration: dict[str, dict] = {}
    for spec in modes:
        name, _, group = spec.partition(":")
        mode = name.removesuffix("-act")
        group_size = int(group or 32)
        row: dict = {"mode": name, "group_size": group_size or None}
        if spec == ENGINE_INT4:  # what `--quant int4` runs: its cached checkpoint (made once if missing)
            from codegeex_lsp.engine.load import INT4_GROUP_SIZE, INT4_RECIPE

            quantized = load_model(
                EngineOptions(model=model, quant="int4", threads=threads), progress=log
            ).model
            row.update(group_size=INT4_GROUP_SIZE, recipe=INT4_RECIPE)
        else:
            if mode in ("awq", "gptq") and mode not in calibration:
                started = time.perf_counter()
                calibration[mode] = calibrate(loaded.model, loaded.tokenizer, mode, loaded.model_type)
                what = f"{AWQ_TEXTS} stdlib texts" if mode == "awq" else "the engine's calibration set"
                log(f"{mode}: calibrated on {what} ({time.perf_counter() - started:.0f} s)")
            quantized = copy.deepcopy(loaded.model)
            quantize_model_(
                quantized,
                mode=mode,
                group_size=group_size or 32,
                calibration=calibration.get(mode),
                act_order=name.endswith("-act"),
            )
        ppl = perplexity(quantized, loaded.tokenizer, texts, max_tokens)
        delta = 100.0 * (ppl / reference - 1.0)
        row.update(
            perplexity=ppl, delta_pct=delta, **_fim_columns(fim_perplexity(quantized, fim), fim_reference)
        )
        log(f"int4 {spec}: perplexity {ppl:.4f} ({delta:+.2f}%), FIM {row['fim_perplexity']}")
        rows.append(row)
        del quantized
    return {
        "model": loaded.name,
        "texts": len(texts),
        "fim_prompts": len(fim),
        "max_tokens": max_tokens,
        "rows": rows,
    }


def _fim_columns(value: float | None, reference: float | None) -> dict:
    if value is None or reference is None:
        return {"fim_perplexity": None, "fim_delta_pct": None}
    return {"fim_perplexity": value, "fim_delta_pct": 100.0 * (value / reference - 1.0)}


def format_table(result: dict) -> str:
    lines = [
        f"model {result['model']}: {result['texts']} held-out stdlib texts, ≤{result['max_tokens']} tokens each;"
        f" {result.get('fim_prompts', 0)} FIM prompts from the same files (perplexity of the middle)",
        "| weights | group | perplexity | vs fp32 | FIM perplexity | vs fp32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        group = row["group_size"] if row["group_size"] else "-"
        name = f"engine's --quant int4 ({row['recipe']})" if "recipe" in row else row["mode"]
        fim, fim_delta = row.get("fim_perplexity"), row.get("fim_delta_pct")
        fim_cells = f"{fim:.4f} | {fim_delta:+.2f}%" if fim is not None else "- | -"
        lines.append(
            f"| {name} | {group} | {row['perplexity']:.4f} | {row['delta_pct']:+.2f}% | {fim_cells} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codegeex-lsp bench quant", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help="mode:group_size list (gptq-act: GPTQ in act order; engine: what --quant int4 runs)",
    )
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run(args.model, args.modes.split(","), args.texts, args.max_tokens, args.threads, log)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
