"""postprocess stage: raw model text -> the suggestion shown, or nothing.

A `Candidate` (frozen: prefix, suffix, language, mode, text) goes through an ordered tuple of
filters, each a plain function `Candidate -> Candidate | None` in a module of its own; None discards.
Filters only edit the suggestion, never the document. See `pipeline.py` for the order and why.
"""

from codegeex_lsp.postprocess.candidate import Candidate, Filter
from codegeex_lsp.postprocess.pipeline import DEFAULT_PIPELINE, finish_candidates, run_pipeline

__all__ = ["DEFAULT_PIPELINE", "Candidate", "Filter", "finish_candidates", "run_pipeline"]
