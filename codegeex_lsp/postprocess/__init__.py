"""postprocess stage: raw model text -> the suggestion shown, or nothing.

The suggestion's text goes, with the `FimRequest` it completes (prefix, suffix, language, mode,
scope), through an ordered tuple of filters, each a plain function `(text, request) -> text | None`
in a module of its own; None discards. Filters only edit the suggestion, never the document. See
`pipeline.py` for the order and why.
"""

from codegeex_lsp.postprocess.pipeline import DEFAULT_PIPELINE, Filter, finish_candidates, run_pipeline

__all__ = ["DEFAULT_PIPELINE", "Filter", "finish_candidates", "run_pipeline"]
