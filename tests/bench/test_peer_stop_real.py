"""The peer's single-line stop leaves its answers unchanged, checked on the real llama-server.

`infill_request` adds `stop: ["\\n"]` to LINE tasks to spare the tokens the first-newline cut throws
away. That is only fair if the cut answer is the same with and without the stop, which greedy
decoding promises; this asks the host's real llama-server (scripts/install-llama-cpp) both ways on a
seeded draw of single-line tasks of the standard benchmark and compares. Both requests evaluate
the whole prompt afresh (`cache_prompt` off): llama.cpp's answer can change with how much of the
prompt it reuses from its KV cache (a 198-token prompt evaluated in one batch and the same prompt
with 197 tokens from the cache gave different first lines here), so only requests in the same cache
state compare. The stop cannot change the cache state a later task sees: the cached generated
tokens follow a prompt that ends at the middle token, which no later prompt extends.
"""

from __future__ import annotations

import random
from pathlib import Path

from codegeex_lsp.bench import llama_cpp
from codegeex_lsp.bench.infill.peer import LlamaServerInfiller, cut_answer, infill_request, model_gguf
from codegeex_lsp.bench.infill.suite import load_rows, task_from_row


def test_line_stop_does_not_change_the_cut_answer(tmp_path: Path) -> None:
    binary = llama_cpp.binary("llama-server")  # raises (fails) where the install step did not run
    gguf, sha = model_gguf("qwen2.5-coder-0.5b")
    rows = load_rows("single")
    draw = random.Random(20261206).sample(range(len(rows)), 3)
    server = LlamaServerInfiller(binary, gguf, sha, tmp_path / "server.log", threads=1)
    try:
        for index in draw:
            task = task_from_row("single", rows[index])
            # 48 tokens, not 128, keep the test short; the comparison holds for any length
            stopped = dict(infill_request(task), cache_prompt=False, n_predict=48)
            assert stopped["stop"] == ["\n"]
            full = {key: value for key, value in stopped.items() if key != "stop"}
            with_stop = server.client.post("/infill", json=stopped).json()
            without = server.client.post("/infill", json=full).json()
            assert cut_answer(task, with_stop["content"]) == cut_answer(task, without["content"]), task.task_id
            assert with_stop["tokens_predicted"] <= without["tokens_predicted"]
    finally:
        server.close()
