#!/usr/bin/env python3
"""Diagnostic: do any fp-instruct-qwen passes rely on the task prompt being executed before the
reply? EvalPlus runs the sanitized sample alone; our harness runs prompt + reply + tests. This
re-executes every reply without the prompt, in the same sandbox, and prints both counts.

    python docs/results/humanevalx-instruct/no_prompt_check.py
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from codegeex_lsp.bench.humaneval_x.dataset import load_tasks
from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.stops import postprocess
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain

ROOT = Path(__file__).resolve().parent / "fp-instruct-qwen"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def main() -> None:
    tasks = {task.task_id: task for task in load_tasks("python")}
    toolchain = find_toolchain("python")
    replies = {r["task_id"]: r["completions"][0] for r in records(ROOT / "generations/python.jsonl")}
    with_prompt = {r["task_id"]: r["status"] == "passed" for r in records(ROOT / "executions/python.jsonl")}
    alone = {}
    for task_id, reply in replies.items():
        task = tasks[task_id]
        code = postprocess("instruct-qwen", "python", task.prompt, reply)
        alone[task_id] = execute(dataclasses.replace(task, prompt=""), code, toolchain).passed
    lost = sorted(t for t in replies if with_prompt[t] and not alone[t])
    gained = sorted(t for t in replies if alone[t] and not with_prompt[t])
    print(f"with the prompt {sum(with_prompt.values())}/{len(replies)}, alone {sum(alone.values())}")
    print(f"pass only with the prompt: {lost}; only alone: {gained}")


if __name__ == "__main__":
    main()
