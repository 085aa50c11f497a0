"""Multilingual infilling: middles masked out of HumanEval-X canonical solutions, scored by execution.

Data flows tasks (cut the masks, ask the context stage what an editor would get) -> infillers
(canonical, the completion service, or a real `codegeex-lsp serve` over stdio) -> score (the
HumanEval-X sandbox runs the tests on the document with the model's middle) -> report; `run`
drives it with resumable JSONL caches. Nothing here imports torch at module import time: the
engine-backed infiller loads the service when it is built.
"""
