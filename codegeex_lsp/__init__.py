"""codegeex-lsp: a local-first code-completion language server."""

__version__ = "0.1.0"
