"""Token budgets: cut prefix, suffix and references at line boundaries, keeping what is nearest.

The one budget module: the settings' token budgets become a `Budget` here (`budget_for`), text is
bounded before it is tokenized (`bound_request`) and the budgets are shrunk to fit the model's
context (`fit_to_context`); estimates without a tokenizer use the one `CHARS_PER_TOKEN`.

Pure functions over text and a token counter, so they are testable without a tokenizer. A line is
text up to and including "\\n" (only "\\n": form feeds and U+2028 inside code do not end a line).
Per-line counts only pick the candidate cut, so the work is proportional to what is kept, not to the
file; the kept text is then counted as a whole, so a reported count is exact and within budget.
A cut falls inside a line only where the cursor's own line is over the budget by itself: then the
part of it nearest the cursor is kept (`cursor_line_tail`, `cursor_line_head`), never the whole
line, so a 2 MB minified line cannot become a 2-million-token prompt.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.prompt.types import Budget, FimRequest, Reference

Count = Callable[[str], int]

# A cut prefix prices a cursor line shorter than this many bytes (or than 1/CURSOR_LINE_RESERVE_SHARE
# of the budget, if less) at that reserve: typing on a line of ordinary length then never moves the
# cut, which would change the prompt from its start and void the whole KV cache.
CURSOR_LINE_RESERVE_BYTES = 128
CURSOR_LINE_RESERVE_SHARE = 8


@dataclass(frozen=True)
class Cut:
    """The kept part of a prefix or suffix. `first_line`: index of the first kept line (prefix)."""

    text: str
    n_tokens: int
    truncated: bool
    first_line: int = 0


@dataclass(frozen=True)
class FittedReferences:
    references: tuple[Reference, ...]
    n_tokens: int
    truncated: bool


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n" kept; the last one may lack it."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def cut_prefix(text: str, max_tokens: int, count: Count, step_lines: int = 16) -> Cut:
    """Keep the lines nearest the cursor (the end of `text`), dropping from the top in coarse steps.

    Why coarse: the engine reuses its KV cache for the longest unchanged start of the prompt. If the
    prefix were cut line by line, each keystroke that adds a token would push the first kept line
    down and change the prompt from its very start, so nothing could be reused. Instead the kept part
    starts at a multiple of `step_lines` (counted from the top of the text, so the grid does not move
    while typing): the start jumps a whole step at a time, and after a jump the freed step is room for
    many keystrokes before the next one. The start only falls between grid lines when even the
    cursor's own step does not fit. The same holds for suffix-first formats, where the prefix start
    follows the suffix.

    Why the cursor line is priced by its UTF-8 length: its token count is not monotonic while typing
    ("rend" may be two tokens, "render" one), so a cut decided on it would flap back and forth at the
    threshold. Its byte length only grows as the user types and bounds its token count (a token
    covers at least one byte), so the start only ever moves down while typing. Why a cut prefix
    prices it at least at a reserve (`CURSOR_LINE_RESERVE_BYTES`, at most
    1/`CURSOR_LINE_RESERVE_SHARE` of the budget): so that the start does not move at all while the
    user types on a line of ordinary length, at the price of some unused tokens. A prefix that fits
    whole (cursor line priced by its bytes) is kept whole; once it does not, the reserve applies, so
    typing on a line moves the start at most once (from whole to cut) below the reserve. The start
    is decided on the complete lines above (counted as kept) plus that price, never on the cursor
    line's tokens. Those lines do not change while typing, and they are counted line by line from the
    cursor up, so the cost is proportional to what is kept, not to the file size.
    The line at the cursor is always kept.
    """
    cursor_at = text.rfind("\n") + 1
    lines, cursor = split_lines(text[:cursor_at]), text[cursor_at:]
    n_lines = len(lines)
    step = max(1, step_lines)
    last_grid = n_lines - n_lines % step
    starts = sorted({0, *range(step, n_lines + 1, step), *range(last_grid + 1, n_lines + 1)})

    byte_price = len(cursor.encode("utf-8"))
    price = max(byte_price, min(CURSOR_LINE_RESERVE_BYTES, max_tokens // CURSOR_LINE_RESERVE_SHARE))
    earliest_whole = earliest = n_lines  # the earliest lines the estimate keeps: bytes, reserve
    used = 0
    for index in range(n_lines - 1, -1, -1):
        used += count(lines[index])
        if used + byte_price > max_tokens:
            break
        earliest_whole = index
        if used + price <= max_tokens:
            earliest = index
    if earliest_whole == 0:
        cut = _keep_from(lines, cursor, 0, byte_price, max_tokens, count)
        if cut is not None:
            return cut
    for start in starts:
        if start >= max(earliest, 1):
            cut = _keep_from(lines, cursor, start, price, max_tokens, count)
            if cut is not None:
                return cut
    kept, n_tokens = cursor_line_tail(cursor, max_tokens, count)
    return Cut(text=kept, n_tokens=n_tokens, truncated=n_lines > 0 or kept != cursor, first_line=n_lines)


def _utf8_tail(text: str, max_bytes: int) -> str:
    """The end of `text` within `max_bytes` UTF-8 bytes, starting on a code point."""
    kept = text[-max_bytes:] if max_bytes > 0 else ""
    data = kept.encode("utf-8")
    return kept if len(data) <= max_bytes else data[len(data) - max_bytes :].decode("utf-8", errors="ignore")


def _utf8_head(text: str, max_bytes: int) -> str:
    """The start of `text` within `max_bytes` UTF-8 bytes, ending on a code point."""
    kept = text[:max_bytes] if max_bytes > 0 else ""
    data = kept.encode("utf-8")
    return kept if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", errors="ignore")


def cursor_line_tail(line: str, max_tokens: int, count: Count) -> tuple[str, int]:
    """(kept, n_tokens): `line` whole if it fits `max_tokens`, else the end of it that does.

    Never tokenizes more than MAX_CHARS_PER_TOKEN characters per budget token: a longer line is
    cut to that first (no token is longer). If that still does not fit, the end within
    `max_tokens` UTF-8 bytes does, since a token covers at least one byte.
    """
    kept = line[-max(max_tokens, 1) * MAX_CHARS_PER_TOKEN :]
    n_tokens = count(kept)
    if n_tokens > max_tokens:
        kept = _utf8_tail(kept, max_tokens)
        n_tokens = count(kept)
    return kept, n_tokens


def cursor_line_head(line: str, max_tokens: int, count: Count) -> tuple[str, int]:
    """`cursor_line_tail` for the rest of the cursor line in the suffix: the start of it is kept."""
    kept = line[: max(max_tokens, 1) * MAX_CHARS_PER_TOKEN]
    n_tokens = count(kept)
    if n_tokens > max_tokens:
        kept = _utf8_head(kept, max_tokens)
        n_tokens = count(kept)
    return kept, n_tokens


def _keep_from(
    lines: list[str], cursor: str, start: int, cursor_price: int, max_tokens: int, count: Count
) -> Cut | None:
    """The prefix from line `start`, if its lines plus `cursor_price` and its exact count fit."""
    above = "".join(lines[start:])
    if count(above) + cursor_price > max_tokens:
        return None
    kept = above + cursor
    n_tokens = count(kept)  # over the budget only where joining the cursor line costs extra tokens
    if n_tokens > max_tokens:
        return None
    return Cut(text=kept, n_tokens=n_tokens, truncated=start > 0, first_line=start)


def cut_suffix(text: str, max_tokens: int, count: Count) -> Cut:
    """Keep the lines nearest the cursor (the start of `text`), dropping from the bottom.

    The rest of the cursor's line is always kept (its start only, if it alone is over the budget).
    No coarse steps: typing at the cursor does not change the suffix, so its cut stays put while
    the user types.
    """
    lines = split_lines(text)
    if lines and len(lines[0]) > max_tokens and len(lines[0].encode("utf-8")) > max_tokens:
        head, n_head = cursor_line_head(lines[0], max_tokens, count)
        if n_head > max_tokens or head != lines[0]:
            return Cut(text=head, n_tokens=n_head, truncated=True)

    def fits(n: int) -> bool:
        return count("".join(lines[:n])) <= max_tokens

    keep = _keep_head(lines, max_tokens, count, fits, min_lines=1)
    kept = "".join(lines[:keep])
    return Cut(text=kept, n_tokens=count(kept), truncated=keep < len(lines))


def fit_references(
    references: Sequence[Reference], max_tokens: int, cost: Callable[[Reference], int], count: Count
) -> FittedReferences:
    """Fill the budget with references in the order given (the caller orders them by relevance).

    A reference that does not fit whole keeps its first lines (imports and signatures come first);
    filling stops there. `cost` prices a reference as it will be rendered, path and markup included;
    `count` prices single lines for the estimate.
    """
    kept: list[Reference] = []
    used = 0
    for ref in references:
        left = max_tokens - used
        lines = split_lines(ref.text)

        def head(n: int, ref: Reference = ref, lines: list[str] = lines) -> Reference:
            return Reference(path=ref.path, text="".join(lines[:n]))

        def fits(n: int, left: int = left, head=head) -> bool:
            return cost(head(n)) <= left

        markup = cost(head(0))
        n_fit = _keep_head(lines, left - markup, count, fits, min_lines=0) if markup <= left else 0
        if markup <= left and n_fit == len(lines):
            kept.append(ref)
            used += cost(ref)
            continue
        if n_fit > 0:
            kept.append(head(n_fit))
            used += cost(head(n_fit))
        return FittedReferences(references=tuple(kept), n_tokens=used, truncated=True)
    return FittedReferences(references=tuple(kept), n_tokens=used, truncated=False)


def _keep_head(lines: list[str], room: int, count: Count, fits: Callable[[int], bool], min_lines: int) -> int:
    """How many leading lines to keep: estimated line by line against `room`, confirmed by `fits`."""
    keep = min(min_lines, len(lines))
    used = 0
    for index, line in enumerate(lines):
        used += count(line)
        if used > room:
            break
        keep = index + 1
    while keep > min_lines and not fits(keep):
        keep -= 1
    return keep


# -- budgets from the settings, before any tokenizer -----------------------------------------------

CHARS_PER_TOKEN = 3
"""Conservative characters-per-token estimate for code (real tokenizers give 3 to 4): prices text
where no tokenizer is at hand (cross-file references, a remote server's prompt)."""

# Text handed to the prompt stage is bounded before it is tokenized: a 50k-line file must not be
# tokenized whole on every keystroke. The bound is generous (a token is rarely over
# MAX_CHARS_PER_TOKEN characters) so the prompt stage still fills its token budget, and the prefix
# cut lands on a coarse grid of lines counted from the top, so it does not move while the user
# types (the prompt stage's own 16-line grid and the KV-cache reuse depend on a stable start).
MAX_CHARS_PER_TOKEN = 8
MIN_BOUND_CHARS = 4096
PREFIX_GRID_LINES = 256
# Room kept in the model's context for the format's markup (FIM tokens, path and language lines).
PROMPT_MARKUP_TOKENS = 64


def estimate_tokens(text: str) -> int:
    """A token count estimate that errs high, for budgets without a tokenizer."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def budget_for(options: CompletionOptions) -> Budget:
    """The prompt stage's budget from the completion options (the settings' `context.*Tokens`)."""
    return Budget(
        prefix_tokens=options.prefix_tokens,
        suffix_tokens=options.suffix_tokens,
        reference_tokens=options.reference_tokens,
        carry_line=options.carry_line,
    )


def bound_prefix(prefix: str, max_chars: int, grid_lines: int = PREFIX_GRID_LINES) -> str:
    """The end of `prefix`: at least `max_chars`, starting on a line whose index is a grid multiple."""
    if len(prefix) <= max_chars:
        return prefix
    cut = len(prefix) - max_chars
    if prefix.find("\n", cut) < 0:  # the cut falls inside the cursor line: keep its end only
        return prefix[cut:]
    line = prefix.count("\n", 0, cut)
    start = prefix.rfind("\n", 0, cut) + 1
    for _ in range(line % grid_lines):
        if start == 0:
            break
        start = prefix.rfind("\n", 0, start - 1) + 1
    return prefix[start:]


def bound_suffix(suffix: str, max_chars: int) -> str:
    """The start of `suffix`: whole lines up to `max_chars` (or `max_chars` of one long line)."""
    if len(suffix) <= max_chars:
        return suffix
    end = suffix.rfind("\n", 0, max_chars)
    return suffix[: end + 1] if end >= 0 else suffix[:max_chars]


def bound_request(fim: FimRequest, options: CompletionOptions) -> FimRequest:
    """`fim` with prefix and suffix bounded to what their token budgets could possibly take."""
    prefix_chars = max(options.prefix_tokens * MAX_CHARS_PER_TOKEN, MIN_BOUND_CHARS)
    suffix_chars = max(options.suffix_tokens * MAX_CHARS_PER_TOKEN, MIN_BOUND_CHARS)
    return dataclasses.replace(
        fim, prefix=bound_prefix(fim.prefix, prefix_chars), suffix=bound_suffix(fim.suffix, suffix_chars)
    )


def fit_to_context(
    fim: FimRequest, opts: CompletionOptions, n_context: int
) -> tuple[FimRequest, CompletionOptions]:
    """Shrink the budgets so prompt + generated tokens fit the model's context window.

    The configured budgets are upper bounds; a small model (or a large max_tokens) gets less.
    References are priced at `reference_tokens`; when they would take more than half of what is
    left they are dropped, since the code around the cursor matters most.
    """
    max_tokens = max(1, min(opts.max_tokens, n_context // 2))
    room = n_context - max_tokens - PROMPT_MARKUP_TOKENS
    reference_tokens = opts.reference_tokens
    if fim.references:
        if room - reference_tokens < room // 2:
            fim, reference_tokens = dataclasses.replace(fim, references=()), 0
        else:
            room -= reference_tokens
    wanted = opts.prefix_tokens + opts.suffix_tokens
    prefix_tokens, suffix_tokens = opts.prefix_tokens, opts.suffix_tokens
    if wanted > room:
        room = max(room, 32)
        prefix_tokens = max(16, room * opts.prefix_tokens // wanted)
        suffix_tokens = max(0, room - prefix_tokens)
    return fim, dataclasses.replace(
        opts,
        max_tokens=max_tokens,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
        reference_tokens=reference_tokens,
    )
