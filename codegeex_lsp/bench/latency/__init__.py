"""`codegeex-lsp bench latency`: keystroke latency and usefulness, ours beside llama.vscode's stack.

Real files this project did not write (`corpus`) are retyped key by key with a typing model
(`typist`) into a real `codegeex-lsp serve` process over stdio (`client`, `replay`) and into
llama.cpp's `llama-server` driven as llama.vscode drives it (`peer`); every request's outcome and
time are counted (`stats`), resident memory is sampled (`memory`), and `report` writes both columns.
"""

from codegeex_lsp.bench.latency.run import main

__all__ = ["main"]
