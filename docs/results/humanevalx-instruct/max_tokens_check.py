#!/usr/bin/env python3
"""Diagnostic: would a larger answer budget close the gap to the published 61.6?

EvalPlus lets an instruct model write 768 new tokens; our run (fp-instruct/) and the llama.cpp check
(llama-cpp/) allowed 512, and 15 of llama.cpp's 164 replies stopped at that limit. With greedy
decoding a reply that closed its fence before 512 tokens is the same with any larger budget, so only
the replies cut at the limit can change. This asks llama-server (same GGUF, same token ids, greedy,
whole prompt evaluated afresh) to continue exactly those tasks with `--n-predict` tokens, scores
them with the same extraction and sandbox, and reports the whole-benchmark figure with those
replies replaced. Writes llama-cpp/max-tokens-<N>.json beside this file.

    python docs/results/humanevalx-instruct/max_tokens_check.py [--n-predict 768] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codegeex_lsp.bench.humaneval_x.dataset import load_tasks
from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.generate import chat_token_ids
from codegeex_lsp.bench.humaneval_x.instruct import ANSWER_OPENING, REPLY_END, answer_prefill, user_message
from codegeex_lsp.bench.humaneval_x.stops import postprocess
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain
from codegeex_lsp.bench.infill.peer import LlamaServerInfiller, find_llama_server, model_gguf
from codegeex_lsp.bench.stats import format_rate
from codegeex_lsp.config import cache_dir
from codegeex_lsp.engine.load import load_tokenizer, resolve_hf_dir

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-predict", type=int, default=768)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    out = HERE / "llama-cpp"
    rows = {r["task_id"]: r for r in map(json.loads, (out / "generations.jsonl").read_text().splitlines())}
    summary = json.loads((out / "summary.json").read_text())
    passed_512 = set(summary["llama_cpp_passed"])
    cut = sorted(task_id for task_id, row in rows.items() if row["stop_type"] == "limit")
    tasks = {task.task_id: task for task in load_tasks("python")}
    hf_dir, _digest, _ = resolve_hf_dir("qwen2.5-coder-0.5b", cache_dir(None), lambda _m: None)
    tokenizer = load_tokenizer(hf_dir, False)
    gguf, digest = model_gguf("qwen2.5-coder-0.5b")
    binary, why = find_llama_server(None)
    if binary is None:
        raise SystemExit(f"llama-server missing: {why}")
    toolchain = find_toolchain("python")
    server = LlamaServerInfiller(binary, gguf, digest, out / "llama-server-max-tokens.log", threads=args.threads)
    results = {}
    try:
        for task_id in cut:
            task = tasks[task_id]
            messages = [{"role": "user", "content": user_message(task.prompt)}]
            body = {"prompt": chat_token_ids(tokenizer, messages, answer_prefill()), "n_predict": args.n_predict,
                    "temperature": 0.0, "top_k": 1, "stop": [REPLY_END], "cache_prompt": False, "seed": 0}
            reply = server.client.post("/completion", json=body, timeout=1200).json()
            completion = ANSWER_OPENING + reply["content"] + (REPLY_END if reply.get("stop_type") == "word" else "")
            ok = execute(task, postprocess("instruct", "python", task.prompt, completion), toolchain).passed
            results[task_id] = {"stop_type": reply.get("stop_type"), "tokens": reply.get("tokens_predicted"),
                                "passed": ok, "passed_at_512": task_id in passed_512}
            print(task_id, results[task_id], file=sys.stderr, flush=True)
    finally:
        server.close()
    passed = (passed_512 - set(cut)) | {task_id for task_id, r in results.items() if r["passed"]}
    report = {
        "n_predict": args.n_predict,
        "cut_at_512": len(cut),
        "of_those_passed_at_512": sum(r["passed_at_512"] for r in results.values()),
        "of_those_passed_now": sum(r["passed"] for r in results.values()),
        "of_those_still_cut": sum(r["stop_type"] == "limit" for r in results.values()),
        "llama_cpp_at_512": summary["llama_cpp_gguf"],
        "llama_cpp_with_budget": format_rate(len(passed), len(tasks)),
        "tasks": results,
    }
    (out / f"max-tokens-{args.n_predict}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "tasks"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
