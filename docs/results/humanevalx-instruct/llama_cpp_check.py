#!/usr/bin/env python3
"""Diagnostic: the same instruct HumanEval requests through llama.cpp's own server on the same GGUF.

Why: our bf16 run (fp-instruct/) passes 91/164, below the published 61.6 (+-3). If llama.cpp, fed
the very same token ids (our chat-template rendering + EvalPlus's response prefix), greedy, 512
tokens, stopping at the closing fence, scores about the same through the same extraction and
sandbox, the gap is in the weights we both run (the Q5_0 GGUF) or the protocol, not in our engine.
Writes llama-cpp/generations.jsonl and llama-cpp/summary.json beside this file.

    python docs/results/humanevalx-instruct/llama_cpp_check.py [--threads 1]
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
from codegeex_lsp.bench.stats import format_paired, format_rate, mcnemar
from codegeex_lsp.config import cache_dir
from codegeex_lsp.engine.load import load_tokenizer, resolve_hf_dir

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    out = HERE / "llama-cpp"
    out.mkdir(exist_ok=True)
    tasks = load_tasks("python")
    hf_dir, _digest, _ = resolve_hf_dir("qwen2.5-coder-0.5b", cache_dir(None), lambda _m: None)
    tokenizer = load_tokenizer(hf_dir, False)
    gguf, digest = model_gguf("qwen2.5-coder-0.5b")
    binary, why = find_llama_server(None)
    if binary is None:
        raise SystemExit(f"llama-server missing: {why}")
    server = LlamaServerInfiller(binary, gguf, digest, out / "llama-server.log", threads=args.threads)
    done = {}
    gen_path = out / "generations.jsonl"
    if gen_path.exists():
        done = {r["task_id"]: r for r in map(json.loads, gen_path.read_text().splitlines())}
    toolchain = find_toolchain("python")
    try:
        with open(gen_path, "a") as sink:
            for task in tasks:
                if task.task_id in done:
                    continue
                ids = chat_token_ids(tokenizer, [{"role": "user", "content": user_message(task.prompt)}], answer_prefill())
                body = {"prompt": ids, "n_predict": 512, "temperature": 0.0, "top_k": 1, "stop": [REPLY_END],
                        "cache_prompt": True, "seed": 0}
                reply = server.client.post("/completion", json=body, timeout=600).json()
                record = {"task_id": task.task_id, "completion": ANSWER_OPENING + reply["content"] + (
                    REPLY_END if reply.get("stop_type") == "word" else ""), "stop_type": reply.get("stop_type")}
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                done[task.task_id] = record
                print(task.task_id, reply.get("stop_type"), file=sys.stderr, flush=True)
    finally:
        server.close()
    ours_exec = {r["task_id"]: r["status"] == "passed"
                 for r in map(json.loads, (HERE / "fp-instruct/executions/python.jsonl").read_text().splitlines())}
    theirs = {}
    for task in tasks:
        result = execute(task, postprocess("instruct", "python", task.prompt, done[task.task_id]["completion"]), toolchain)
        theirs[task.task_id] = result.passed
    n = len(tasks)
    ours_text = {r["task_id"]: r["completions"][0]
                 for r in map(json.loads, (HERE / "fp-instruct/generations/python.jsonl").read_text().splitlines())}
    paired = mcnemar(ours_exec, theirs)
    summary = {
        "n": n,
        "ours_bf16": format_rate(sum(ours_exec.values()), n),
        "llama_cpp_gguf": format_rate(sum(theirs.values()), n),
        "paired": format_paired(paired, "ours", "llama.cpp"),
        "identical_replies": sum(1 for t in theirs if ours_text[t].strip() == done[t]["completion"].strip()),
        "llama_cpp_passed": sorted(t for t, ok in theirs.items() if ok),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
