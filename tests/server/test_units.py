"""The server's plain parts without a process: options, cache, typed-through, bounds, debounce."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lsprotocol import types as lsp

from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.prompt.budget import PREFIX_GRID_LINES, bound_prefix, bound_suffix, fit_to_context
from codegeex_lsp.prompt.types import FimRequest, Reference
from codegeex_lsp.server.cache import CompletionCache, TypedThrough
from codegeex_lsp.server.completion import completion_options
from codegeex_lsp.server.convert import choose_encoding
from codegeex_lsp.server.options import (
    DebounceOptions,
    LanguageOptions,
    ServerOptions,
    parse_options,
    to_wire,
)
from codegeex_lsp.server.scheduler import Debouncer, Scheduler


def test_server_import_does_not_import_torch():
    code = "import sys, codegeex_lsp.server.app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- options ---------------------------------------------------------------------------------------


def test_options_defaults_and_camel_case_round_trip():
    options, warnings = parse_options(to_wire(ServerOptions()))
    assert options == ServerOptions() and warnings == []


def test_options_parse_valid_values_and_shorthands():
    options, warnings = parse_options(
        {
            "codegeexLsp": {
                "model": "some-model",
                "completion": {"maxTokens": 8, "top_p": 0.5},
                "debounce": {"minMs": 10, "maxMs": 20},
                "languages": {"disabled": ["Markdown"]},
                "context": {"prefixTokens": 512.0, "carryLine": False},
            }
        }
    )
    assert warnings == []
    assert options.model.name == "some-model"
    assert options.completion.max_tokens_for("LINE") == options.completion.max_tokens_for("BLOCK") == 8
    assert options.completion.top_p == 0.5
    assert options.context.prefix_tokens == 512 and isinstance(options.context.prefix_tokens, int)
    assert not options.context.carry_line and ServerOptions().context.carry_line
    assert not completion_options(options, "LINE").carry_line
    assert completion_options(ServerOptions(), "LINE").carry_line
    assert not options.languages.allows("markdown") and options.languages.allows("python")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"completion": {"maxTokens": "many"}}, "completion.maxTokens"),
        ({"completion": {"maxTokensLine": 0}}, "completion.maxTokensLine"),
        ({"completion": {"temperature": float("nan")}}, "completion.temperature"),
        ({"cache": {"size": True}}, "cache.size"),
        ({"context": {"carryLine": "yes"}}, "context.carryLine"),
        ({"model": {"dtype": "int3"}}, "model.dtype"),
        ({"model": {"trustRemoteCode": True}}, "command line"),
        ({"languages": {"enabled": "python"}}, "languages.enabled"),
        ({"debounce": {"minMs": 500, "maxMs": 10}}, "debounce"),
        ({"surprise": 1}, "surprise"),
        ({"context": 3}, "context"),
        ([1, 2], "settings"),
    ],
)
def test_invalid_options_fall_back_with_a_warning(raw, needle):
    base = ServerOptions()
    options, warnings = parse_options(raw, base)
    assert options == base
    assert len(warnings) == 1 and needle in warnings[0]


def test_options_fall_back_to_the_base_not_the_default():
    base, _ = parse_options({"completion": {"maxTokensLine": 7}})
    options, warnings = parse_options({"completion": {"maxTokensLine": -1}}, base)
    assert options.completion.max_tokens_line == 7 and "using 7" in warnings[0]


def test_language_options():
    only = LanguageOptions(enabled=("python", "go"), disabled=("go",))
    assert only.allows("Python") and not only.allows("go") and not only.allows("rust")


# -- cache and typed-through ----------------------------------------------------------------------


def test_lru_evicts_least_recently_used():
    cache = CompletionCache(2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"
    cache.put("c", "3")
    assert cache.get("b") is None and cache.get("a") == "1" and cache.get("c") == "3"
    cache.resize(1)
    assert len(cache) == 1
    disabled = CompletionCache(0)
    disabled.put("a", "1")
    assert disabled.get("a") is None


def test_typed_through_forwards_the_rest():
    typed = TypedThrough()
    prefix, suffix = "def f(x):\n    ret", "\n\nprint(f(1))\n"
    typed.remember("u", prefix, suffix, "urn x + 1", "LINE")
    assert typed.forward("u", prefix + "u", suffix) == "rn x + 1"
    assert typed.forward("u", prefix + "urn x", suffix) == " + 1"
    assert typed.forward("u", prefix, suffix) is None  # nothing typed: the cache's job
    assert typed.forward("u", prefix + "x", suffix) is None  # typed something else
    assert typed.forward("u", prefix + "urn x + 1", suffix) is None  # all of it
    assert typed.forward("u", prefix + "u", "changed" + suffix) is None  # text after the cursor moved
    assert typed.forward("u", "# edit above\n" + prefix + "u", suffix) is None
    assert typed.forward("other", prefix + "u", suffix) is None
    typed.forget("u")
    assert typed.forward("u", prefix + "u", suffix) is None


# -- bounds and budgets ---------------------------------------------------------------------------


def test_bound_prefix_keeps_whole_lines_on_a_stable_grid():
    lines = [f"line {i:05d}\n" for i in range(3000)]
    text = "".join(lines) + "cur"
    kept = bound_prefix(text, 5000)
    assert len(kept) >= 5000 and text.endswith(kept)
    first_line = text[: len(text) - len(kept)].count("\n")
    assert first_line % PREFIX_GRID_LINES == 0 and kept.startswith("line ")
    # Typing at the cursor does not move the start until a whole grid step is used up.
    assert bound_prefix(text + "sor", 5000) == kept + "sor"
    assert bound_prefix("short", 5000) == "short"
    assert bound_prefix("x" * 10_000, 5000) == "x" * 5000  # one overlong cursor line: its end


def test_bound_suffix():
    text = "".join(f"{i}\n" for i in range(10_000))
    kept = bound_suffix(text, 100)
    assert text.startswith(kept) and kept.endswith("\n") and len(kept) <= 100
    assert bound_suffix("y" * 500, 100) == "y" * 100


def test_fit_to_context_shrinks_budgets_and_drops_references():
    fim = FimRequest(prefix="p", references=(Reference("a.py", "def a(): pass\n"),))
    opts = CompletionOptions(max_tokens=12, prefix_tokens=1024, suffix_tokens=256)
    small_fim, small = fit_to_context(fim, opts, 512)
    assert small_fim.references == ()
    assert small.prefix_tokens + small.suffix_tokens + small.max_tokens <= 512
    assert small.prefix_tokens > small.suffix_tokens > 0
    big_fim, big = fit_to_context(fim, opts, 4096)
    assert big_fim == fim and big == opts
    _, capped = fit_to_context(fim, CompletionOptions(max_tokens=4096), 4096)
    assert capped.max_tokens == 2048


# -- scheduling -----------------------------------------------------------------------------------


def test_debounce_adapts_to_typing_rhythm():
    now = [0.0]
    debouncer = Debouncer(DebounceOptions(min_ms=20, max_ms=300, initial_ms=75), clock=lambda: now[0])
    assert debouncer.observe("u") == pytest.approx(0.075)
    for _ in range(10):  # fast typing: 50 ms between keys
        now[0] += 0.05
        fast = debouncer.observe("u")
    assert fast == pytest.approx(0.075, abs=0.005)
    for _ in range(10):  # slow typing: 180 ms between keys
        now[0] += 0.18
        slow = debouncer.observe("u")
    assert 0.2 < slow <= 0.3
    now[0] += 5.0  # a pause is not averaged in
    assert debouncer.observe("u") == pytest.approx(slow)
    assert debouncer.observe("other") == pytest.approx(0.075)


def test_same_line_keystrokes_start_at_once_line_changes_wait():
    now = [0.0]
    debouncer = Debouncer(DebounceOptions(min_ms=0, max_ms=300, initial_ms=75), clock=lambda: now[0])
    assert debouncer.observe("u", 4) == pytest.approx(0.075)  # nothing known yet
    for _ in range(5):  # typing on line 4 at 180 ms per key: the prompt only grows at its end
        now[0] += 0.18
        assert debouncer.observe("u", 4) == 0.0
    now[0] += 0.18
    assert 0.2 < debouncer.observe("u", 5) <= 0.3  # Enter: a new line waits for the rhythm delay
    now[0] += 5.0
    assert debouncer.observe("u", 5) > 0.0  # after a pause the cache may be gone: no shortcut
    debouncer.line_carry = False  # prompts without line carry re-prefill the suffix every time
    now[0] += 0.18
    assert debouncer.observe("u", 5) > 0.0
    debouncer.line_carry = True
    debouncer.forget("u")
    assert debouncer.observe("u", 5) == pytest.approx(0.075)


def test_newer_ticket_supersedes_older():
    scheduler = Scheduler(DebounceOptions())
    try:
        first, none = scheduler.begin("u", "1")
        second, superseded = scheduler.begin("u", "2")
        third, _ = scheduler.begin("v", "3")
        assert none is None and superseded is first
        assert first.is_cancelled() and first.superseded
        assert not second.is_cancelled() and not third.is_cancelled()
        pushed: list[str] = []
        second.on_cancel(lambda: pushed.append("second"))
        third.on_cancel(lambda: pushed.append("third"))
        scheduler.begin("u", "4")  # supersedes the second: its generator is told while begin runs
        assert pushed == ["second"]
    finally:
        scheduler.shutdown()
    assert pushed == ["second", "third"]  # shutdown cancels what is still in flight


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (None, "utf-16"),
        (["utf-16"], "utf-16"),
        (["utf-16", "utf-8"], "utf-8"),
        (["utf-8"], "utf-8"),
        (["utf-32"], "utf-16"),
    ],
)
def test_position_encoding_choice(offered, chosen):
    caps = lsp.ClientCapabilities(
        general=lsp.GeneralClientCapabilities(position_encodings=offered) if offered else None
    )
    assert choose_encoding(caps) == chosen
