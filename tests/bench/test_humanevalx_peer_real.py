"""The HumanEval-X peer on the host's real llama-server and the real embedded model.

The generator closes the stream as soon as the stop rule fires. That is only fair if the text it
keeps is what the whole greedy answer, cut by the same rule afterwards, gives; this asks the real
server both ways (streamed and stopped, then one non-streamed request with `return_tokens`) on a
seeded draw of tasks and compares. It also proves this llama.cpp build streams token ids, and that
a cancelled stream leaves the server serving the next request.
"""

from __future__ import annotations

import random
from pathlib import Path

from codegeex_lsp.bench import llama_cpp
from codegeex_lsp.bench.humaneval_x.dataset import load_tasks
from codegeex_lsp.bench.humaneval_x.peer import (
    GreedyText,
    LlamaServerGenerator,
    completion_request,
    embedded_tokenizer,
)
from codegeex_lsp.bench.humaneval_x.stops import codegeex_finished
from codegeex_lsp.bench.llama_server import LlamaServer, model_gguf
from codegeex_lsp.config import DEFAULT_MODEL

MAX_TOKENS = 160  # enough for a short function; the comparison holds for any length


def test_streamed_and_stopped_equals_the_whole_answer_cut(tmp_path: Path) -> None:
    binary = llama_cpp.binary("llama-server")  # raises (fails) where the install step did not run
    gguf, _sha = model_gguf(DEFAULT_MODEL)
    tokenizer, stop_ids = embedded_tokenizer()
    tasks = [(language, task) for language in ("js", "python") for task in load_tasks(language)]
    draw = random.Random(20261207).sample(tasks, 3)
    server = LlamaServer(binary, gguf, tmp_path / "server.log", threads=2)
    generator = LlamaServerGenerator(server, tokenizer, stop_ids)
    try:
        for language, task in draw:
            streamed = generator.generate(task.prompt, language, n=1, temperature=0.0, max_tokens=MAX_TOKENS)[0]
            ids = list(tokenizer.encode(task.prompt, add_special_tokens=False))
            body = dict(completion_request(ids, MAX_TOKENS), stream=False)
            whole = server.client.post("/completion", json=body).json()
            state = GreedyText(tokenizer, stop_ids, lambda text, lang=language: codegeex_finished(lang, text))
            for token in whole["tokens"]:
                if state.add(token):
                    break
            assert streamed == state.text, task.task_id
            assert streamed.strip(), task.task_id  # the model answered something
    finally:
        generator.close()
