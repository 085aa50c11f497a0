"""The model worker: the process that hosts the model, spoken to only through `codegeex_lsp.protocol`.

`daemon` is the process (shared per-user daemon or private child), `slot` its one model load.
Nothing here is imported by the server; run it with `python -m codegeex_lsp.worker`.
"""
