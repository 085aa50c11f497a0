"""Prompt stage: fill-in-the-middle formats as data, detection, token budgets, prompt assembly."""

from codegeex_lsp.prompt.build import build_prompt
from codegeex_lsp.prompt.formats import FORMATS, PromptFormat, ReferenceStyle
from codegeex_lsp.prompt.registry import detect_format, get_format, list_formats, verify_special_tokens
from codegeex_lsp.prompt.types import Budget, FimRequest, Prompt, Reference

__all__ = [
    "FORMATS",
    "Budget",
    "FimRequest",
    "Prompt",
    "PromptFormat",
    "Reference",
    "ReferenceStyle",
    "build_prompt",
    "detect_format",
    "get_format",
    "list_formats",
    "verify_special_tokens",
]
